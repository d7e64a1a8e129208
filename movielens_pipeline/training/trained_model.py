"""What a training step hands on, and its on-disk form: safetensors weights plus JSON."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

WEIGHTS_FILE = "weights.safetensors"
META_FILE = "model.json"


@dataclass
class TrainedModel:
    """Architecture name, config, best weights, per-epoch history and summary figures.

    Stored by its materializer as safetensors + JSON; never pickled.
    """

    kind: str
    config: dict
    state_dict: dict[str, torch.Tensor]
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def weights_fingerprint(self) -> str:
        """Content hash of the weights: identifies a model independently of when it was trained."""
        digest = hashlib.sha256()
        for name in sorted(self.state_dict):
            tensor = self.state_dict[name].detach().cpu().contiguous()
            digest.update(name.encode() + str(tensor.dtype).encode() + str(tuple(tensor.shape)).encode())
            digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:16]


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
