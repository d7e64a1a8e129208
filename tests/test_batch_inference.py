"""Batch recommendations: the served model's own answers for every user, written as Parquet parts,
unknown users flagged, and a published table only ever replaced by the champion's."""

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from conftest import MLFLOW_DIR, REPO_ROOT


def run_batch(tmp_path, name: str, **parameters):
    from zenml.client import Client

    from pipelines.batch_inference import batch_inference_pipeline

    config = yaml.safe_load((REPO_ROOT / "configs" / "recommend.yaml").read_text())
    config["settings"]["experiment_tracker.mlflow"]["experiment_name"] = "movielens-smoke"
    config["parameters"] |= {"registered_model_name": "movielens-smoke"} | parameters.pop("pipeline", {})
    config["steps"]["batch_recommend"]["parameters"] |= parameters.pop("batch", {})
    config["steps"]["publish_recommendations"]["parameters"] |= {"database_url": f"sqlite:///{tmp_path / 'recs.db'}"}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return Client().get_pipeline_run(batch_inference_pipeline.with_options(config_path=str(path))().id)


def test_batch_recommendations_are_the_served_models_answers_and_are_published(smoke_run, tmp_path, mlflow_client):
    import mlflow

    run = run_batch(tmp_path, "all", batch={"k": 5, "rows_per_part": 300})
    table = run.steps["batch_recommend"].outputs["recommendations"][0].load()
    frame = table.read()
    users = frame["user_id"].unique()
    dataset = smoke_run.run.steps["build_dataset"].outputs["sequence_dataset"][0].load()
    assert len(users) == dataset.num_users and len(frame) == 5 * dataset.num_users
    assert table.summary.parts == -(-dataset.num_users // 300) and table.summary.fallback_users == 0
    assert list(frame.columns) == ["user_id", "rank", "item_id", "title", "score", "fallback"]

    # The same users and k through the registered pyfunc give the same items, titles and scores.
    mlflow.set_tracking_uri(f"sqlite:///{MLFLOW_DIR / 'mlflow.db'}")  # ZenML reset it after the run
    champion = mlflow_client.get_model_version_by_alias("movielens-smoke", "champion")
    model = mlflow.pyfunc.load_model(f"models:/movielens-smoke/{champion.version}")
    some = np.sort(users)[[0, 1, 17, -1]]
    answers = model.predict(pd.DataFrame({"user_id": some, "history": [[] for _ in some]}), params={"k": 5})
    for user, answer in zip(some, answers.itertuples()):
        rows = frame[frame["user_id"] == user].sort_values("rank")
        assert rows["item_id"].tolist() == list(answer.item_ids) and rows["title"].tolist() == list(answer.titles)
        np.testing.assert_allclose(rows["score"], answer.scores, rtol=1e-6)  # float32: batch shapes differ

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'recs.db'}")
    published = pd.read_sql("SELECT * FROM recommendations", engine)
    assert len(published) == len(frame)
    record = pd.read_sql("SELECT * FROM published_recommendations", engine).iloc[0]
    assert record["version"] == str(champion.version) and record["rows"] == len(frame) and record["k"] == 5


def test_a_user_list_with_unknown_ids_is_answered_by_popularity_and_flagged(smoke_run, tmp_path):
    dataset = smoke_run.run.steps["build_dataset"].outputs["sequence_dataset"][0].load()
    known = dataset.user_map["user_id"].head(3).tolist()
    users_file = tmp_path / "users.csv"
    pd.DataFrame({"user_id": known + [10**9, 10**9 + 1]}).to_csv(users_file, index=False)
    run = run_batch(tmp_path, "list", batch={"users_file": str(users_file)}, pipeline={"publish": False})
    frame = run.steps["batch_recommend"].outputs["recommendations"][0].load().read()
    flags = frame.groupby("user_id")["fallback"].first()
    assert (flags[known] == "").all() and (flags[[10**9, 10**9 + 1]] == "popularity").all()
    assert len(frame) == 10 * 5


def test_a_model_that_is_not_the_champion_never_replaces_a_published_table(smoke_run, tmp_path, mlflow_client):
    champion = mlflow_client.get_model_version_by_alias("movielens-smoke", "champion")
    run_batch(tmp_path, "champion", batch={"k": 3})
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'recs.db'}")
    before = pd.read_sql("SELECT * FROM recommendations", engine)
    other = next(v.version for v in mlflow_client.search_model_versions("name='movielens-smoke'")
                 if str(v.version) != str(champion.version))  # fmt: skip
    with pytest.raises(RuntimeError, match="publish_recommendations"):
        run_batch(tmp_path, "other", pipeline={"version": str(other)}, batch={"k": 3})
    pd.testing.assert_frame_equal(pd.read_sql("SELECT * FROM recommendations", engine), before)
