"""Trained weights → score functions: ``ScoreFn(user_indices [B], histories) -> [B, num_items + 1]``.

Every model and baseline is evaluated, validated and served through one of these, so the
ranking code never needs to know the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from models.s3rec import S3Rec
from movielens_pipeline.data.dataset import pad_left
from movielens_pipeline.data.ragged import as_ragged
from movielens_pipeline.evaluation.metrics import QueryFn, ScoreFn


def s3rec_query_fn(model: S3Rec, device: torch.device | str = "cpu", max_len: int | None = None) -> QueryFn:
    """Each history's last ``max_len`` items through the causal encoder."""
    device = torch.device(device)
    max_len = max_len or model.config.max_len

    def queries(user_indices: torch.Tensor, histories: Sequence[np.ndarray]) -> torch.Tensor:
        model.eval()
        # Full precision: bf16 scores would tie often, and ties count against the target.
        with torch.no_grad():
            # Padded to the batch's longest history only (positions count from the end, so the
            # encoding is the same as at max_len).
            width = int(min(max_len, max(1, as_ragged(histories).lengths.max(initial=1))))
            return model.next_item_query(pad_left(histories, width).to(device))

    return queries


def s3rec_score_fn(model: S3Rec, device: torch.device | str = "cpu", max_len: int | None = None) -> ScoreFn:
    query_fn = s3rec_query_fn(model, device, max_len)

    def scores(user_indices: torch.Tensor, histories: Sequence[np.ndarray]) -> torch.Tensor:
        return query_fn(user_indices, histories) @ model.item_vectors().detach().T

    return scores


def user_score_fn(model: nn.Module, device: torch.device | str = "cpu") -> ScoreFn:
    """A model that embeds users (LRML, BPR-MF) ignores the histories."""

    def scores(user_indices: torch.Tensor, histories) -> torch.Tensor:
        model.eval()
        return model.score_all_items(user_indices.to(device))

    return scores


@dataclass
class Recommender:
    """A scorer plus what serving must know: does it read the history or the user id? A
    dot-product model's scorer is a ``DotProductScorer``, so ranking and serving can find the best
    items without forming every row's score over the whole catalogue. Each model family
    (``movielens_pipeline.families``) says how its weights become one."""

    score_fn: ScoreFn
    uses_history: bool
