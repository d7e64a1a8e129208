"""The registered champion behind a real MLflow scoring server on loopback."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import MLFLOW_DIR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(smoke_run):
    port = free_port()
    venv_bin = Path(sys.executable).parent
    env = os.environ | {
        "MLFLOW_TRACKING_URI": f"sqlite:///{MLFLOW_DIR / 'mlflow.db'}",
        "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}",  # the server execs uvicorn by name
    }
    mlflow_cli = venv_bin / "mlflow"
    process = subprocess.Popen(
        [str(mlflow_cli), "models", "serve", "-m", "models:/movielens-smoke@champion",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "--workers", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(1)
        assert process.poll() is None, process.stdout.read().decode()
    else:
        process.kill()
        pytest.fail("the scoring server did not come up within 120 s")
    yield url, smoke_run
    process.terminate()
    process.wait(timeout=30)


def invoke(url, records, params=None):
    body = {"dataframe_records": records}
    if params is not None:
        body["params"] = params
    return requests.post(f"{url}/invocations", json=body, timeout=30)


def dataset_of(smoke_run):
    return smoke_run.run.steps["build_dataset"].outputs["sequence_dataset"][0].load()


def test_known_user_gets_k_unseen_titled_items(server):
    url, smoke_run = server
    dataset = dataset_of(smoke_run)
    user_id = int(dataset.user_map["user_id"].iloc[0])
    history = dataset.item_map.set_index("item_idx").loc[dataset.train_sequences()[0], "item_id"].tolist()
    answer = invoke(url, [{"user_id": user_id, "history": history}], {"k": 7})
    assert answer.status_code == 200, answer.text
    row = answer.json()["predictions"][0]
    assert len(row["item_ids"]) == len(row["titles"]) == len(row["scores"]) == 7
    assert row["fallback"] == ""
    assert not set(row["item_ids"]) & set(history)
    assert row["scores"] == sorted(row["scores"], reverse=True)
    titles = dict(zip(dataset.item_map["item_id"], dataset.item_map["title"]))
    assert row["titles"] == [titles[i] for i in row["item_ids"]]


def test_cold_user_and_empty_history_get_flagged_popularity(server):
    url, smoke_run = server
    dataset = dataset_of(smoke_run)
    answer = invoke(url, [{"user_id": 10**9, "history": []}, {"history": [10**9]}])
    assert answer.status_code == 200, answer.text
    rows = answer.json()["predictions"]
    popularity = dataset.item_popularity()
    count_of = dict(zip(dataset.item_map["item_id"], popularity[dataset.item_map["item_idx"]]))
    top_counts = sorted(popularity, reverse=True)[:10]
    for row in rows:
        assert row["fallback"] == "popularity"
        assert [count_of[i] for i in row["item_ids"]] == top_counts  # ties may come in any order
        assert row["scores"] == top_counts


@pytest.mark.parametrize(
    "records, params, expected_text",
    [
        ([{"user_id": 1, "history": "not a list"}], None, "history"),
        ([{"user_id": 1}], None, "history"),
        ([{"user_id": 1, "history": [1, 2]}], {"k": -3}, "k"),
        ([{"user_id": 1, "history": [1, 2]}], {"k": 10**7}, "k"),
        ([{"user_id": 1, "history": [1, 2]}], {"k": "ten"}, "k"),
    ],
)
def test_malformed_requests_get_4xx_and_the_server_keeps_serving(server, records, params, expected_text):
    url, _ = server
    answer = invoke(url, records, params)
    assert 400 <= answer.status_code < 500, answer.text
    assert expected_text in answer.text
    assert invoke(url, [{"history": [1, 2, 3]}]).status_code == 200
