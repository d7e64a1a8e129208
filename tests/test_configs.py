"""Every run config parses as a ZenML run configuration and names only real steps and options."""

from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT

CONFIGS = [REPO_ROOT / "zenml_config.yaml", *sorted((REPO_ROOT / "configs").glob("*.yaml"))]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_a_valid_run_configuration_for_the_pipeline(zenml_stack, path: Path):
    from zenml.config.pipeline_run_configuration import PipelineRunConfiguration

    from pipelines.training import training_pipeline

    content = yaml.safe_load(path.read_text())
    PipelineRunConfiguration.model_validate(content)
    # Compiling checks step names, parameter names and values against the step signatures.
    pipeline = training_pipeline.with_options(config_path=str(path))
    pipeline.prepare()
    snapshot, _, _ = pipeline._compile(config_path=str(path))
    # A run-level `enable_cache` overrides every step's own setting in ZenML: ingest_ratings
    # must stay uncached, or new rating drops in the same folder would never be read.
    assert snapshot.step_configurations["ingest_ratings"].config.enable_cache is False


def test_the_schedule_config_is_the_default_run_plus_a_schedule():
    default = yaml.safe_load((REPO_ROOT / "zenml_config.yaml").read_text())
    scheduled = yaml.safe_load((REPO_ROOT / "configs" / "schedule.yaml").read_text())
    assert scheduled.pop("schedule")["cron_expression"]
    assert scheduled == default
