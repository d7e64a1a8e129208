"""Training plumbing shared by every model: device, seeding, checkpoints, early stopping."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

# log_fn(metrics, step): how trainers report per-epoch figures without knowing about MLflow.
LogFn = Callable[[dict[str, float], int], None]


def no_logging(metrics: dict[str, float], step: int) -> None:
    return None


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA when available (or asked for), else the CPU with every core."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def config_fingerprint(*parts: Any) -> str:
    """Stable short hash of configs and data identifiers (dataclasses, dicts, strings)."""
    plain = [asdict(p) if is_dataclass(p) else p for p in parts]
    blob = json.dumps(plain, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def checkpoint_root() -> Path:
    """Where interrupted training jobs leave their last epoch (MOVIELENS_CHECKPOINT_DIR)."""
    default = Path(__file__).resolve().parent.parent / ".checkpoints"
    return Path(os.environ.get("MOVIELENS_CHECKPOINT_DIR", default))


class CheckpointStore:
    """One file per training job, rewritten atomically after every epoch.

    A job killed midway and started again with the same fingerprint resumes from the last
    completed epoch. Files hold tensors and plain values only and load with weights_only=True.
    """

    def __init__(self, root: str | Path | None, job: str, fingerprint: str):
        self.path = Path(root) / job / f"{fingerprint}.pt" if root else None

    def load(self) -> dict | None:
        if self.path is None or not self.path.exists():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=True)

    def save(self, state: dict) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)

    def clear(self) -> None:
        if self.path is not None and self.path.exists():
            self.path.unlink()
            if not any(self.path.parent.iterdir()):
                shutil.rmtree(self.path.parent, ignore_errors=True)


@dataclass
class EarlyStopping:
    """Keeps the best epoch's weights by a validation metric (higher is better)."""

    patience: int
    best_value: float = float("-inf")
    best_epoch: int = -1
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0

    def update(self, value: float, epoch: int, model: torch.nn.Module) -> bool:
        """Record an epoch; returns True when training should stop."""
        if value > self.best_value:
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def state(self) -> dict:
        return {
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "best_state": self.best_state,
        }

    def restore(self, state: dict) -> None:
        self.best_value = state["best_value"]
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = state["bad_epochs"]
        self.best_state = state["best_state"]


@dataclass
class TrainedModel:
    """What a training step hands on: architecture name, config, best weights, history.

    Stored by its materializer as safetensors + JSON; never pickled.
    """

    kind: str
    config: dict
    state_dict: dict[str, torch.Tensor]
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


WEIGHTS_FILE = "weights.safetensors"
META_FILE = "model.json"


def save_trained_model(model: TrainedModel, directory: str | Path) -> None:
    """Weights as safetensors, everything else as JSON: loading never unpickles anything."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict.items()}, str(directory / WEIGHTS_FILE))
    meta = {"kind": model.kind, "config": model.config, "history": model.history, "summary": model.summary}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, default=float))


def load_trained_model(directory: str | Path) -> TrainedModel:
    from safetensors.torch import load_file

    directory = Path(directory)
    meta = json.loads((directory / META_FILE).read_text())
    return TrainedModel(state_dict=load_file(str(directory / WEIGHTS_FILE)), **meta)
