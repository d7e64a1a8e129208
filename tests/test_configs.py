"""Run configs: each parses and compiles against the pipeline; the derived ones are generated from
the default; a misspelled or mistyped parameter fails at compile time, naming the key."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT

CONFIGS = [REPO_ROOT / "zenml_config.yaml", *sorted((REPO_ROOT / "configs").glob("*.yaml"))]


def compile_run(path: Path):
    from movielens_pipeline.integrations.run_pipeline import pipeline_for_config

    pipeline = pipeline_for_config(path).with_options(config_path=str(path))
    pipeline.prepare()
    snapshot, _, _ = pipeline._compile(config_path=str(path))
    return snapshot


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_a_valid_run_configuration_for_the_pipeline(zenml_stack, path: Path):
    from zenml.config.pipeline_run_configuration import PipelineRunConfiguration

    PipelineRunConfiguration.model_validate(yaml.safe_load(path.read_text()))
    # Compiling checks step names, parameter names and values against the step signatures.
    snapshot = compile_run(path)
    # A run-level `enable_cache` overrides every step's own setting in ZenML: ingest_ratings
    # must stay uncached, or new rating drops in the same folder would never be read.
    if "ingest_ratings" in snapshot.step_configurations:
        assert snapshot.step_configurations["ingest_ratings"].config.enable_cache is False


def test_derived_configs_and_the_parameter_reference_are_up_to_date():
    from movielens_pipeline.integrations.run_configs import generated_files

    stale = [path.name for path, text in generated_files().items() if not path.exists() or path.read_text() != text]
    assert not stale, f"run `make configs`: {stale} are out of date"


def test_derived_configs_are_the_default_plus_their_overlay():
    default = yaml.safe_load((REPO_ROOT / "zenml_config.yaml").read_text())
    scheduled = yaml.safe_load((REPO_ROOT / "configs" / "schedule.yaml").read_text())
    assert scheduled.pop("schedule")["cron_expression"]
    assert scheduled == default
    retrain = yaml.safe_load((REPO_ROOT / "configs" / "retrain.yaml").read_text())
    assert retrain["settings"] == default["settings"]
    assert retrain["steps"]["ingest_ratings"]["parameters"] == {"source": {"kind": "embedded"}, "drops_dir": "data/drops"}


def smoke_config_with(tmp_path, step: str, parameters: dict) -> Path:
    """configs/smoke.yaml with ``parameters`` set on ``step``, written to a file of its own."""
    config = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    config["steps"].setdefault(step, {}).setdefault("parameters", {}).update(parameters)
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    "step, parameters, key, complaint",
    [
        ("s3rec_finetune", {"finetuning": {"epoks": 5}}, "epoks", "Extra inputs are not permitted"),
        ("lrml_train", {"train": {"epochs": "five"}}, "epochs", "valid integer"),
        ("lrml_train", {"model": {"dimension": 8}}, "dimension", "Extra inputs are not permitted"),
        ("register", {"promotion": {"require_significance": "sometimes"}}, "require_significance", "valid boolean"),
        ("ingest_ratings", {"source": {"kind": "grouplens", "nmae": "ml-1m"}}, "nmae", "Extra inputs are not permitted"),
        ("build_dataset", {"config": {"user_coer": 5}}, "user_coer", "Extra inputs are not permitted"),
    ],
)
def test_a_misspelled_or_mistyped_parameter_fails_before_any_step_runs(zenml_stack, tmp_path, step, parameters, key, complaint):
    from zenml.client import Client

    from movielens_pipeline.integrations.run_pipeline import exception_chain

    path = smoke_config_with(tmp_path, step, parameters)
    runs_before = Client().list_pipeline_runs(size=1).total
    with pytest.raises(Exception) as raised:
        compile_run(path)
    message = exception_chain(raised.value)
    assert key in message and complaint in message, message
    assert Client().list_pipeline_runs(size=1).total == runs_before


def test_make_run_shows_why_a_config_was_refused_not_an_earlier_run(smoke_run, tmp_path, monkeypatch, capsys):
    """`make run` (run_pipeline) with a typo: its last lines name the key and the file, and nothing
    of the earlier, completed run of the same pipeline is passed off as this run's failure."""
    from zenml.client import Client

    from movielens_pipeline.integrations import run_pipeline

    path = smoke_config_with(tmp_path, "s3rec_finetune", {"finetuning": {"epoks": 5}})
    runs_before = Client().list_pipeline_runs(size=1).total
    monkeypatch.setattr("sys.argv", ["run_pipeline", "--config", str(path)])
    assert run_pipeline.main() == 1
    complaint = capsys.readouterr().err
    assert f"Not started: no run could be created from {path}" in complaint, complaint
    assert "epoks" in complaint and "Extra inputs are not permitted" in complaint, complaint
    assert "FAILED" not in complaint and smoke_run.run.name not in complaint, complaint
    assert Client().list_pipeline_runs(size=1).total == runs_before


def test_a_failed_run_is_still_reported_when_the_zenml_server_has_gone_away():
    """run_pipeline's report of a failure asks the ZenML store which step failed; with the server
    gone (here: nothing listens on its port) it reports the run's error and why the lookup failed,
    instead of raising a second exception over the first. (About 35 s: ZenML's client retries.)"""
    script = (
        "from movielens_pipeline.integrations.run_pipeline import failure_report\n"
        "print(failure_report('0badc0de', 'zenml_config.yaml', RuntimeError('lrml_train: out of memory')))\n"
    )
    env = os.environ | {"ZENML_STORE_URL": "http://127.0.0.1:9", "ZENML_STORE_TYPE": "rest"}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = done.stdout
    assert "FAILED: RuntimeError: lrml_train: out of memory" in report, report
    assert "could not be looked up in the ZenML store" in report and "127.0.0.1:9" in report, report
    assert "Not started" not in report, report


def test_make_run_sets_up_the_local_stack_and_the_configs_experiments_in_its_own_process(
    zenml_stack, tmp_path, monkeypatch, capsys, mlflow_client
):
    """`make run` passes --local-stack: the stack and the experiment its config names exist before
    the config is even checked (here it is refused, and the experiment stays for the next try)."""
    from movielens_pipeline.integrations import run_pipeline

    path = smoke_config_with(tmp_path, "s3rec_finetune", {"finetuning": {"epoks": 5}})
    config = yaml.safe_load(path.read_text())
    config["settings"]["experiment_tracker.mlflow"]["experiment_name"] = "movielens-own-process"
    path.write_text(yaml.safe_dump(config))
    assert mlflow_client.get_experiment_by_name("movielens-own-process") is None
    monkeypatch.setattr("sys.argv", ["run_pipeline", "--config", str(path), "--local-stack", str(zenml_stack),
                                     "--experiments-from", str(path)])  # fmt: skip
    assert run_pipeline.main() == 1
    mlflow_dir = zenml_stack.resolve()
    assert f"ZenML stack 'movielens' active; MLflow tracking URI sqlite:///{mlflow_dir / 'mlflow.db'}" in (
        capsys.readouterr().out
    )
    experiment = mlflow_client.get_experiment_by_name("movielens-own-process")
    assert experiment is not None and experiment.artifact_location.startswith((mlflow_dir / "artifacts").as_uri())
