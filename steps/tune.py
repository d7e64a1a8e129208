from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional, Tuple

import mlflow
import optuna
import yaml
from zenml import log_metadata, step

from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.families import model_spec
from movielens_pipeline.integrations.run_configs import REPO_ROOT, merged
from movielens_pipeline.integrations.tracking import beside_tracking_store, experiment_tracker_name, mlflow_log_fn
from movielens_pipeline.training import tuning
from movielens_pipeline.training.trained_model import TrainedModel

DEFAULT_SPACE = {
    "finetuning.lr": tuning.Dimension(low=3e-4, high=1e-2, log=True),
    "model.hidden_dropout": tuning.Dimension(low=0.1, high=0.6),
    "model.attention_dropout": tuning.Dimension(low=0.1, high=0.6),
}


@step(experiment_tracker=experiment_tracker_name(), enable_cache=False)
def tune(
    sequence_dataset: SequenceDataset,
    pretrained: Optional[TrainedModel] = None,
    model: str = "sasrec_no_pretraining",
    search_space: dict[str, tuning.Dimension] = DEFAULT_SPACE,
    base: Optional[dict] = None,
    trials: int = 20,
    max_minutes: Optional[float] = 60.0,
    study_name: Optional[str] = None,
    storage: Optional[str] = None,
    output: str = "configs/tuned.yaml",
) -> Tuple[Annotated[dict, "best_parameters"], Annotated[str, "tuned_config"]]:
    """An Optuna study of ``model`` (a name of ``models:``) over ``search_space``, each trial an MLflow
    child run of this step's run, ``base`` the fixed parameters every trial starts from. The study
    lives in ``storage`` (default: SQLite beside the MLflow store), named ``study_name`` (default:
    the model and the data's fingerprint), so a search started again resumes it; ``max_minutes``
    bounds the whole study. Writes ``output``: the default run config with the best parameters."""
    spec = model_spec(model)
    step_id = spec.step_id or spec.train_step.rsplit(".", 1)[-1]
    name = study_name or f"{model}-{sequence_dataset.fingerprint()}"
    study = tuning.open_study(name, storage or beside_tracking_store("optuna.db"))
    mlflow.set_tags({"study": name, "model": model})

    def train(parameters: dict, log_fn) -> TrainedModel:
        return spec.trainer(sequence_dataset, parameters, log_fn, pretrained)

    tuning.search(study, train, search_space, base or {}, trials, max_minutes, around_trial=_trial_run)
    fragment = tuning.best_fragment(study, step_id, base or {})
    config = merged(yaml.safe_load((REPO_ROOT / "zenml_config.yaml").read_text()), fragment)
    text = f"# {model} tuned by study {name}: best validation NDCG@10 {study.best_value:.4f} " \
           f"(trial {study.best_trial.number} of {len(study.trials)})\n" + yaml.safe_dump(config, sort_keys=False)
    Path(REPO_ROOT / output).write_text(text)
    mlflow.log_text(text, "tuning/tuned_config.yaml")
    mlflow.log_metrics({"best_valid_ndcg_at_10": study.best_value, "finished_trials": len(tuning.finished(study))})
    _log_plots(study)
    log_metadata(metadata={"study": name, "best_value": study.best_value, "best_parameters": study.best_trial.params})
    print(f"Study {name}: best validation NDCG@10 {study.best_value:.4f} with {study.best_trial.params}; "
          f"run config written to {output}")
    return fragment, text


@contextmanager
def _trial_run(trial: optuna.Trial, parameters: dict):
    with mlflow.start_run(run_name=f"trial {trial.number}", nested=True):
        mlflow.log_params(trial.params)
        try:
            yield mlflow_log_fn("trial")
        except optuna.TrialPruned:
            mlflow.set_tag("trial_state", "pruned")
            raise
        mlflow.set_tag("trial_state", "complete")


def _log_plots(study: optuna.Study) -> None:
    """Optuna's optimisation history and parameter importances, as images of this run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    for name, plot in (("history", plots.plot_optimization_history), ("importances", plots.plot_param_importances)):
        try:
            axes = plot(study)
        except (ValueError, RuntimeError) as error:  # importances need two finished trials
            print(f"no {name} plot: {error}")
            continue
        mlflow.log_figure(axes.figure, f"tuning/{name}.png")
        plt.close(axes.figure)
