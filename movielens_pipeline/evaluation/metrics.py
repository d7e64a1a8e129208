"""Ranking metrics for leave-one-out evaluation.

Headline protocol: full ranking over every real item (index 0, padding, is never ranked, and
score columns past ``num_items`` such as a [MASK] id must be dropped by the caller), the user's
already-seen items excluded, ties broken pessimistically (an item with the same score as the
target ranks ahead of it). Secondary protocol: the target against 99 sampled unseen items.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch

from movielens_pipeline.data.ragged import Ragged, as_ragged, distinct
from movielens_pipeline.evaluation.top_items import DIRECT_BYTES, dot_products, exclude_items_, top_items_by_dot_product

KS = (5, 10, 20)

# score_fn(user_indices [B], histories: B rows) -> scores [B, num_items + 1], a fresh tensor
# that the ranking may overwrite.
ScoreFn = Callable[[torch.Tensor, Ragged], torch.Tensor]

# query_fn(user_indices [B], histories) -> [B, d]: what a dot-product model scores each item's
# vector against.
QueryFn = Callable[[torch.Tensor, Ragged], torch.Tensor]


class DotProductScorer(NamedTuple):
    """A ScoreFn whose scores are ``query_fn(users, histories) @ item_vectors.T``. Ranking and
    serving see the two parts and find each row's best items block by block over the catalogue
    (``top_items``) instead of forming the whole score matrix."""

    query_fn: QueryFn
    item_vectors: torch.Tensor  # [num_items + 1, d]

    def __call__(self, user_indices: torch.Tensor, histories: Ragged) -> torch.Tensor:
        return self.query_fn(user_indices, histories) @ self.item_vectors.T


class CoveredItemsScorer(NamedTuple):
    """A ScoreFn that scores only ``items``; every other item scores -inf (EASE within its memory
    budget). ``covered_fn`` works in the covered items' own numbering: its histories hold
    positions 1..len(items), uncovered items left out, and it answers [B, len(items) + 1] with
    column 0 for padding. Ranking then runs over the covered columns alone."""

    covered_fn: ScoreFn
    items: np.ndarray  # [C] covered item indices, ascending
    num_items: int

    def positions(self) -> np.ndarray:
        """Each item index's covered position (1..C), 0 where not covered."""
        position = np.zeros(self.num_items + 1, dtype=np.int64)
        position[self.items] = np.arange(1, len(self.items) + 1)
        return position

    def covered_histories(self, histories: Ragged | Sequence[np.ndarray]) -> Ragged:
        rows, items = as_ragged(histories).flat()
        positions = self.positions()[items]
        return Ragged.from_pairs(rows[positions > 0], positions[positions > 0], len(histories))

    def __call__(self, user_indices: torch.Tensor, histories: Ragged) -> torch.Tensor:
        covered = self.covered_fn(user_indices, self.covered_histories(histories))
        scores = torch.full((len(covered), self.num_items + 1), float("-inf"), device=covered.device)
        scores[:, torch.as_tensor(self.items, device=covered.device)] = covered[:, 1:]
        return scores

# No metric looks past rank 20 (the largest K), so ranks are counted exactly below it and every
# rank from 20 on is stored as 20. That turns "count every item scored above the target" into one
# top-k per row, the dearest part of ranking 200k users over 87k items.
RANK_CAP = max(KS)


def seen_mask(histories: Ragged | Sequence[np.ndarray], num_items: int, device="cpu") -> torch.Tensor:
    """Boolean [B, num_items + 1] mask of items in each history (column 0 always set)."""
    histories = as_ragged(histories)
    mask = torch.zeros((len(histories), num_items + 1), dtype=torch.bool, device=device)
    rows, cols = histories.flat()
    mask[torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)] = True
    mask[:, 0] = True
    return mask


def pessimistic_ranks(scores: torch.Tensor, targets: torch.Tensor, exclude: Ragged | None = None,
                      top_k: int = 0) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """0-based rank of each target among all items (capped at ``RANK_CAP``); excluded items never
    outrank it; ties count against it. Also the ``top_k`` best unexcluded items of each row.

    Overwrites ``scores``. NaN is the worst score: a NaN item never outranks the target, and a
    target scored NaN ranks behind every item, so a broken model can never look good.
    """
    scores.nan_to_num_(nan=float("-inf"), posinf=float("inf"), neginf=float("-inf"))
    target_scores = scores.gather(1, targets[:, None])
    exclude_items_(scores, exclude)
    scores.scatter_(1, targets[:, None], target_scores)  # a target in its own exclusions still ranks
    top = scores.topk(min(max(top_k, RANK_CAP + 1), scores.shape[1]), dim=1)
    # Everything scored at least the target's score is among the first `at_least` values unless
    # they all are; then the rank is at least the cap.
    at_least = (top.values >= target_scores).sum(dim=1)
    return (at_least - 1).clamp(max=RANK_CAP), top.indices[:, :top_k]


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    """HR, NDCG, MRR and Recall at each K (one relevant item per user, so Recall@K == HR@K)."""
    ranks = np.asarray(ranks)
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        out[f"hit_at_{k}"] = float(hit.mean())
        out[f"ndcg_at_{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
        out[f"mrr_at_{k}"] = float(np.where(hit, 1.0 / (ranks + 1.0), 0.0).mean())
        out[f"recall_at_{k}"] = out[f"hit_at_{k}"]
    return out


def per_user_metric(ranks: np.ndarray, metric: str) -> np.ndarray:
    """Per-user values of one metric such as ``ndcg_at_10`` (for bootstrap comparisons)."""
    name, k = metric.rsplit("_at_", 1)
    k = int(k)
    ranks = np.asarray(ranks)
    hit = ranks < k
    if name == "ndcg":
        return np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
    if name == "mrr":
        return np.where(hit, 1.0 / (ranks + 1.0), 0.0)
    if name in ("hit", "recall"):
        return hit.astype(float)
    raise ValueError(f"unknown metric {metric!r}")


class Ranking(NamedTuple):
    ranks: np.ndarray  # pessimistic 0-based rank of each target over all items, capped at RANK_CAP
    top_items: np.ndarray | None  # [U, top_k] best unseen items, when asked for
    sampled_ranks: np.ndarray | None  # rank among the target and its sampled negatives, when given


# Bytes one score row costs per item while ranking: the model's scores, a float copy where the
# model's columns need slicing, and top-k's working copy.
RANKING_BYTES_PER_SCORE = 13


def rows_per_batch(num_items: int, memory_mb: float = 128, most: int = 512) -> int:
    """How many users to score at once so one batch's score matrices stay within ``memory_mb``."""
    return int(max(1, min(most, memory_mb * 2**20 // ((num_items + 1) * RANKING_BYTES_PER_SCORE))))


class RankingInputs(NamedTuple):
    histories: Ragged | Sequence[np.ndarray]
    targets: np.ndarray
    negatives: np.ndarray | None = None  # [U, n] sampled negatives (0 = padding), when wanted

    def rows(self, start: int, stop: int) -> "RankingInputs":
        return RankingInputs(self.histories[start:stop], self.targets[start:stop],
                             None if self.negatives is None else self.negatives[start:stop])  # fmt: skip


@torch.no_grad()
def full_ranking(
    score_fn: ScoreFn,
    user_indices: np.ndarray,
    histories: Ragged | Sequence[np.ndarray],
    targets: np.ndarray,
    num_items: int,
    exclude_seen: bool = True,
    batch_size: int | None = None,
    device="cpu",
    top_k: int = 0,
    negatives: np.ndarray | None = None,
) -> Ranking:
    """Each user's target ranked over all items, scoring every user once, in batches.

    With ``top_k`` > 0 also each user's top-k recommended items (for catalogue coverage), under
    the same exclusions; with ``negatives`` [U, n] (0 = padding) also the target's rank among
    them (the sampled protocol), from the same scores. ``batch_size`` defaults to what fits 128 MB
    (smaller batches stay in cache: at 87k items 128 rows rank ~20% faster than 512).
    """
    inputs = [RankingInputs(histories, targets, negatives)]
    return full_rankings(score_fn, user_indices, inputs, num_items, exclude_seen, batch_size, device, top_k)[0]


@torch.no_grad()
def full_rankings(
    score_fn: ScoreFn,
    user_indices: np.ndarray,
    splits: Sequence[RankingInputs],
    num_items: int,
    exclude_seen: bool = True,
    batch_size: int | None = None,
    device="cpu",
    top_k: int = 0,
) -> list[Ranking]:
    """``full_ranking`` of the same users in several splits from one scoring pass: each batch is
    scored once, with the first split's histories, and ranked for every split. Only right for a
    model that ignores the histories (LRML, popularity), whose scores are the same in every split.

    A ``DotProductScorer`` whose batch of scores would exceed ``DIRECT_BYTES`` is ranked block by
    block instead (``top_items``): same ranks, top items and sampled ranks, without the matrix,
    except that two scores equal to the last bit may be ordered differently.
    """
    if isinstance(score_fn, CoveredItemsScorer):
        return _rank_covered_items(score_fn, user_indices, splits, exclude_seen, batch_size, device, top_k)
    splits = [RankingInputs(as_ragged(s.histories), s.targets, s.negatives) for s in splits]
    batch_size = batch_size or rows_per_batch(num_items)
    block_wise = (isinstance(score_fn, DotProductScorer) and batch_size * (num_items + 1) * 4 > DIRECT_BYTES
                  and bool(torch.isfinite(score_fn.item_vectors).all()))  # fmt: skip
    parts = [([], [], []) for _ in splits]  # ranks, top items, sampled ranks of each split
    for start in range(0, len(user_indices), batch_size):
        batches = [split.rows(start, start + batch_size) for split in splits]
        users = torch.as_tensor(user_indices[start : start + batch_size], dtype=torch.long, device=device)
        queries = score_fn.query_fn(users, batches[0].histories) if block_wise else None
        if queries is not None and torch.isfinite(queries).all():  # NaN's ordering is the score matrix's job
            results = [_rank_by_dot_product(queries, score_fn.item_vectors, batch, exclude_seen, top_k)
                       for batch in batches]  # fmt: skip
        else:
            scores = score_fn(users, batches[0].histories) if queries is None else queries @ score_fn.item_vectors.T
            scores = scores[:, : num_items + 1]
            scores = scores if scores.dtype == torch.float32 else scores.float()
            # Ranking overwrites its scores: every split but the last ranks a copy.
            copies = [scores.clone() for _ in batches[1:]] + [scores]
            results = [_rank_score_matrix(own, batch, exclude_seen, top_k) for own, batch in zip(copies, batches)]
        for part, result in zip(parts, results):
            for collected, value in zip(part, result):
                collected.append(value)
    empty = np.zeros(0, dtype=np.int64)
    return [
        Ranking(
            np.concatenate(ranks) if ranks else empty,
            np.concatenate(top_items) if top_k and top_items else None,
            (np.concatenate(sampled) if sampled else empty) if split.negatives is not None else None,
        )
        for split, (ranks, top_items, sampled) in zip(splits, parts)
    ]


def _rank_covered_items(scorer: CoveredItemsScorer, user_indices: np.ndarray, splits: Sequence[RankingInputs],
                        exclude_seen: bool, batch_size: int | None, device, top_k: int) -> list[Ranking]:  # fmt: skip
    """``full_rankings`` over the covered columns alone. An uncovered item scores -inf: it never
    outranks a covered target, and an uncovered target ties with every item, so its rank is the
    cap and every sampled negative counts against it."""
    position = scorer.positions()
    covered_splits = [
        RankingInputs(scorer.covered_histories(split.histories), position[split.targets],
                      None if split.negatives is None else position[split.negatives])  # fmt: skip
        for split in splits
    ]
    rankings = full_rankings(scorer.covered_fn, user_indices, covered_splits, len(scorer.items), exclude_seen,
                             batch_size, device, top_k)  # fmt: skip
    item_of_position = np.concatenate([[0], scorer.items])
    answers = []
    for split, ranking in zip(splits, rankings):
        uncovered = position[split.targets] == 0
        sampled = ranking.sampled_ranks
        if sampled is not None:
            sampled = np.where(uncovered, (np.asarray(split.negatives) != 0).sum(axis=1), sampled)
        answers.append(Ranking(np.where(uncovered, min(RANK_CAP, scorer.num_items), ranking.ranks),
                               None if ranking.top_items is None else item_of_position[ranking.top_items],
                               sampled))  # fmt: skip
    return answers


def _rank_score_matrix(
    scores: torch.Tensor, batch: RankingInputs, exclude_seen: bool, top_k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Ranks, top items and sampled ranks of one batch from its score matrix (overwritten)."""
    targets = torch.as_tensor(batch.targets, dtype=torch.long, device=scores.device)
    sampled = None
    if batch.negatives is not None:
        negatives = torch.as_tensor(batch.negatives, dtype=torch.long, device=scores.device)
        sampled = _sampled_ranks(scores.gather(1, targets[:, None]), scores.gather(1, negatives), negatives)
        sampled = sampled.cpu().numpy()
    ranks, top = pessimistic_ranks(scores, targets, batch.histories if exclude_seen else None, top_k)
    return ranks.cpu().numpy(), top.cpu().numpy(), sampled


def _rank_by_dot_product(
    queries: torch.Tensor, item_vectors: torch.Tensor, batch: RankingInputs, exclude_seen: bool, top_k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """What ``_rank_score_matrix`` gives, from one batch's queries, through the block-wise top
    ``RANK_CAP + 1``: the target ranks below the cap only if it is among them, and
    then its rank counts the others scored at least as high."""
    device = queries.device
    targets = torch.as_tensor(batch.targets, dtype=torch.long, device=device)
    exclude = None
    if exclude_seen:  # a target in its own history still ranks
        rows, seen = batch.histories.flat()
        keep = seen != batch.targets[rows]
        exclude = Ragged.from_pairs(rows[keep], seen[keep], len(batch.targets))
    values, items = top_items_by_dot_product(queries, item_vectors, max(top_k, RANK_CAP + 1), exclude)
    is_target = items == targets[:, None]
    target_values = torch.where(is_target, values, float("-inf")).amax(dim=1, keepdim=True)
    ranks = ((values >= target_values) & ~is_target).sum(dim=1)
    ranks = torch.where(is_target.any(dim=1), ranks, RANK_CAP).clamp(max=RANK_CAP)
    sampled = None
    if batch.negatives is not None:
        negatives = torch.as_tensor(batch.negatives, dtype=torch.long, device=device)
        scored = dot_products(queries, item_vectors, torch.cat([targets[:, None], negatives], dim=1))
        sampled = _sampled_ranks(scored[:, :1], scored[:, 1:], negatives).cpu().numpy()
    return ranks.cpu().numpy(), items[:, :top_k].cpu().numpy(), sampled


def _sampled_ranks(target_scores: torch.Tensor, negative_scores: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Pessimistic rank of each target [B, 1] among its sampled negatives [B, n] (papers'
    protocol); negative 0 is padding and never counts; NaN is the worst score."""
    negative_scores = negative_scores.nan_to_num(nan=float("-inf"))
    target_scores = target_scores.nan_to_num(nan=float("-inf"))
    return ((negative_scores >= target_scores) & (negatives != 0)).sum(dim=1)


def user_sample(num_users: int, most: int | None, seed: int = 0) -> np.ndarray:
    """Positions of the users to rank: all of them, or a fixed seeded sample of ``most`` (sorted),
    so ranking costs the same whatever the data's size (per-epoch validation, evaluation budgets)."""
    if not most or num_users <= most:
        return np.arange(num_users)
    return np.sort(np.random.default_rng(seed).choice(num_users, size=most, replace=False))


# What per-epoch validation can select epochs by: full-ranking NDCG@10 (the headline), or the
# S3Rec authors' choice, MRR against 99 sampled negatives (rank among 100, not capped).
VALIDATION_METRICS = ("ndcg_at_10", "sampled_mrr")


def validator(score_fn: ScoreFn, dataset, batch_size: int | None = None, device="cpu",
              most_users: int | None = None, sampled: bool = False) -> Callable[[], dict[str, float]]:
    """Per-epoch validation on the validation targets (full ranking, training items excluded) of
    every user, or of a fixed sample of ``most_users``; the inputs are built once. Returns HR@10
    and NDCG@10, and with ``sampled`` also the sampled protocol's MRR and NDCG@10 (negatives drawn
    once, outside each user's whole sequence, as in evaluation)."""
    users = user_sample(dataset.num_users, most_users)
    inputs, targets, user_indices = dataset.valid_inputs()[users], dataset.valid_targets()[users], dataset.user_indices[users]
    negatives = sample_unseen_items(dataset.full_sequences()[users], dataset.num_items)[0] if sampled else None

    def validate() -> dict[str, float]:
        ranking = full_ranking(score_fn, user_indices, inputs, targets, dataset.num_items,
                               batch_size=batch_size, device=device, negatives=negatives)  # fmt: skip
        metrics = metrics_from_ranks(ranking.ranks)
        figures = {"hit_at_10": metrics["hit_at_10"], "ndcg_at_10": metrics["ndcg_at_10"]}
        if negatives is not None:
            figures["sampled_mrr"] = float((1.0 / (ranking.sampled_ranks + 1.0)).mean())
            figures["sampled_ndcg_at_10"] = metrics_from_ranks(ranking.sampled_ranks, (10,))["ndcg_at_10"]
        return figures

    return validate


def sample_unseen_items(
    forbidden: Ragged | Sequence[np.ndarray], num_items: int, n: int = 99, seed: int = 0, rounds: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` distinct items per user, uniform among the items not in that user's ``forbidden``.

    Returns ``[U, n]`` items (0 pads the rows of users with fewer than ``n`` allowed items) and
    each user's count. Vectorised rejection sampling: every round draws ``2n`` candidates for the
    users still short and keeps a uniform subset of the allowed distinct ones; the few users whose
    allowed items are too rare to be hit are finished from the exact list, so it always ends.
    """
    rng = np.random.default_rng(seed)
    forbidden = as_ragged(forbidden)
    users = len(forbidden)
    width = num_items + 1
    rows, items = forbidden.flat()
    keys = distinct(rows[items > 0] * width + items[items > 0])
    wanted = np.minimum(n, num_items - np.bincount(keys // width, minlength=users))
    out = np.zeros((users, n), dtype=np.int64)
    filled = np.zeros(users, dtype=np.int64)
    for _ in range(rounds):
        short = np.flatnonzero(filled < wanted)
        if not len(short):
            break
        pool = np.sort(np.concatenate([out[short], rng.integers(1, width, size=(len(short), 2 * n))], axis=1), axis=1)
        pool_keys = short[:, None] * width + pool
        where = np.searchsorted(keys, pool_keys).clip(max=max(len(keys) - 1, 0))
        valid = (pool > 0) & ~(keys[where] == pool_keys if len(keys) else False)
        valid[:, 1:] &= pool[:, 1:] != pool[:, :-1]
        priority = rng.random(pool.shape)
        priority[~valid] = 2.0
        pick = np.argpartition(priority, n - 1, axis=1)[:, :n]
        chosen = np.take_along_axis(pool, pick, axis=1)
        chosen_valid = np.take_along_axis(valid, pick, axis=1)
        count = np.minimum(valid.sum(1), wanted[short])
        # Valid picks first (argpartition put the lowest priorities first, invalid ones are 2.0).
        order = np.argsort(~chosen_valid, axis=1, kind="stable")
        chosen = np.take_along_axis(chosen, order, axis=1)
        chosen[np.arange(n)[None, :] >= count[:, None]] = 0
        out[short] = chosen
        filled[short] = count
    for user in np.flatnonzero(filled < wanted):
        allowed = np.setdiff1d(np.arange(1, width), np.concatenate([forbidden[user], out[user]]))
        extra = rng.permutation(allowed)[: wanted[user] - filled[user]]
        out[user, filled[user] : filled[user] + len(extra)] = extra
        filled[user] += len(extra)
    return out, filled
