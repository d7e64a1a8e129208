"""The registered champion behind a real MLflow scoring server on loopback."""

import contextlib
import os
import signal
import socket
import subprocess
import time

import pytest
import requests

from conftest import MLFLOW_DIR, REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def readme_serve_command(model: str, port: int) -> str:
    """The by-hand serve command exactly as the README shows it, for another model name and port."""
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme[readme.index("# the same by hand"):].split("```")[0]
    command = " ".join(line.rstrip("\\").strip() for line in block.splitlines()[1:] if line.strip())
    assert "movielens-recommender@champion" in command and "-p 5001" in command, command
    return command.replace("movielens-recommender", model).replace("-p 5001", f"-p {port}")


@contextlib.contextmanager
def scoring_server(model: str):
    """``models:/<model>@champion`` behind a scoring server started with the README's own command
    line, from the checkout; yields its URL."""
    port = free_port()
    command = readme_serve_command(model, port) + " --workers 1"
    # MLFLOW_DIR makes `make -s mlflow-uri` print the test session's store instead of the checkout's.
    env = os.environ | {"MLFLOW_DIR": str(MLFLOW_DIR)}
    process = subprocess.Popen(
        ["bash", "-c", command], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,  # one process group: the shell, mlflow and its uvicorn workers
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
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("the scoring server did not come up within 120 s")
    try:
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(smoke_run):
    with scoring_server("movielens-smoke") as url:
        yield url, smoke_run


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
        ([{"user_id": 1.5, "history": [1, 2]}], None, "row 0: user_id must be an integer id"),
        ([{"history": [1]}, {"user_id": 1e30, "history": [1, 2]}], None, "row 1: user_id must be an integer id"),
        ([{"user_id": "seven", "history": [1]}], None, "'seven'"),
        ([{"user_id": 1, "history": [1.5]}], None, "row 0: history must hold integer item ids, got 1.5"),
        ([{"user_id": 1, "history": [1, "x"]}], None, "row 0: history must hold integer item ids, got 'x'"),
        ([{"history": [1]}] * 10_001, None, "the limit is MAX_ROWS = 10000"),
        ([{"history": list(range(1, 10_002))}], None, "the limit is MAX_HISTORY = 10000"),
    ],
)
def test_malformed_requests_get_4xx_and_the_server_keeps_serving(server, records, params, expected_text):
    url, _ = server
    answer = invoke(url, records, params)
    assert 400 <= answer.status_code < 500, answer.text
    assert expected_text in answer.text
    assert invoke(url, [{"history": [1, 2, 3]}]).status_code == 200


def test_a_known_user_without_history_is_answered_from_the_stored_history_minus_what_they_rated(server):
    url, smoke_run = server
    dataset = dataset_of(smoke_run)
    item_id = dict(zip(dataset.item_map["item_idx"], dataset.item_map["item_id"]))
    for position in (0, 5, 17):
        user_id = int(dataset.user_map["user_id"].iloc[position])
        rated = {item_id[i] for i in dataset.full_sequences()[position]}
        answer = invoke(url, [{"user_id": user_id, "history": []}], {"k": 20})
        assert answer.status_code == 200, answer.text
        row = answer.json()["predictions"][0]
        assert row["fallback"] == "" and row["user_id"] == user_id and len(row["item_ids"]) == 20
        assert not set(row["item_ids"]) & rated


def test_the_python_call_with_integer_user_ids_works(smoke_run, mlflow_client):
    import mlflow
    import pandas as pd

    model = mlflow.pyfunc.load_model("models:/movielens-smoke@champion")
    dataset = dataset_of(smoke_run)
    users = [int(u) for u in dataset.user_map["user_id"].iloc[:2]]
    answer = model.predict(pd.DataFrame({"user_id": users, "history": [[1, 2, 3], [4, 5]]}), params={"k": 5})
    assert answer["user_id"].tolist() == users and all(len(items) == 5 for items in answer["item_ids"])
    many = model.predict(pd.DataFrame({"user_id": [users[0]] * 600, "history": [[1, 2, 3]] * 600}))
    assert len(many) == 600 and all(items == many["item_ids"][0] for items in many["item_ids"])


def test_block_wise_top_k_answers_exactly_as_the_full_score_matrix(smoke_run, mlflow_client, monkeypatch):
    import sys

    import mlflow
    import numpy as np
    import pandas as pd

    model = mlflow.pyfunc.load_model("models:/movielens-smoke@champion")
    scorer = model.unwrap_python_model().recommender.score_fn
    assert type(scorer).__name__ == "DotProductScorer", "the smoke champion is not a dot-product model"
    dataset = dataset_of(smoke_run)
    known = [int(u) for u in dataset.user_map["user_id"].iloc[:40]]
    some_items = dataset.item_map["item_id"].astype(int).tolist()
    request = pd.DataFrame({
        "user_id": known + [None],  # the last row gets the popularity fallback
        "history": [[]] * 20 + [some_items[i : i + 3] for i in range(20)] + [[]],
    })  # fmt: skip
    direct = model.predict(request, params={"k": 20})
    top_items = sys.modules["movielens_pipeline.evaluation.top_items"]  # the module the served code imported
    monkeypatch.setattr(top_items, "DIRECT_BYTES", 0)
    monkeypatch.setattr(top_items, "BLOCK_BYTES", 4 * 41 * 64)  # blocks of 64 items
    block_wise = model.predict(request, params={"k": 20})
    assert block_wise["item_ids"].tolist() == direct["item_ids"].tolist()
    assert block_wise["fallback"].tolist() == [""] * 40 + ["popularity"]
    np.testing.assert_allclose(np.array(block_wise["scores"].tolist()), np.array(direct["scores"].tolist()), rtol=1e-5)
