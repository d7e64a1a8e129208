"""Baselines every run reports beside its models (never registered): popularity and EASE.

Each is a score function for ``metrics.full_ranking``. Popularity scores from the training
parts; EASE scores from the history it is handed, so at test time it also sees the validation
item, as a sequential model would. (BPR-MF, a trained baseline, is in ``models.bpr``.)
"""

from __future__ import annotations

import torch

from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.evaluation.metrics import ScoreFn, seen_mask


def popularity_score_fn(dataset: SequenceDataset) -> ScoreFn:
    """Every user gets the items' training-part interaction counts."""
    counts = torch.as_tensor(dataset.item_popularity(), dtype=torch.float32)

    def scores(user_indices: torch.Tensor, histories) -> torch.Tensor:
        return counts.to(user_indices.device).expand(len(user_indices), -1)

    return scores


# --- EASE (Steck, WWW 2019) -------------------------------------------------------------------


def interaction_matrix(histories, num_items: int) -> torch.Tensor:
    """Binary [len(histories), num_items + 1] float matrix of the items in each history."""
    return seen_mask(histories, num_items).float()


def fit_ease(dataset: SequenceDataset, l2: float = 300.0) -> torch.Tensor:
    """Item-item weights B [num_items + 1, num_items + 1] with a zero diagonal.

    Closed form: P = (X^T X + l2 I)^-1, B = I - P diag(1 / diag(P)). The dense inverse is
    fine up to some 20k items. Column 0 of X is always set by seen_mask; it is zeroed so
    padding takes no part.
    """
    interactions = interaction_matrix(dataset.train_sequences(), dataset.num_items).double()
    interactions[:, 0] = 0
    gram = interactions.T @ interactions
    gram.diagonal().add_(l2)
    precision = torch.linalg.inv(gram)
    weights = -precision / precision.diagonal()
    weights.diagonal().zero_()
    return weights.float()


def ease_score_fn(weights: torch.Tensor) -> ScoreFn:
    num_items = weights.shape[0] - 1

    def scores(user_indices: torch.Tensor, histories) -> torch.Tensor:
        history_rows = interaction_matrix(histories, num_items)
        history_rows[:, 0] = 0
        return history_rows @ weights

    return scores


def baseline_score_fns(dataset: SequenceDataset, ease_l2: float) -> dict[str, ScoreFn]:
    """The baselines every run reports, by name."""
    return {"popularity": popularity_score_fn(dataset), "ease": ease_score_fn(fit_ease(dataset, ease_l2))}
