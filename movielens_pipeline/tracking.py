"""MLflow glue for the training steps (the trainers only see a LogFn)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, is_dataclass

import mlflow

from movielens_pipeline.training import LogFn, TrainedModel


def flat_params(prefix: str, config) -> dict[str, str]:
    """A config dataclass or dict as MLflow params ``prefix.field``."""
    values = asdict(config) if is_dataclass(config) else dict(config)
    return {f"{prefix}.{k}": str(v) for k, v in values.items()}


def mlflow_log_fn(prefix: str) -> LogFn:
    """Per-epoch metrics as MLflow metrics named ``<prefix>_<metric>`` with the epoch as step."""

    def log(metrics: dict[str, float], step: int) -> None:
        mlflow.log_metrics({f"{prefix}_{k}": float(v) for k, v in metrics.items()}, step=step)

    return log


def log_curves(history: list[dict], title: str, artifact_name: str) -> None:
    """Plot every numeric series of a training history and log the PNG to MLflow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for row in history for k, v in row.items() if isinstance(v, (int, float))} - {"epoch"})
    losses = [k for k in keys if "loss" in k]
    quality = [k for k in keys if k.startswith("valid_")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, group, label in ((axes[0], losses, "loss"), (axes[1], quality, "validation metric")):
        for key in group:
            ax.plot([row.get("epoch", i) for i, row in enumerate(history)], [row.get(key) for row in history], label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if group:
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


def log_trained_model(trained: TrainedModel, name: str, device: str, data_fingerprint: str) -> None:
    """Summary figures, device, data identity, loss curves and the best weights of a training run."""
    from movielens_pipeline.training import save_trained_model

    mlflow.set_tags({"model": name, "device": device, "data_fingerprint": data_fingerprint})
    mlflow.log_metrics(
        {f"{name}_{k}": float(v) for k, v in trained.summary.items() if isinstance(v, (int, float))}
    )
    log_curves(trained.history, f"{name} training", f"{name}_curves.png")
    with tempfile.TemporaryDirectory() as tmp:
        save_trained_model(trained, tmp)
        mlflow.log_artifacts(tmp, artifact_path=f"{name}_weights")


def git_commit() -> str:
    """The checkout's commit (with '-dirty' when it has uncommitted changes), or 'unknown'."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
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
