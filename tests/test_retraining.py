"""Replay MovieLens-100k as a base and weekly rating drops, as scheduled retraining sees it."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from conftest import REPO_ROOT

MODEL = "movielens-replay"
WEEK = 7 * 24 * 3600


@pytest.fixture(scope="module")
def replay(zenml_stack, tmp_path_factory):
    """Base = first 70% of ratings by time; two weekly drops after it and one broken drop."""
    from movielens_pipeline.data.embedded import load_embedded_ml100k

    folder = tmp_path_factory.mktemp("replay")
    drops_dir = folder / "drops"
    drops_dir.mkdir()
    interactions = load_embedded_ml100k().interactions
    cut = int(np.quantile(interactions["timestamp"], 0.7))
    week1 = interactions[(interactions["timestamp"] > cut) & (interactions["timestamp"] <= cut + WEEK)]
    week2 = interactions[(interactions["timestamp"] > cut + WEEK) & (interactions["timestamp"] <= cut + 2 * WEEK)]
    broken = week2.head(20).assign(rating=11.0)
    config = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    config["parameters"] = {
        "registered_model_name": MODEL, "pretrain": False, "models": ["s3rec", "lrml"], "warm_start": True,
    }  # fmt: skip
    steps = config["steps"]
    steps["ingest_ratings"]["parameters"].update(until_timestamp=cut, drops_dir=str(drops_dir))
    # A cut by time leaves some users with a single rating; k-core filtering drops them later.
    steps["validate_data"] = {"parameters": {"min_interactions_per_user": 1}}
    for unused in ("s3rec_pretrain", "sasrec_finetune"):
        steps.pop(unused)
    config_path = folder / "replay.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return {"drops": drops_dir, "config": config_path, "week1": week1, "week2": week2, "broken": broken}


def run_pipeline(config_path):
    from zenml.client import Client

    from pipelines.training import training_pipeline

    run = training_pipeline.with_options(config_path=str(config_path))()
    return Client().get_pipeline_run(run.id)


def registration(run):
    return run.steps["register"].outputs["registration"][0].load()


def folder_digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_weekly_drops_each_register_a_version_and_the_alias_moves_only_by_the_rule(replay, mlflow_client):
    base_run = run_pipeline(replay["config"])
    first = registration(base_run)
    assert first.alias == "champion"  # an empty registry promotes its best model

    replay["week1"].to_csv(replay["drops"] / "2026-w1.csv", index=False)
    replay["broken"].to_csv(replay["drops"] / "2026-w1b-broken.csv", index=False)
    replay["week2"].to_csv(replay["drops"] / "2026-w2.csv", index=False)
    retrain_run = run_pipeline(replay["config"])

    ingest = retrain_run.steps["ingest_ratings"]
    drops = ingest.run_metadata["drops"]
    assert drops["2026-w1.csv"]["accepted"] and drops["2026-w2.csv"]["accepted"]
    assert not drops["2026-w1b-broken.csv"]["accepted"]
    interactions = ingest.outputs["interactions"][0].load()
    assert not (interactions["rating"] > 5).any()  # nothing of the broken drop leaked in
    base_size = len(base_run.steps["ingest_ratings"].outputs["interactions"][0].load())
    assert len(interactions) == base_size + len(replay["week1"]) + len(replay["week2"])

    second = registration(retrain_run)
    assert second.version != first.version
    assert ingest.outputs["input_fingerprint"][0].load() != base_run.steps["ingest_ratings"].outputs[
        "input_fingerprint"
    ][0].load()
    champion = mlflow_client.get_model_version_by_alias(MODEL, "champion")
    if second.alias == "champion":
        assert str(champion.version) == second.version
        assert second.bootstrap["ci_low"] > 0
    else:
        assert str(champion.version) == first.version
        assert str(mlflow_client.get_model_version_by_alias(MODEL, "challenger").version) == second.version
    assert "gain" in second.reason
    # The drift report compared the new data with what the champion was trained on.
    drift_html = retrain_run.steps["drift_report"].outputs["drift_report"][0].load()
    assert "<img" in drift_html


def test_a_run_killed_midway_leaves_registry_and_drops_as_they_were(replay, mlflow_client):
    versions_before = sorted(v.version for v in mlflow_client.search_model_versions(f"name = '{MODEL}'"))
    aliases_before = mlflow_client.get_registered_model(MODEL).aliases
    drops_before = folder_digest(replay["drops"])
    config = yaml.safe_load(replay["config"].read_text())
    config["steps"]["lrml_train"]["parameters"]["train"] = {"epochs": 500, "patience": 500}
    long_config = replay["config"].with_name("long.yaml")
    long_config.write_text(yaml.safe_dump(config))

    process = subprocess.Popen(
        [sys.executable, "-m", "movielens_pipeline.integrations.run_pipeline", "--config", str(long_config)],
        cwd=REPO_ROOT, env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    output = b""
    deadline = time.monotonic() + 300
    while b"lrml epoch 1" not in output and time.monotonic() < deadline and process.poll() is None:
        output += process.stdout.read1(4096)
    assert b"lrml epoch 1" in output, output.decode()[-3000:]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    assert sorted(v.version for v in mlflow_client.search_model_versions(f"name = '{MODEL}'")) == versions_before
    assert mlflow_client.get_registered_model(MODEL).aliases == aliases_before
    assert folder_digest(replay["drops"]) == drops_before

    # The next run (started as `make run` starts it) marks the killed one failed in ZenML and
    # MLflow first; this one fails at once on a missing file and ends with the cause.
    from zenml.client import Client

    from movielens_pipeline.integrations.run_pipeline import mark_abandoned_runs

    killed = Client().get_pipeline("training_pipeline").last_run
    assert str(killed.status) == "running"
    # Another client of a shared server, which did not start this run, leaves it alone: it may be alive.
    assert mark_abandoned_runs(marker="0123abcd") == []
    assert str(Client().get_pipeline_run(killed.id).status) == "running"
    experiments = [e.experiment_id for e in mlflow_client.search_experiments()]
    assert mlflow_client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'")
    config["steps"]["ingest_ratings"]["parameters"]["source"] = {"kind": "ratings_file", "path": "/nonexistent.csv"}
    failing_config = replay["config"].with_name("failing.yaml")
    failing_config.write_text(yaml.safe_dump(config))
    finished = subprocess.run(
        [sys.executable, "-m", "movielens_pipeline.integrations.run_pipeline", "--config", str(failing_config)],
        cwd=REPO_ROOT, env=os.environ | {"PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert finished.returncode == 1
    assert f"Marked run {killed.name} failed" in finished.stdout
    last_lines = finished.stderr.strip().splitlines()[-4:]
    assert any("Step ingest_ratings failed" in line and "ratings file not found: /nonexistent.csv" in line
               for line in last_lines), last_lines  # fmt: skip
    assert str(Client().get_pipeline_run(killed.id).status) == "failed"
    assert not mlflow_client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'")
