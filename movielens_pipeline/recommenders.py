"""Trained weights → a ready-to-score module, whatever the architecture."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from movielens_pipeline.metrics import ScoreFn
from movielens_pipeline.training import TrainedModel


@dataclass
class Recommender:
    """A scorer plus what serving must know: does it read the history or the user id?"""

    kind: str
    score_fn: ScoreFn
    uses_history: bool


def load_recommender(trained: TrainedModel, device: torch.device | str = "cpu") -> Recommender:
    if trained.kind == "s3rec":
        from models.s3rec import S3Rec, S3RecConfig
        from movielens_pipeline import s3rec_training

        names = {f.name for f in fields(S3RecConfig)}
        model = S3Rec(S3RecConfig(**{k: v for k, v in trained.config.items() if k in names}))
        model.load_state_dict(trained.state_dict)
        model.to(device).eval()
        return Recommender("s3rec", s3rec_training.score_fn(model, device), uses_history=True)
    if trained.kind == "lrml":
        from movielens_pipeline import lrml_training

        model = lrml_training.trained_lrml(trained).to(device)
        return Recommender("lrml", lrml_training.score_fn(model, device), uses_history=False)
    raise ValueError(f"no recommender for model kind {trained.kind!r}")
