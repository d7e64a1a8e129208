"""Hyper-parameter search: an interrupted study resumes without repeating finished trials, the
search finds the region a plant puts the best parameters in, and the pipeline leaves a study,
MLflow child runs, plots and a run config behind."""

import optuna
import pytest
import yaml

from conftest import MLFLOW_DIR, REPO_ROOT
from movielens_pipeline.families import model_spec
from movielens_pipeline.training import tuning
from test_lrml import planted_dataset

# Adam's learning rate decides everything on the planted clusters within 4 epochs: below about
# 1e-3 BPR-MF barely leaves its random start; 1e-2 finds the clusters.
LR_SPACE = {"train.lr": tuning.Dimension(low=1e-5, high=1e-1, log=True)}
BASE = {"train": {"epochs": 4, "patience": 4, "batch_size": 256, "negatives_per_positive": 2}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def bpr_search(study, dataset, trials):
    spec = model_spec("bpr")
    tuning.search(study, lambda parameters, log_fn: spec.trainer(dataset, parameters, log_fn), LR_SPACE, BASE,
                  trials, max_minutes=None)  # fmt: skip


def test_the_search_finds_the_learning_rates_the_plant_rewards(tmp_path):
    study = tuning.open_study("planted", f"sqlite:///{tmp_path / 'optuna.db'}")
    bpr_search(study, planted_dataset(), trials=10)
    assert len(tuning.finished(study)) == 10
    assert 1e-3 < study.best_params["train.lr"] and study.best_value > 0.3
    scores = {t.params["train.lr"]: t.value for t in study.trials if t.value is not None}
    assert max(v for lr, v in scores.items() if lr < 1e-4) < study.best_value - 0.1


def test_an_interrupted_study_resumes_without_repeating_finished_trials(tmp_path):
    storage, dataset = f"sqlite:///{tmp_path / 'optuna.db'}", planted_dataset()
    first = tuning.open_study("resumed", storage)
    bpr_search(first, dataset, trials=3)
    before = {t.number: (t.params, t.value) for t in tuning.finished(first)}
    first.ask()  # a trial the killed search left running

    again = tuning.open_study("resumed", storage)
    assert [t.state for t in again.trials][3] == optuna.trial.TrialState.FAIL
    bpr_search(again, dataset, trials=5)
    done = tuning.finished(again)
    assert len(done) == 5 and {t.number: (t.params, t.value) for t in done if t.number < 3} == before
    new_rates = {t.params["train.lr"] for t in done if t.number > 3}
    assert len(new_rates) == 2 and not new_rates & {params["train.lr"] for params, _ in before.values()}


def test_the_tuning_pipeline_leaves_its_study_trials_plots_and_a_run_config(zenml_stack, tmp_path, mlflow_client):
    from zenml.client import Client

    from movielens_pipeline.integrations.stack import ensure_experiments
    from pipelines.tuning import tuning_pipeline

    config = yaml.safe_load((REPO_ROOT / "configs" / "tuning.yaml").read_text())
    config["parameters"]["model"] = "lrml"
    config["steps"]["tune"]["parameters"] = {
        "trials": 2, "max_minutes": 10, "base": {"train": {"epochs": 2}, "model": {"dim": 16}},
        "search_space": {"train.lr": {"low": 0.01, "high": 0.1, "log": True}},
        "storage": f"sqlite:///{tmp_path / 'optuna.db'}", "output": str(tmp_path / "tuned.yaml"),
    }  # fmt: skip
    ensure_experiments(MLFLOW_DIR, ["movielens-tuning"])
    path = tmp_path / "tuning.yaml"
    path.write_text(yaml.safe_dump(config))
    run = Client().get_pipeline_run(tuning_pipeline.with_options(config_path=str(path))().id)

    tuned = yaml.safe_load((tmp_path / "tuned.yaml").read_text())
    assert 0.01 <= tuned["steps"]["lrml_train"]["parameters"]["train"]["lr"] <= 0.1
    assert tuned["steps"]["lrml_train"]["parameters"]["model"] == {"dim": 16}
    assert tuned["parameters"]["models"]  # the default run, with the best parameters over it
    experiment = mlflow_client.get_experiment_by_name("movielens-tuning").experiment_id
    step_run = mlflow_client.search_runs([experiment], filter_string="tags.study LIKE 'lrml-%'")[0]
    trials = mlflow_client.search_runs([experiment],
                                       filter_string=f"tags.mlflow.parentRunId = '{step_run.info.run_id}'")
    assert len(trials) == 2 and all("train.lr" in t.data.params for t in trials)
    artifacts = {a.path for a in mlflow_client.list_artifacts(step_run.info.run_id, "tuning")}
    assert {"tuning/history.png", "tuning/importances.png", "tuning/tuned_config.yaml"} <= artifacts
    assert run.steps["tune"].outputs["best_parameters"][0].load()["steps"]["lrml_train"]
