"""Baselines every run reports beside its models (never registered): popularity and EASE.

Each is a score function for ``metrics.full_ranking``. Popularity scores from the training
parts; EASE scores from the history it is handed, so at test time it also sees the validation
item, as a sequential model would. (BPR-MF, a trained baseline, is in ``models.bpr``.)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.data.ragged import Ragged, as_ragged
from movielens_pipeline.evaluation.metrics import ScoreFn


# Names the baselines are reported under (never registered).
BASELINES = ("popularity", "ease")


def popularity_score_fn(dataset: SequenceDataset) -> ScoreFn:
    """Every user gets the items' training-part interaction counts."""
    counts = torch.as_tensor(dataset.item_popularity(), dtype=torch.float32)

    def scores(user_indices: torch.Tensor, histories) -> torch.Tensor:
        return counts.to(user_indices.device).repeat(len(user_indices), 1)

    return scores


# --- EASE (Steck, WWW 2019) -------------------------------------------------------------------


# EASE holds three dense items x items float64 matrices while it fits (Gram, inverse, weights).
EASE_BYTES_PER_ITEM_PAIR = 3 * 8


def ease_item_budget(memory_mb: float) -> int:
    """How many items EASE can cover within ``memory_mb`` megabytes."""
    return int(math.sqrt(memory_mb * 2**20 / EASE_BYTES_PER_ITEM_PAIR))


@dataclass
class EaseModel:
    """EASE weights over the covered items (the most popular training items that fit the budget)."""

    items: torch.Tensor  # [N] covered item indices, ascending
    weights: torch.Tensor  # [N, N], zero diagonal
    num_items: int

    def note(self) -> str:
        if len(self.items) == self.num_items:
            return f"EASE covers all {self.num_items:,} items"
        return (f"EASE covers the {len(self.items):,} most popular of {self.num_items:,} items (its memory budget); "
                "the other items get no EASE score and rank last for it")


def _csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """A float64 CSR matrix of ones at (rows, cols), which must be sorted by row."""
    crow = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=shape[0]))])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(torch.as_tensor(crow), torch.as_tensor(cols),
                                       torch.ones(len(cols), dtype=torch.float64), size=shape,
                                       check_invariants=False)  # built sorted and in range  # fmt: skip


def _distinct(keys: np.ndarray) -> np.ndarray:
    """The distinct values of ``keys``, sorted (a sort and a comparison: at 32M keys several
    times faster than np.unique's hashing)."""
    keys = np.sort(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys


def fit_ease(dataset: SequenceDataset, l2: float = 300.0, memory_mb: float = 2048) -> EaseModel:
    """EASE (Steck, WWW 2019) on the training parts: B = I - P diag(1 / diag(P)) with
    P = (X^T X + l2 I)^-1, X the binary users x items matrix, built sparse.

    The dense inverse costs items^2 memory and items^3 time, so only the most popular training
    items that fit ``memory_mb`` are covered (all of them on MovieLens-100k to -1M).
    """
    budget = ease_item_budget(memory_mb)
    popularity = dataset.item_popularity()
    if dataset.num_items <= budget:
        items = np.arange(1, dataset.num_items + 1)
    else:
        by_popularity = np.argsort(-popularity[1:], kind="stable") + 1
        items = np.sort(by_popularity[:budget])
    column = np.full(dataset.num_items + 1, -1, dtype=np.int64)
    column[items] = np.arange(len(items))
    users, cols = dataset.train_sequences().flat()
    cols = column[cols]
    # Distinct (user, item) pairs of covered items; X^T X as a sparse product (cost: the sum
    # over users of their history length squared), densified once.
    keys = _distinct(users[cols >= 0] * len(items) + cols[cols >= 0])
    x = _csr(keys // len(items), keys % len(items), (dataset.num_users, len(items)))
    by_item = np.lexsort((keys // len(items), keys % len(items)))
    x_t = _csr(keys[by_item] % len(items), keys[by_item] // len(items), (len(items), dataset.num_users))
    gram = (x_t @ x).to_dense()
    gram.diagonal().add_(l2)
    # The regularised Gram matrix is symmetric positive definite: a Cholesky inverse costs about
    # half a general one.
    precision = torch.cholesky_inverse(torch.linalg.cholesky(gram))
    del gram
    weights = -precision / precision.diagonal()
    weights.diagonal().zero_()
    # Row-major: linalg.inv answers in column-major order, and scoring sums rows (reading them
    # strided took 9 s per 1,000 users at 32M ratings instead of 0.4 s).
    return EaseModel(torch.as_tensor(items), weights.float().contiguous(), dataset.num_items)


def ease_score_fn(model: EaseModel) -> ScoreFn:
    """Scores from the history handed in: the sum of the weight rows of its covered items (one
    embedding-bag sum, so a score row costs about history length x covered items, not covered
    items squared); items EASE does not cover score -inf."""
    column = np.full(model.num_items + 1, -1, dtype=np.int64)
    column[model.items.numpy()] = np.arange(len(model.items))
    width = len(model.items)

    def scores(user_indices: torch.Tensor, histories: Ragged) -> torch.Tensor:
        rows, cols = as_ragged(histories).flat()
        cols = column[cols]
        # Covered items, each once per history, grouped by row.
        keys = _distinct(rows[cols >= 0] * width + cols[cols >= 0])
        counts = np.bincount(keys // width, minlength=len(histories))
        sums = torch.nn.functional.embedding_bag(
            torch.as_tensor(keys % width), model.weights,
            torch.as_tensor(np.concatenate([[0], np.cumsum(counts)[:-1]])), mode="sum",
        )  # fmt: skip
        out = torch.full((len(histories), model.num_items + 1), float("-inf"))
        out[:, model.items] = sums
        return out

    return scores


def baseline_score_fns(dataset: SequenceDataset, ease_l2: float, ease_memory_mb: float = 2048) -> tuple[dict, dict, dict]:
    """The baselines every run reports, by name; a note per baseline for the report; and each
    baseline's parameters (for its MLflow run)."""
    ease = fit_ease(dataset, ease_l2, ease_memory_mb)
    params = {
        "popularity": {"scores": "interaction count of each item in the training parts"},
        "ease": {"l2": ease_l2, "memory_mb": ease_memory_mb, "covered_items": len(ease.items),
                 "items": ease.num_items},
    }  # fmt: skip
    return (
        {"popularity": popularity_score_fn(dataset), "ease": ease_score_fn(ease)},
        {"ease": ease.note()},
        params,
    )
