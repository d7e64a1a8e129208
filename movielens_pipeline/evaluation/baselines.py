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
from movielens_pipeline.data.ragged import Ragged, as_ragged, distinct
from movielens_pipeline.evaluation.metrics import CoveredItemsScorer, DotProductScorer, ScoreFn


# Names the baselines are reported under (never registered).
BASELINES = ("popularity", "ease")


def popularity_score_fn(dataset: SequenceDataset) -> ScoreFn:
    """Every user gets the items' training-part interaction counts: a dot product of a query of
    one 1 with one-number item vectors, so ranking needs no score matrix."""
    counts = torch.as_tensor(dataset.item_popularity(), dtype=torch.float32)[:, None]

    def one(user_indices: torch.Tensor, histories) -> torch.Tensor:
        return torch.ones(len(user_indices), 1, device=user_indices.device)

    return DotProductScorer(one, counts)


# --- EASE (Steck, WWW 2019) -------------------------------------------------------------------


# EASE holds at most two dense items x items float64 matrices at once (Gram and its Cholesky
# factor, then the factor and the inverse); the third matrix's worth covers the sparse product's
# blocks and the float32 weights.
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


def _gram(x_t: torch.Tensor, x: torch.Tensor, rows_per_block: int = 1024) -> torch.Tensor:
    """X^T X as a dense float64 matrix, one block of rows at a time: each block's sparse product
    is at most ``rows_per_block`` x items, so the working memory beside the dense result stays
    bounded, and the blocks together cost what one product would (the sum over users of their
    history length squared)."""
    crow, col, val = x_t.crow_indices(), x_t.col_indices(), x_t.values()
    num_items = x_t.shape[0]
    gram = torch.empty(num_items, num_items, dtype=torch.float64)
    for first in range(0, num_items, rows_per_block):
        last = min(first + rows_per_block, num_items)
        begin, end = int(crow[first]), int(crow[last])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
            block = torch.sparse_csr_tensor(crow[first : last + 1] - begin, col[begin:end], val[begin:end],
                                            size=(last - first, x_t.shape[1]), check_invariants=False)  # fmt: skip
        gram[first:last] = (block @ x).to_dense()
    return gram


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
    # Distinct (user, item) pairs of covered items, as sparse X and X^T.
    keys = distinct(users[cols >= 0] * len(items) + cols[cols >= 0])
    x = _csr(keys // len(items), keys % len(items), (dataset.num_users, len(items)))
    by_item = np.lexsort((keys // len(items), keys % len(items)))
    x_t = _csr(keys[by_item] % len(items), keys[by_item] // len(items), (len(items), dataset.num_users))
    gram = _gram(x_t, x)
    gram.diagonal().add_(l2)
    # The regularised Gram matrix is symmetric positive definite: a Cholesky inverse costs about
    # half a general one. Each matrix is freed once the next exists, and the scaling is in place,
    # so at most two float64 matrices live at once.
    factor = torch.linalg.cholesky(gram)
    del gram
    precision = torch.cholesky_inverse(factor)
    del factor
    weights = precision.div_(-precision.diagonal().clone())
    weights.diagonal().zero_()
    # Row-major: cholesky_inverse answers in column-major order, and scoring sums rows (reading
    # them strided took 9 s per 1,000 users at 32M ratings instead of 0.4 s).
    return EaseModel(torch.as_tensor(items), torch.empty(weights.shape).copy_(weights), dataset.num_items)


def ease_score_fn(model: EaseModel) -> ScoreFn:
    """Scores from the history handed in: the sum of the weight rows of its covered items (one
    embedding-bag sum, so a score row costs about history length x covered items, not covered
    items squared); items EASE does not cover score -inf, and ranking skips them."""
    width = len(model.items) + 1

    def covered_scores(user_indices: torch.Tensor, histories: Ragged) -> torch.Tensor:
        # Covered positions 1..C, each once per history, grouped by row.
        rows, positions = as_ragged(histories).flat()
        keys = distinct(rows * width + positions)
        counts = np.bincount(keys // width, minlength=len(histories))
        sums = torch.nn.functional.embedding_bag(
            torch.as_tensor(keys % width - 1), model.weights,
            torch.as_tensor(np.concatenate([[0], np.cumsum(counts)[:-1]])), mode="sum",
        )  # fmt: skip
        return torch.cat([torch.full((len(histories), 1), float("-inf")), sums], dim=1)

    return CoveredItemsScorer(covered_scores, model.items.numpy(), model.num_items)


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
