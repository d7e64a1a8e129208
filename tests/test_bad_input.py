"""Bad input stops the run at validation: clear report, nothing built, nothing registered."""

import pandas as pd
import pytest
import yaml

from conftest import REPO_ROOT


def test_a_broken_ratings_file_stops_the_pipeline_before_training(smoke_run, mlflow_client, tmp_path):
    from zenml.client import Client

    from pipelines.training import training_pipeline

    ratings = pd.DataFrame(
        {
            "user": [1, 1, 1, 2, 2, 2],
            "item": [10, 11, 12, 10, 11, 12],
            "stars": [4.0, 5.0, 9.0, 3.0, 2.0, 4.0],  # 9 stars is off the 0.5-5 scale
            "time": [978300760 + i for i in range(6)],
        }
    )
    path = tmp_path / "ratings.csv"
    ratings.to_csv(path, index=False)
    config = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    config["steps"]["ingest_ratings"]["parameters"]["source"] = {
        "kind": "ratings_file",
        "path": str(path),
        "columns": {"user": "user", "item": "item", "rating": "stars", "timestamp": "time"},
    }
    config["steps"]["validate_data"] = {"parameters": {"require_item_attributes": False}}
    config_path = tmp_path / "broken.yaml"
    config_path.write_text(yaml.safe_dump(config))
    versions_before = len(mlflow_client.search_model_versions("name='movielens-smoke'"))

    with pytest.raises(RuntimeError, match="validate_data"):
        training_pipeline.with_options(config_path=str(config_path))()

    run = Client().get_pipeline("training_pipeline").last_run
    assert run.status == "failed"
    assert run.steps["validate_data"].status == "failed"
    assert "build_dataset" not in run.steps or run.steps["build_dataset"].status != "completed"
    assert len(mlflow_client.search_model_versions("name='movielens-smoke'")) == versions_before
    report = Client().get_artifact_version("failed_validation_results").load()
    failed = [r for r in report["results"] if not r["success"]]
    assert any(r["column"] == "rating" and 9.0 in r["bad_values"] for r in failed), failed
    message = run.steps["validate_data"].exception_info.traceback
    assert "DataContractViolation" in message
    assert "interactions.rating" in message and "bad values [9.0]" in message
