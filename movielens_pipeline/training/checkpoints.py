"""Per-epoch checkpoints that let a killed training job resume where it stopped."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel


def config_fingerprint(*parts: Any) -> str:
    """Stable short hash of configs and data identifiers (dataclasses, pydantic models, dicts, strings)."""

    def plain(part: Any) -> Any:
        if is_dataclass(part):
            return asdict(part)
        if isinstance(part, BaseModel):
            return part.model_dump(mode="json")
        return part

    blob = json.dumps([plain(p) for p in parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def checkpoint_root() -> Path:
    """Where interrupted training jobs leave their last epoch (MOVIELENS_CHECKPOINT_DIR)."""
    default = Path(__file__).resolve().parents[2] / ".checkpoints"
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
