"""Compare every model and baseline on the same test users, under two protocols.

- ``full``: the headline, full ranking over all real items, seen items excluded, pessimistic ties;
- ``sampled``: the papers' protocol, the target against 99 unseen items drawn from a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection

import numpy as np
import pandas as pd

from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.data.ragged import Ragged
from movielens_pipeline.evaluation.metrics import (
    KS,
    RankingInputs,
    ScoreFn,
    full_rankings,
    metrics_from_ranks,
    per_user_metric,
    sample_unseen_items,
    user_sample,
)

PROTOCOLS = ("full", "sampled")


@dataclass
class SplitInputs:
    users: np.ndarray
    histories: Ragged
    targets: np.ndarray


def split_inputs(dataset: SequenceDataset, split: str, users: np.ndarray | None = None) -> SplitInputs:
    """One split's users, histories and targets: every user, or the positions ``users``."""
    users = np.arange(dataset.num_users) if users is None else users
    if split == "valid":
        return SplitInputs(dataset.user_indices[users], dataset.valid_inputs()[users], dataset.valid_targets()[users])
    if split == "test":
        return SplitInputs(dataset.user_indices[users], dataset.test_inputs()[users], dataset.test_targets()[users])
    raise ValueError(f"unknown split {split!r}")


@dataclass
class ModelEvaluation:
    """Per-user ranks of one model on one split, and the metrics derived from them."""

    model: str
    split: str
    users: np.ndarray  # user_idx of each ranked user
    ranks: dict[str, np.ndarray]  # protocol -> 0-based rank per user
    coverage_at_10: float
    # Users who have fewer unseen items than the sampled protocol's 99 get fewer negatives.
    sampled_users_with_fewer_negatives: int = 0
    top_items: np.ndarray | None = None  # [users, 10] each user's top 10 (coverage of merged shards)

    def metrics(self) -> dict[str, float]:
        out = {"coverage_at_10": self.coverage_at_10}
        for protocol, ranks in self.ranks.items():
            prefix = "" if protocol == "full" else "sampled_"
            out |= {prefix + k: v for k, v in metrics_from_ranks(ranks, KS).items()}
        return out | {"sampled_users_with_fewer_negatives": float(self.sampled_users_with_fewer_negatives)}


def sampled_negatives(dataset: SequenceDataset, n: int = 99, seed: int = 0,
                      users: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The sampled protocol's negatives, one draw for both splits and every model: items outside
    each user's whole sequence, so neither held-out item is ever drawn as a negative."""
    sequences = dataset.full_sequences() if users is None else dataset.full_sequences()[users]
    return sample_unseen_items(sequences, dataset.num_items, n, seed)


@dataclass
class EvaluationUsers:
    """Who is ranked (user positions) and the sampled protocol's negatives of each."""

    positions: np.ndarray
    negatives: np.ndarray  # [users, 99]
    counts: np.ndarray  # negatives each user really has

    def rows(self, start: int, stop: int) -> "EvaluationUsers":
        return EvaluationUsers(self.positions[start:stop], self.negatives[start:stop], self.counts[start:stop])


def evaluation_users(dataset: SequenceDataset, negatives_seed: int = 0, max_users: int | None = None) -> EvaluationUsers:
    """Every user, or a fixed seeded sample of ``max_users`` (full ranking costs users x items per
    model), with one draw of sampled negatives for both splits and every model."""
    users = user_sample(dataset.num_users, max_users, negatives_seed)
    return EvaluationUsers(users, *sampled_negatives(dataset, seed=negatives_seed, users=users))


def evaluate_models(
    scorers: dict[str, ScoreFn], dataset: SequenceDataset, negatives_seed: int = 0, device="cpu",
    max_users: int | None = None, history_free: Collection[str] = (), users: EvaluationUsers | None = None,
) -> list[ModelEvaluation]:
    """Every scorer on the validation and the test split, same users, both protocols: ``users``,
    or ``evaluation_users(dataset, negatives_seed, max_users)``. The scorers named in
    ``history_free`` ignore the histories (LRML), so one scoring pass serves both splits."""
    users = users or evaluation_users(dataset, negatives_seed, max_users)
    negatives, counts = users.negatives, users.counts
    splits = {split: split_inputs(dataset, split, users.positions) for split in ("valid", "test")}
    evaluations = []
    for name, score_fn in scorers.items():
        together = [splits] if name in history_free else [{split: inputs} for split, inputs in splits.items()]
        for some_splits in together:
            evaluations += evaluate_model(name, score_fn, dataset, some_splits, negatives, counts, device)
    return evaluations


def evaluate_model(
    name: str,
    score_fn: ScoreFn,
    dataset: SequenceDataset,
    splits: dict[str, SplitInputs],
    negatives: np.ndarray,
    negative_counts: np.ndarray,
    device="cpu",
) -> list[ModelEvaluation]:
    """One model on the given splits (same users), scored in one pass when there are several."""
    inputs = [RankingInputs(split.histories, split.targets, negatives) for split in splits.values()]
    rankings = full_rankings(score_fn, next(iter(splits.values())).users, inputs, dataset.num_items,
                             device=device, top_k=10)  # fmt: skip
    short = int((negative_counts < negatives.shape[1]).sum())
    return [
        ModelEvaluation(name, split, splits[split].users, {"full": ranking.ranks, "sampled": ranking.sampled_ranks},
                        coverage(ranking.top_items, dataset.num_items), short, ranking.top_items)  # fmt: skip
        for split, ranking in zip(splits, rankings)
    ]


def coverage(top_items: np.ndarray, num_items: int) -> float:
    """Share of the catalogue that appears in some user's top items."""
    return len(np.unique(top_items)) / num_items


def merge_shards(shards: list[list[ModelEvaluation]], num_items: int) -> list[ModelEvaluation]:
    """One evaluation per (model, split) from shards of the users (each shard's list in the same
    order, users in shard order): what evaluating them all at once gives."""
    merged = []
    for parts in zip(*shards):
        top = np.concatenate([part.top_items for part in parts])
        merged.append(ModelEvaluation(
            parts[0].model, parts[0].split, np.concatenate([part.users for part in parts]),
            {protocol: np.concatenate([part.ranks[protocol] for part in parts]) for protocol in parts[0].ranks},
            coverage(top, num_items), sum(part.sampled_users_with_fewer_negatives for part in parts), top,
        ))  # fmt: skip
    return merged


# Resampled indices held at once by the bootstrap (int64: 160 MB), whatever the number of users.
BOOTSTRAP_INDICES_AT_ONCE = 20_000_000


def paired_bootstrap(
    first: np.ndarray, second: np.ndarray, samples: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Mean per-user difference first - second with a percentile CI over resampled users,
    drawing the resamples in chunks so memory stays bounded at any number of users."""
    diff = np.asarray(first, dtype=float) - np.asarray(second, dtype=float)
    rng = np.random.default_rng(seed)
    chunk = max(1, BOOTSTRAP_INDICES_AT_ONCE // max(len(diff), 1))
    means = np.concatenate([
        diff[rng.integers(0, len(diff), size=(min(chunk, samples - start), len(diff)))].mean(axis=1)
        for start in range(0, samples, chunk)
    ])  # fmt: skip
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return {
        "mean_difference": float(diff.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "p_not_better": float((means <= 0).mean()),
    }


def results_table(evaluations: list[ModelEvaluation]) -> pd.DataFrame:
    """One row per (model, split), one column per metric."""
    rows = [{"model": e.model, "split": e.split} | e.metrics() for e in evaluations]
    return pd.DataFrame(rows)


def per_user_table(evaluations: list[ModelEvaluation]) -> pd.DataFrame:
    """Long table: user, model, split, protocol, rank (0-based, capped at ``RANK_CAP``), ndcg_at_10."""
    frames = []
    for e in evaluations:
        for protocol, ranks in e.ranks.items():
            frames.append(
                pd.DataFrame(
                    {
                        "user_idx": e.users,
                        "model": e.model,
                        "split": e.split,
                        "protocol": protocol,
                        "rank": ranks,
                        "ndcg_at_10": per_user_metric(ranks, "ndcg_at_10"),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def compare_best_two(
    evaluations: list[ModelEvaluation], metric: str = "ndcg_at_10", split: str = "test"
) -> dict:
    """Paired bootstrap of the best model against the runner-up on the headline protocol."""
    ranked = sorted(
        (e for e in evaluations if e.split == split),
        key=lambda e: per_user_metric(e.ranks["full"], metric).mean(),
        reverse=True,
    )
    if len(ranked) < 2:
        return {}
    best, runner_up = ranked[:2]
    return {"metric": metric, "best": best.model, "runner_up": runner_up.model} | paired_bootstrap(
        per_user_metric(best.ranks["full"], metric), per_user_metric(runner_up.ranks["full"], metric)
    )


def flat_metrics(table: pd.DataFrame, model: str) -> dict[str, float]:
    """One model's rows as flat keys (MLflow metrics, registry tags) such as ``test_ndcg_at_10`` or ``valid_sampled_hit_at_10``."""
    rows = table[table["model"] == model]
    return {
        f"{row['split']}_{column}": float(row[column])
        for _, row in rows.iterrows()
        for column in table.columns
        if column not in ("model", "split")
    }
