"""The model set grows by adding files: a toy model registered from its own module (tests/toy_family)
is trained, evaluated, registered and served by the unchanged pipeline, steps and pyfunc."""

import pytest
import yaml

from conftest import MLFLOW_DIR, REPO_ROOT
from movielens_pipeline.families import MODELS, model_spec


def test_every_default_model_name_is_registered_and_an_unknown_one_is_named(zenml_stack):
    from pipelines.training import DEFAULT_MODELS  # after zenml_stack: steps read the stack when imported

    assert set(DEFAULT_MODELS) | {"bpr"} <= set(MODELS)
    with pytest.raises(ValueError, match="unknown model 'sasrec' in models:; known: .*'sasrec_no_pretraining'"):
        model_spec("sasrec")


def test_a_model_added_by_its_own_files_is_trained_evaluated_registered_and_served(zenml_stack, tmp_path,
                                                                                    mlflow_client):  # fmt: skip
    from zenml.client import Client

    import toy_family.toy_mlp  # noqa: F401  (registers the family: the one line a new model adds)
    from movielens_pipeline.integrations.stack import ensure_experiments
    from pipelines.training import training_pipeline
    from test_serving import invoke, scoring_server

    config = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    # Cached data steps: a fresh dataset artifact would become the one later cached runs build on.
    config.pop("enable_cache")
    config["settings"]["experiment_tracker.mlflow"]["experiment_name"] = "movielens-toy"
    config["parameters"] |= {"registered_model_name": "movielens-toy", "models": ["toy_mlp", "lrml"]}
    ensure_experiments(MLFLOW_DIR, ["movielens-toy"])
    config_path = tmp_path / "toy.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run = Client().get_pipeline_run(training_pipeline.with_options(config_path=str(config_path))().id)

    assert {"toy_mlp_train", "lrml_train"} <= set(run.steps) and "s3rec_finetune" not in run.steps
    table = run.steps["evaluate"].outputs["evaluation_metrics"][0].load()
    assert {"toy_mlp", "lrml", "popularity", "ease"} == set(table["model"])
    decision = run.steps["register"].outputs["registration"][0].load()
    version = mlflow_client.get_model_version("movielens-toy", decision.versions["toy_mlp"])
    assert version.tags["architecture"] == "toy_mlp"

    # Served by a separate `mlflow models serve` process, which finds the family through the model.
    mlflow_client.set_registered_model_alias("movielens-toy", "champion", version.version)
    with scoring_server("movielens-toy") as url:
        answer = invoke(url, [{"user_id": 1, "history": []}, {"user_id": 10**12, "history": []}], {"k": 5})
    assert answer.status_code == 200, answer.text
    known, unknown = answer.json()["predictions"]
    assert len(known["item_ids"]) == 5 and known["fallback"] == ""
    assert unknown["fallback"] == "popularity"
