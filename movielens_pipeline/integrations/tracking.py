"""MLflow logging for the steps (the library only sees a LogFn or returns plain values)."""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import asdict, is_dataclass
from datetime import date

import mlflow
import pandas as pd
from pydantic import BaseModel

from movielens_pipeline.evaluation.protocols import flat_metrics
from movielens_pipeline.integrations.logs import silence_framework_noise
from movielens_pipeline.training.checkpoints import (
    CheckpointStore,
    checkpoint_root,
    config_fingerprint,
)
from movielens_pipeline.training.loop import LogFn
from movielens_pipeline.training.pretraining_plan import PretrainingPlan, plan_pretraining
from movielens_pipeline.training.runtime import pick_device, seed_everything
from movielens_pipeline.training.trained_model import TrainedModel, save_trained_model


# Every step that tracks to MLflow imports this module, under make run and zenml pipeline run alike.
silence_framework_noise()


def flat_params(prefix: str, config) -> dict[str, str]:
    """A config (dataclass, parameter model or dict) as MLflow params ``prefix.field``."""
    if isinstance(config, BaseModel):
        values = config.model_dump()
    else:
        values = asdict(config) if is_dataclass(config) else dict(config)
    return {f"{prefix}.{k}": str(v) for k, v in values.items()}


def mlflow_log_fn(prefix: str) -> LogFn:
    """Per-epoch metrics as MLflow metrics named ``<prefix>_<metric>`` with the epoch as step."""

    def log(metrics: dict[str, float], step: int) -> None:
        mlflow.log_metrics({f"{prefix}_{k}": float(v) for k, v in metrics.items()}, step=step)

    log.prefix = prefix  # a training worker logs under the same names (integrations.workers)
    return log


def log_curves(history: list[dict], title: str, artifact_name: str) -> None:
    """Plot every numeric series of a training history and log the PNG to MLflow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for row in history for k, v in row.items() if isinstance(v, (int, float))} - {"epoch"})
    losses = [k for k in keys if "loss" in k]
    quality = [k for k in keys if k.startswith("valid_")]
    # One panel per kind of series the run has (pretraining has no validation metric).
    panels = [(group, label) for group, label in ((losses, "loss"), (quality, "validation metric")) if group]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.5 * max(len(panels), 1), 4), squeeze=False)
    for ax, (group, label) in zip(axes[0], panels):
        for key in group:
            ax.plot([row.get("epoch", i) for i, row in enumerate(history)], [row.get(key) for row in history], label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, artifact_name)
        fig.savefig(path, dpi=100)
        mlflow.log_artifact(path)
    plt.close(fig)


def experiment_tracker_name() -> str | None:
    """Name of the active stack's experiment tracker, so steps work on any stack that has one."""
    from zenml.client import Client

    tracker = Client().active_stack.experiment_tracker
    return tracker.name if tracker else None


def store_identity(tracking_uri: str) -> str:
    """The tracking store down to its instance: its URI and when its Default experiment (created
    with the store) was created; a fresh uuid when the store cannot say (never a cache hit)."""
    try:
        created = mlflow.MlflowClient(tracking_uri).get_experiment("0").creation_time
    except Exception:  # noqa: BLE001 - unknown store: nothing may be reused from it
        return f"{tracking_uri}|{uuid.uuid4()}"
    return f"{tracking_uri}|{created}"


def tracking_store_identity() -> str:
    """Part of the cache key of every cached step that logs to MLflow. A cached step's MLflow run
    lives in the store it ran against; reused against another store (a second checkout, or this
    one after its .mlflow was deleted), later steps would log into a run that is not there."""
    from zenml.client import Client

    tracker = Client().active_stack.experiment_tracker
    return store_identity(tracker.get_tracking_uri()) if tracker else ""


def log_trained_run(trained: TrainedModel, name: str, device: str, data_fingerprint: str) -> TrainedModel:
    """Name the model and link it to this MLflow run; log its summary figures, device, data
    identity, loss curves and best weights."""
    trained.summary["name"] = name
    trained.summary["mlflow_run_id"] = mlflow.active_run().info.run_id
    mlflow.set_tags({"model": name, "device": device, "data_fingerprint": data_fingerprint,
                     "stop_reason": trained.summary.get("stop_reason", "")})  # fmt: skip
    mlflow.log_metrics(
        {f"{name}_{k}": float(v) for k, v in trained.summary.items() if isinstance(v, (int, float))}
    )
    log_curves(trained.history, f"{name} training", f"{name}_curves.png")
    with tempfile.TemporaryDirectory() as tmp:
        save_trained_model(trained, tmp)
        mlflow.log_artifacts(tmp, artifact_path=f"{name}_weights")
    return trained


def git_commit() -> str:
    """The checkout's commit (with '-dirty' when it has uncommitted changes), or 'unknown'."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def log_evaluation(table: pd.DataFrame, run_ids: dict[str, str], report_html: str, chart_png: bytes,
                   comparison: dict, baseline_params: dict[str, dict]) -> None:
    """Each trained model's metrics on its own training run (so the MLflow UI shows them there),
    each baseline in a child run of its own with its parameters, and the report, chart and
    comparison on this run."""
    from movielens_pipeline.evaluation.reports import png_to_image

    client = mlflow.MlflowClient()
    for name in table["model"].unique():
        model_metrics = flat_metrics(table, name)
        if name in run_ids:
            for key, value in model_metrics.items():
                client.log_metric(run_ids[name], key, value)
        else:
            with mlflow.start_run(run_name=name, nested=True):
                mlflow.set_tags({"model": name, "baseline": "true"})
                mlflow.log_params(baseline_params.get(name, {}))
                mlflow.log_metrics(model_metrics)
    mlflow.log_text(report_html, "evaluation/report.html")
    mlflow.log_image(png_to_image(chart_png), "evaluation/comparison.png")
    mlflow.log_dict(comparison, "evaluation/best_vs_runner_up.json")


def warm_start_from_registry(champion, architecture: str, model, dataset) -> TrainedModel | None:
    """Initial weights from the registry's model of this architecture (``champion`` first), with
    what was carried over logged as params; None (a cold start) when it has none."""
    from movielens_pipeline.serving.registry import previous_model
    from movielens_pipeline.training.warm_start import warm_start

    initial, carried = warm_start(previous_model(champion, architecture), model, dataset)
    if initial is None:
        print(f"warm start: no {architecture} model in {champion.registered_model} yet, starting cold")
    mlflow.log_params({f"warm_start.{k}": v for k, v in carried.items()})
    return initial


def training_checkpoints(job: str, *identity) -> CheckpointStore:
    """The checkpoint store of a training job keyed by what defines the run (configs, data and
    initial weights' content), never by timings, so a rerun after a kill resumes."""
    return CheckpointStore(checkpoint_root(), job, config_fingerprint(*identity))


def tracked_pairwise_training(name: str, dataset, model_config, train, device: str, module, trainer,
                              warm_start_champion=None, processes: int = 1) -> TrainedModel:  # fmt: skip
    """What a pairwise model's training step does (LRML, BPR-MF): log its configs, warm-start it
    from the registry's model of this name when the run warm-starts (``module`` builds a fresh
    one to copy into), train it with ``trainer`` on ``processes`` processes (resuming from its
    checkpoint), and log the run."""
    from movielens_pipeline.integrations import workers

    torch_device = pick_device(device)
    mlflow.log_params(flat_params("model", model_config) | flat_params("train", train))
    initial = None
    if warm_start_champion is not None:
        seed_everything(train.seed)
        initial = warm_start_from_registry(warm_start_champion, name, module(model_config), dataset)
    checkpoints = training_checkpoints(
        f"{name}_train", model_config, train, dataset.fingerprint(), initial.weights_fingerprint() if initial else None,
    )  # fmt: skip
    mlflow.log_param("processes", processes)
    trained = workers.train(trainer, dataset, processes, torch_device, mlflow_log_fn("train"), checkpoints,
                            model_config=model_config, cfg=train, initial=initial)  # fmt: skip
    return log_trained_run(trained, name, str(torch_device), dataset.fingerprint())


def beside_tracking_store(file_name: str) -> str:
    """A SQLite URL for ``file_name`` next to a local MLflow store (``.mlflow/<file_name>``); a job
    tracking to a server names its own database instead (a team's PostgreSQL, say)."""
    from pathlib import Path

    tracking = mlflow.get_tracking_uri()
    if not tracking.startswith("sqlite:///"):
        raise ValueError(f"MLflow tracks to {tracking}: name the database this job writes to")
    return f"sqlite:///{Path(tracking.removeprefix('sqlite:///')).parent / file_name}"


def planned_pretraining(registered_model_name: str, models: list[str], pretrain, max_age_days: int) -> PretrainingPlan:
    """The run's pretraining plan, while the pipeline is composed: with ``pretrain: auto`` it reads
    the verdicts recorded on the registered model from the active stack's registry. A registry
    that cannot be read leaves the run measuring (training both), never guessing."""
    from zenml.client import Client

    from movielens_pipeline.serving.registry import pretraining_verdicts

    verdicts, unreadable = {}, None
    if pretrain == "auto":
        try:
            tracker = Client().active_stack.experiment_tracker
            if tracker is not None:
                tracker.configure_mlflow()
            verdicts = pretraining_verdicts(registered_model_name)
        except Exception as error:  # noqa: BLE001 - any failure to read means: measure again
            unreadable = f"{type(error).__name__}: {str(error)[:200]}"
    return plan_pretraining(models, pretrain, verdicts, date.today(), max_age_days, unreadable)
