"""Hyper-parameter search for any registered model: an Optuna study (TPE sampler, median pruner
on per-epoch validation NDCG@10) over a search space declared in YAML, stored in a database so an
interrupted search resumes, within a time budget for the whole study.

A search space names step parameters by their path in the run config, so the best trial is a
run-config fragment as it is:

    search_space:
      finetuning.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
      finetuning.batch_size: {choices: [64, 128, 256]}
      model.hidden_dropout: {low: 0.1, high: 0.6}
      model.num_layers: {low: 1, high: 3, type: int}
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Literal, Optional

import optuna
from pydantic import model_validator

from movielens_pipeline.parameters import StepParameters
from movielens_pipeline.training.trained_model import TrainedModel

logger = logging.getLogger(__name__)

# A trial ends as pruned when, after this many epochs, its validation NDCG@10 is below the median
# of the completed trials at the same epoch (and only once this many trials have finished). Early
# epochs rank learning rates, not final quality: in a 20-trial S3Rec study on ML-100k with 3
# warm-up epochs, 16 trials were pruned at epoch 3 or 4, though the second-best completed trial
# (lr 1.4e-3) stood at 0.063 after epoch 3, below 9 of those 16, and finished at 0.123.
PRUNER_WARMUP_EPOCHS = 10
PRUNER_STARTUP_TRIALS = 4


class Dimension(StepParameters):
    """One searched parameter: a range (``low``..``high``, ``log`` for a log scale, ``type`` int or
    float) or a list of ``choices``."""

    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    type: Literal["float", "int"] = "float"
    choices: Optional[list[Any]] = None

    @model_validator(mode="after")
    def _range_or_choices(self):
        if (self.choices is None) == (self.low is None or self.high is None):
            raise ValueError("a dimension is a range (low and high) or a list of choices, not both or neither")
        if self.choices is None and self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self


def suggest(trial: optuna.Trial, space: dict[str, Dimension]) -> dict[str, Any]:
    """The trial's values, by their dotted names."""
    values = {}
    for name, dimension in space.items():
        if dimension.choices is not None:
            values[name] = trial.suggest_categorical(name, dimension.choices)
        elif dimension.type == "int":
            values[name] = trial.suggest_int(name, int(dimension.low), int(dimension.high), log=dimension.log)
        else:
            values[name] = trial.suggest_float(name, dimension.low, dimension.high, log=dimension.log)
    return values


def nested(values: dict[str, Any], base: dict | None = None) -> dict:
    """``{"finetuning.lr": 1e-3}`` as ``{"finetuning": {"lr": 1e-3}}``, over a copy of ``base``."""
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in (base or {}).items()}
    for name, value in values.items():
        *path, leaf = name.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def open_study(name: str, storage: str) -> optuna.Study:
    """The study of this name in ``storage`` (created when new). Trials a killed search left
    running are marked failed: they are not repeated, and never count as finished."""
    try:
        earlier = len(optuna.load_study(study_name=name, storage=storage).trials)
    except KeyError:
        earlier = 0
    study = optuna.create_study(
        study_name=name, storage=storage, direction="maximize", load_if_exists=True,
        # Seeded by the trials so far: a resumed search draws new values, not the first session's again.
        sampler=optuna.samplers.TPESampler(seed=earlier, n_startup_trials=PRUNER_STARTUP_TRIALS),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_EPOCHS),
    )  # fmt: skip
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        logger.warning("trial %d of study %s was left running by an interrupted search: marked failed",
                       trial.number, name)  # fmt: skip
    return study


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study.get_trials(deepcopy=False, states=done)


def seconds_spent(study: optuna.Study) -> float:
    """Wall time the study's finished trials took, over every session that ran them."""
    return sum((t.datetime_complete - t.datetime_start).total_seconds() for t in finished(study)
               if t.datetime_complete and t.datetime_start)  # fmt: skip


def search(study: optuna.Study, train: Callable[[dict, Callable], TrainedModel], space: dict[str, Dimension],
           base: dict, trials: int, max_minutes: float | None, around_trial=None) -> None:  # fmt: skip
    """Run trials until the study has ``trials`` finished ones or the budget (for the whole study,
    earlier sessions included) is spent. ``train(parameters, log_fn)`` trains one model;
    ``around_trial(trial, parameters)``, a context manager, wraps each trial (its MLflow run)."""
    remaining = trials - len(finished(study))
    if remaining <= 0:
        logger.info("study %s already has %d finished trials", study.study_name, trials)
        return
    timeout = None if max_minutes is None else max(0.0, max_minutes * 60 - seconds_spent(study))
    if timeout == 0.0:
        logger.info("study %s has spent its %s-minute budget", study.study_name, max_minutes)
        return

    def objective(trial: optuna.Trial) -> float:
        parameters = nested(suggest(trial, space), base)

        def report(metrics: dict[str, float], epoch: int) -> None:
            value = metrics.get("valid_ndcg_at_10")
            if value is None or not math.isfinite(value):
                return
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}: validation NDCG@10 {value:.4f} below the median")

        if around_trial is None:
            return train(parameters, report).summary["best_valid_ndcg_at_10"]
        with around_trial(trial, parameters) as log:
            def log_and_report(metrics: dict[str, float], epoch: int) -> None:
                log(metrics, epoch)
                report(metrics, epoch)

            trained = train(parameters, log_and_report)
            log({"best_valid_ndcg_at_10": trained.summary["best_valid_ndcg_at_10"]}, trained.summary["best_epoch"])
            return trained.summary["best_valid_ndcg_at_10"]

    study.optimize(objective, n_trials=remaining, timeout=timeout, catch=())


def best_fragment(study: optuna.Study, step: str, base: dict) -> dict:
    """The best trial's parameters as a run-config fragment for ``step``."""
    return {"steps": {step: {"parameters": nested(study.best_trial.params, base)}}}
