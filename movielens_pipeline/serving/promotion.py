"""When a candidate may replace the champion: pure decisions on per-user metric values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from movielens_pipeline.evaluation.metrics import per_user_metric
from movielens_pipeline.evaluation.protocols import paired_bootstrap
from movielens_pipeline.parameters import StepParameters
from movielens_pipeline.serving.records import PretrainingVerdict


class PromotionRule(StepParameters):
    metric: str = "ndcg_at_10"
    min_improvement: float = 0.0  # absolute margin on the metric
    require_significance: bool = True  # paired bootstrap over test users
    confidence: float = 0.95
    bootstrap_samples: int = 2000


def promotion_decision(
    candidate: np.ndarray, champion: np.ndarray | None, rule: PromotionRule
) -> tuple[bool, str, dict]:
    """Whether per-user scores of the candidate justify replacing the champion, and why."""
    if champion is None:
        return True, "the registry has no champion yet", {}
    stats = paired_bootstrap(candidate, champion, rule.bootstrap_samples, level=2 * rule.confidence - 1)
    gain = stats["mean_difference"]
    if gain <= rule.min_improvement:
        return False, (
            f"{rule.metric} gain {gain:+.4f} over the champion is not above the margin "
            f"{rule.min_improvement}"
        ), stats
    if rule.require_significance and stats["ci_low"] <= 0:
        return False, (
            f"{rule.metric} gain {gain:+.4f} is within noise: the one-sided "
            f"{rule.confidence:.0%} bootstrap bound {stats['ci_low']:+.4f} is not above 0"
        ), stats
    return True, f"{rule.metric} gain {gain:+.4f} over the champion (bootstrap low {stats['ci_low']:+.4f})", stats


def per_user_from_table(per_user_ranks: pd.DataFrame, model: str, metric: str, split: str = "test") -> np.ndarray:
    rows = per_user_ranks[
        (per_user_ranks["model"] == model)
        & (per_user_ranks["split"] == split)
        & (per_user_ranks["protocol"] == "full")
    ].sort_values("user_idx")
    return per_user_metric(rows["rank"].to_numpy(), metric)


def pretraining_verdict(per_user_ranks: pd.DataFrame, pretrained: str, without_pretraining: str,
                        rule: PromotionRule, decided_on: str, zenml_run_id: str | None = None) -> PretrainingVerdict:  # fmt: skip
    """Whether ``pretrained`` beat ``without_pretraining`` (the same training from scratch) on the
    validation users, by the promotion rule's metric and confidence: pretraining has to show a gain
    beyond noise to keep its cost, as a candidate has to beat the champion."""
    first = per_user_from_table(per_user_ranks, pretrained, rule.metric, split="valid")
    second = per_user_from_table(per_user_ranks, without_pretraining, rule.metric, split="valid")
    stats = paired_bootstrap(first, second, rule.bootstrap_samples, level=2 * rule.confidence - 1)
    return PretrainingVerdict(
        model=pretrained, without_pretraining=without_pretraining, metric=rule.metric,
        pays=stats["mean_difference"] > rule.min_improvement and stats["ci_low"] > 0,
        gain=stats["mean_difference"], confidence=rule.confidence, ci_low=stats["ci_low"], ci_high=stats["ci_high"], users=len(first),
        decided_on=decided_on, zenml_run_id=zenml_run_id,
    )  # fmt: skip


def choose_candidate(evaluation_metrics: pd.DataFrame, models: list[str], metric: str) -> str:
    """The run's model with the best *validation* ``metric``. Test is left to the gate alone:
    picking the best of several on test and then testing it on the same users would favour
    whichever model got lucky on them (the winner's curse)."""
    valid = evaluation_metrics[evaluation_metrics["split"] == "valid"].set_index("model")
    return max(models, key=lambda name: valid.loc[name, metric])


def version_description(model: str, candidate: str, alias: str, reason: str, metrics: dict[str, float],
                        data: dict) -> str:  # fmt: skip
    """What a registry reader needs about one version, in a few lines: its headline figures, the
    data it was trained on, and why it was or was not promoted."""
    def figure(key: str) -> str:
        return f"{metrics[key]:.4f}" if key in metrics else "n/a"

    if model == candidate:
        verdict = f"Promoted to @{alias}: {reason}." if alias == "champion" else f"Not promoted (@{alias}): {reason}."
    else:
        verdict = f"Not a candidate: {candidate} was this run's best model on validation."
    return (
        f"{model}. Test NDCG@10 {figure('test_ndcg_at_10')}, HR@10 {figure('test_hit_at_10')} (full ranking, "
        f"seen items excluded); validation NDCG@10 {figure('valid_ndcg_at_10')}. "
        f"Trained on {data.get('num_interactions', 0):,} interactions of {data.get('num_users', 0):,} users and "
        f"{data.get('num_items', 0):,} items (data fingerprint {data.get('fingerprint', '?')}). {verdict} "
        "All metrics, parameters and curves: the source run."
    )
