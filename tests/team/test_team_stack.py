"""The team stack for real: PostgreSQL, MariaDB, SeaweedFS, the MLflow tracking server (basic auth)
and the ZenML server, started by the project's own code (make team-stack), with pipelines run by
separate client processes. Run with `make test-team`."""

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from movielens_pipeline.integrations import team_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


@pytest.fixture(scope="module")
def stack():
    team_stack.up()
    yield team_stack.client_environment()


def client_env(stack: dict, client: str = "main", **extra) -> dict:
    """A team client process's environment: its own ZenML client config, the checkout's repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_"))}
    config = team_stack.TEAM_DIR / "test-clients" / client
    return env | stack | {"ZENML_CONFIG_PATH": str(config), "ZENML_ANALYTICS_OPT_IN": "false",
                          "PYTHONPATH": str(REPO_ROOT)} | extra  # fmt: skip


def run_config(tmp_path: Path, name: str, registered_model: str, models: list[str], **lrml_train) -> Path:
    config = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    config["parameters"] |= {"registered_model_name": registered_model, "models": models}
    config["steps"]["lrml_train"]["parameters"]["train"] |= lrml_train
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def activate_team_stack(env: dict) -> None:
    subprocess.run([PYTHON, "-m", "movielens_pipeline.integrations.stack", "--team"], env=env, cwd=REPO_ROOT,
                   check=True, capture_output=True)  # fmt: skip


def start_run(env: dict, config: Path, activate: bool = True) -> subprocess.Popen:
    if activate:  # writes the shared checkout's .zen: never from two clients at once
        activate_team_stack(env)
    return subprocess.Popen([PYTHON, "-m", "movielens_pipeline.integrations.run_pipeline", "--config", str(config)],
                            env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = 1200) -> str:
    output, _ = process.communicate(timeout=timeout)
    return output


def as_client(env: dict, code: str) -> dict:
    """``code`` (which prints one JSON line last) run by a team client; its JSON."""
    result = subprocess.run([PYTHON, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


LAST_RUN = """
import json
from zenml.client import Client
run = Client().get_pipeline("training_pipeline").last_run
uris = [a.uri for step in run.steps.values() for outs in step.outputs.values() for a in outs]
decision = run.steps["register"].outputs["registration"][0].load() if "register" in run.steps else None
print(json.dumps({"status": str(run.status), "uris": uris, "id": str(run.id),
                  "decision": decision.model_dump() if decision else None}))
"""


STEP_LOGS = """
import json
from zenml.client import Client
client = Client()
step = client.get_pipeline_run("RUN_ID").steps["STEP"]
entries = client.zen_store.get(f"/steps/{step.id}/logs", params={"source": "step"})
print(json.dumps([entry["message"] for entry in entries]))
"""


# Each run's registration decision for one registered model, read from the ZenML server: what
# the race test checks (a client's console can lose lines when two runs share the machine).
DECISIONS = """
import json
from zenml.client import Client
runs = Client().list_pipeline_runs(pipeline="training_pipeline", sort_by="desc:created", size=10).items
decisions = [run.steps["register"].outputs["registration"][0].load() for run in runs
             if "register" in run.steps and "registration" in run.steps["register"].outputs]
print(json.dumps([d.model_dump() for d in decisions if d.registered_model == "MODEL"]))
"""


def mlflow_client(stack: dict):
    import mlflow

    os.environ["MLFLOW_TRACKING_USERNAME"] = stack["MLFLOW_TRACKING_USERNAME"]
    os.environ["MLFLOW_TRACKING_PASSWORD"] = stack["MLFLOW_TRACKING_PASSWORD"]
    mlflow.set_tracking_uri(stack["MLFLOW_TRACKING_URI"])
    mlflow.set_registry_uri(stack["MLFLOW_TRACKING_URI"])
    return mlflow.MlflowClient(stack["MLFLOW_TRACKING_URI"], stack["MLFLOW_TRACKING_URI"])


def test_the_smoke_pipeline_runs_end_to_end_on_the_team_stack(stack, tmp_path):
    env = client_env(stack)
    output = finish(start_run(env, run_config(tmp_path, "smoke", "team-smoke", ["s3rec", "sasrec_no_pretraining",
                                                                                "lrml"])))  # fmt: skip
    assert "Registry: team-smoke versions" in output, output[-3000:]
    run = as_client(env, LAST_RUN)
    assert run["status"] == "completed"  # the ZenML server recorded the run
    assert run["uris"] and all(uri.startswith("s3://zenml-artifacts/") for uri in run["uris"])  # not local disk
    import s3fs

    s3 = s3fs.S3FileSystem(key=team_stack.credentials()["S3_ACCESS_KEY"], secret=team_stack.credentials()["S3_SECRET_KEY"],
                           client_kwargs={"endpoint_url": team_stack.urls()["s3"], "region_name": "us-east-1"})
    assert all(s3.exists(uri) for uri in run["uris"][:5])
    client = mlflow_client(stack)
    champion = client.get_model_version_by_alias("team-smoke", "champion")
    training_run = client.get_run(champion.run_id)  # through the tracking server
    assert "test_ndcg_at_10" in training_run.data.metrics
    assert "Recorded for pretrain: auto" in output  # the verdict went onto the server's registered model
    assert json.loads(client.get_registered_model("team-smoke").tags["pretraining_verdict.s3rec"])["users"] > 0
    assert s3.ls("mlflow-artifacts")  # the served models went to the object store through the server
    assert not any(secret in output for secret in team_stack.credentials().values())
    # The dashboard's view of a step's logs: the server reads them back from the object store.
    logs = as_client(env, STEP_LOGS.replace("RUN_ID", run["id"]).replace("STEP", "register"))
    assert any("Registry: team-smoke versions" in message for message in logs), logs[-20:]


def test_two_clients_at_the_same_moment_leave_exactly_one_champion(stack, tmp_path):
    for round_ in range(5):
        model = f"team-race-{round_}-{int(time.time())}"
        envs = [client_env(stack, f"client-{n}") for n in (1, 2)]
        configs = [run_config(tmp_path, f"race-{round_}-{n}", model, ["lrml"], seed=n, epochs=2) for n in (1, 2)]
        for env in envs:  # each client's first activation writes the shared checkout's .zen: not at once
            activate_team_stack(env)
        with ThreadPoolExecutor(2) as pool:
            outputs = list(pool.map(lambda pair: finish(start_run(*pair, activate=False)), zip(envs, configs)))
        decisions = as_client(envs[0], DECISIONS.replace("MODEL", model))
        assert len(decisions) == 2, [o[-2000:] for o in outputs]
        client = mlflow_client(stack)
        versions = client.search_model_versions(f"name = '{model}'")
        assert len(versions) == 2 and all("registration" not in v.tags for v in versions)
        aliases = client.get_registered_model(model).aliases
        assert set(aliases) <= {"champion", "challenger"} and "champion" in aliases
        promoted = [d for d in decisions if d["alias"] == "champion"]
        assert len(promoted) == 1, decisions
        other = next(d for d in decisions if d is not promoted[0])
        assert other["alias"] == "challenger" and ("moved from" in other["reason"] or "gain" in other["reason"]), other


def test_a_client_starting_while_another_trains_leaves_that_run_alone(stack, tmp_path):
    """Each client marks failed only the runs its own killed processes left "running": another
    client's run in progress on the shared server is alive and must finish."""
    model = f"team-overlap-{int(time.time())}"
    envs = [client_env(stack, f"overlap-{n}") for n in (1, 2)]
    for env in envs:
        activate_team_stack(env)
    first = start_run(envs[0], run_config(tmp_path, "overlap-1", model, ["lrml"], seed=1, epochs=10, patience=10))
    seen = ""
    while "lrml epoch 1" not in seen and first.poll() is None:
        seen += first.stdout.readline()
    second = finish(start_run(envs[1], run_config(tmp_path, "overlap-2", model, ["lrml"], seed=2, epochs=1)))
    output = seen + finish(first)
    assert first.returncode == 0, output[-3000:]
    assert "Marked run" not in second, second[-3000:]
    assert "Registry: " + model + " versions" in output and "Registry: " + model + " versions" in second
    assert as_client(envs[0], LAST_RUN)["status"] == "completed"


def test_the_tracking_server_killed_during_register_leaves_no_half_registration(stack, tmp_path):
    env, model = client_env(stack), f"team-kill-{int(time.time())}"
    process = start_run(env, run_config(tmp_path, "kill", model, ["lrml"], epochs=1))
    seen = ""
    while "Step `register` has started" not in seen and process.poll() is None:
        seen += process.stdout.readline()
    team_stack.stop_by_pid("mlflow")
    output = seen + finish(process)
    assert process.returncode != 0, output[-2000:]
    team_stack.up()
    client = mlflow_client(stack)
    try:
        versions = client.search_model_versions(f"name = '{model}'")
        aliases = client.get_registered_model(model).aliases
    except Exception:  # noqa: BLE001 - the model was never created: unchanged
        versions, aliases = [], {}
    assert not aliases  # no alias moved
    import mlflow

    for version in versions:  # finished versions load; unfinished ones are marked, and the next run removes them
        if version.tags.get("registration") != "pending":
            assert mlflow.artifacts.list_artifacts(f"models:/{model}/{version.version}")
    again = finish(start_run(env, run_config(tmp_path, "again", model, ["lrml"], epochs=1)))
    assert "is now @champion" in again, again[-3000:]
    assert all(v.tags.get("registration") != "pending" for v in client.search_model_versions(f"name = '{model}'"))


def test_anonymous_and_wrong_password_requests_are_refused(stack, tmp_path):
    url = f"{stack['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/experiments/search"
    for authorization in (None, base64.b64encode(b"movielens:not-the-password").decode()):
        request = urllib.request.Request(url, data=b'{"max_results": 1}', method="POST",
                                         headers={"Content-Type": "application/json"})
        if authorization:
            request.add_header("Authorization", f"Basic {authorization}")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
    env = client_env(stack, MLFLOW_TRACKING_PASSWORD="not-the-password")
    process = subprocess.run([PYTHON, "-m", "movielens_pipeline.integrations.run_pipeline", "--config",
                              str(run_config(tmp_path, "wrong", "team-wrong", ["lrml"]))], env=env, cwd=REPO_ROOT,
                             capture_output=True, text=True)  # fmt: skip
    assert process.returncode == 1
    assert "MLflow tracking server at http://127.0.0.1:5050 refused user 'movielens' (HTTP 401)" in process.stderr
    assert "not-the-password" not in process.stdout + process.stderr


def test_a_service_down_at_the_start_stops_the_run_before_training_naming_it(stack, tmp_path):
    team_stack.stop_by_pid("seaweedfs")
    try:
        process = subprocess.run([PYTHON, "-m", "movielens_pipeline.integrations.run_pipeline", "--config",
                                  str(run_config(tmp_path, "down", "team-down", ["lrml"]))], env=client_env(stack),
                                 cwd=REPO_ROOT, capture_output=True, text=True)  # fmt: skip
    finally:
        team_stack.up()
    assert process.returncode == 1
    assert "Not started: artifact store s3://zenml-artifacts at http://127.0.0.1:8333 is not usable" in process.stderr
    assert "lrml epoch" not in process.stdout
