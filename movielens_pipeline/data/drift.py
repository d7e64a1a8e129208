"""Data drift between the interactions a champion model was trained on and newer interactions.

``drift_report(reference, current)`` compares two ``interactions`` tables (user_id, item_id,
rating, timestamp; see ``movielens_pipeline.data.raw``): ``reference`` is what the champion was
trained on, ``current`` what has arrived since. The ``DriftReport`` it returns reads as flat
MLflow metrics, a self-contained HTML page, a few plain lines, and alerts against thresholds.

What is measured, and why a recommender cares:

- new users and new items: ids the champion has never seen (no embedding, never recommended),
  counted, and as the share of current interactions they account for;
- volume and time span: rows, users, items, first and last interaction of each table;
- ratings: the share of each rating value (NaN ratings, i.e. implicit feedback, count as one more
  value, "unrated"), the total variation distance (TVD) between the two histograms, and the
  change of the mean rating;
- item popularity: the Jensen-Shannon divergence (base 2: 0 identical, 1 disjoint) between the
  tables' distributions of interactions over the union of their items, and the overlap of their
  100 most popular items: the items a popularity-biased model recommends most;
- user activity: mean and median interactions per user.

Plain pandas and numpy: no ZenML or MLflow here, so a step, a script or a notebook can use it.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Literal, Mapping

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
TOP_ITEMS = 100
TOP_ITEMS_OVERLAP = f"drift_popularity_top{TOP_ITEMS}_overlap"
UNRATED = "unrated"  # the rating-histogram bucket of NaN ratings
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class AlertRule:
    """When a metric counts as drift: ``above`` its threshold, ``below`` it, or, for signed
    changes, ``magnitude_above`` (its absolute value above the threshold)."""

    comparison: Literal["above", "below", "magnitude_above"]
    default_threshold: float
    meaning: str


# The metrics that can raise alerts, with their default thresholds, set from MovieLens-100k: above
# what random splits show (no drift, sampling noise only) and what time splits show (the last
# 5-20% of interactions against the rest), unless noted. Volume, time span and user activity are
# reported but never alert: a batch of new data is naturally smaller and sparser than a history.
ALERT_RULES: dict[str, AlertRule] = {
    # The champion cannot recommend items it has never seen. Time splits: 1-2.4%.
    "drift_new_items_share": AlertRule("above", 0.05, "share of current interactions on unseen items"),
    # Sequential models serve unseen users from their history, and in MovieLens most interactions
    # after a time cut come from users who joined since (time splits: 57-85%): only a near-complete
    # turnover of the audience alerts.
    "drift_new_users_share": AlertRule("above", 0.9, "share of current interactions by unseen users"),
    # A tenth of the interactions would have to change rating value to match. Time splits: <= 0.06.
    "drift_rating_tvd": AlertRule("above", 0.1, "total variation distance of the rating histograms"),
    # A quarter of a star either way on a 1-5 scale. Time splits: <= 0.11.
    "drift_rating_mean_change": AlertRule("magnitude_above", 0.25, "change of the mean rating"),
    # Sampling noise alone grows with items per current interaction: random samples of 10k, 5k
    # and 1k rows over ML-100k's 1,682 items give 0.04, 0.07 and 0.25, time splits 0.05-0.07.
    # Compare batches of at least a few interactions per item.
    "drift_popularity_js": AlertRule("above", 0.15, "Jensen-Shannon divergence of item popularity"),
    # Fewer than half of the most popular items still among the most popular. Random samples of
    # 5k rows keep ~0.7 of them, time splits 0.66-0.74 (1k-row samples only ~0.57: noise again).
    TOP_ITEMS_OVERLAP: AlertRule("below", 0.5, f"overlap of the top-{TOP_ITEMS} items"),
}
DEFAULT_THRESHOLDS: dict[str, float] = {metric: rule.default_threshold for metric, rule in ALERT_RULES.items()}


@dataclass(frozen=True)
class InteractionProfile:
    """Size, time span, ratings and user activity of one interactions table."""

    rows: int
    users: int
    items: int
    first_timestamp: int  # unix seconds
    last_timestamp: int
    rating_mean: float  # over rated interactions; NaN when none is rated
    unrated_share: float
    user_activity_mean: float  # interactions per user
    user_activity_median: float

    @property
    def span_days(self) -> float:
        return (self.last_timestamp - self.first_timestamp) / SECONDS_PER_DAY

    def metrics(self, side: str) -> dict[str, float]:
        fields = asdict(self) | {"span_days": self.span_days}
        return {f"drift_{side}_{name}": float(value) for name, value in fields.items()}


@dataclass
class DriftReport:
    """How ``current`` interactions differ from the ``reference`` ones (see the module docstring).

    - ``rating_histogram``: index rating value as text (``UNRATED`` last), columns ``reference``
      and ``current``: the share of each table's interactions with that rating;
    - ``item_popularity``: index item_id, columns ``reference`` and ``current``: interaction
      counts over the union of items, most popular in the reference first, new items last.
    """

    reference: InteractionProfile
    current: InteractionProfile
    new_users: int
    new_users_share: float
    new_items: int
    new_items_share: float
    rating_histogram: pd.DataFrame
    item_popularity: pd.DataFrame
    rating_tvd: float
    popularity_js: float
    top_items_overlap: float

    def metrics(self) -> dict[str, float]:
        """Flat ``drift_*`` floats, ready for ``mlflow.log_metrics`` (NaN where undefined)."""
        return (
            self.reference.metrics("reference")
            | self.current.metrics("current")
            | {
                "drift_volume_ratio": self.current.rows / self.reference.rows,
                # Negative when the current interactions start before the reference ones end.
                "drift_time_gap_days": (self.current.first_timestamp - self.reference.last_timestamp)
                / SECONDS_PER_DAY,
                "drift_new_users": float(self.new_users),
                "drift_new_users_share": self.new_users_share,
                "drift_new_items": float(self.new_items),
                "drift_new_items_share": self.new_items_share,
                "drift_rating_tvd": self.rating_tvd,
                "drift_rating_mean_change": self.current.rating_mean - self.reference.rating_mean,
                "drift_popularity_js": self.popularity_js,
                TOP_ITEMS_OVERLAP: self.top_items_overlap,
                "drift_user_activity_mean_ratio": self.current.user_activity_mean
                / self.reference.user_activity_mean,
            }
        )

    def alerts(self, thresholds: Mapping[str, float | None] | None = None) -> list[str]:
        """One message per metric beyond its threshold.

        ``thresholds`` overrides entries of ``DEFAULT_THRESHOLDS`` (a metric mapped to None is not
        checked). A NaN metric (mean rating change of unrated data) never alerts; the rating TVD
        still catches a switch between rated and unrated data.
        """
        metrics = self.metrics()
        return [
            f"{metric} = {metrics[metric]:.3g} ({ALERT_RULES[metric].meaning}): "
            f"{_condition(ALERT_RULES[metric], threshold)}"
            for metric, threshold in _applied_thresholds(thresholds).items()
            if _is_beyond(ALERT_RULES[metric], metrics[metric], threshold)
        ]

    def summary(self, thresholds: Mapping[str, float | None] | None = None) -> str:
        metrics = self.metrics()
        alerts = self.alerts(thresholds)
        return "\n".join(
            [
                f"Reference: {_describe_size_and_span(self.reference)}",
                f"Current:   {_describe_size_and_span(self.current)}, "
                f"{metrics['drift_volume_ratio']:.3g}x the reference volume",
                f"New users: {self.new_users:,} ({self.new_users_share:.1%} of current interactions); "
                f"new items: {self.new_items:,} ({self.new_items_share:.1%})",
                f"Ratings: TVD {self.rating_tvd:.3f}, mean {_rating(self.reference.rating_mean)} -> "
                f"{_rating(self.current.rating_mean)}",
                f"Popularity: Jensen-Shannon {self.popularity_js:.3f}, "
                f"top-{TOP_ITEMS} overlap {self.top_items_overlap:.0%}",
                f"Interactions per user: mean {self.reference.user_activity_mean:.1f} -> "
                f"{self.current.user_activity_mean:.1f}, median {self.reference.user_activity_median:g} -> "
                f"{self.current.user_activity_median:g}",
                "Alerts: " + ("; ".join(alerts) if alerts else "none"),
            ]
        )

    def to_html(self, thresholds: Mapping[str, float | None] | None = None) -> str:
        """A self-contained page: alerts, the metric tables and the chart as an embedded PNG."""
        metrics = self.metrics()
        applied_thresholds = _applied_thresholds(thresholds)
        alerts = self.alerts(thresholds)
        comparison_metrics = [
            name for name in metrics if not name.startswith(("drift_reference_", "drift_current_"))
        ]
        drift_table = pd.DataFrame(
            {
                "value": [_format_number(metrics[name]) for name in comparison_metrics],
                "alert when": [
                    _condition(ALERT_RULES[name], applied_thresholds[name]) if name in applied_thresholds else ""
                    for name in comparison_metrics
                ],
            },
            index=comparison_metrics,
        )
        profiles = pd.DataFrame(
            {"reference": _profile_rows(self.reference), "current": _profile_rows(self.current)}
        )
        alert_block = (
            "<ul class='alerts'>" + "".join(f"<li>{html.escape(a)}</li>" for a in alerts) + "</ul>"
            if alerts
            else "<p>No metric beyond its alert threshold.</p>"
        )
        chart = base64.b64encode(self.chart_png()).decode()
        return (
            "<html><head><meta charset='utf-8'><title>Interaction drift</title><style>"
            "body{font-family:sans-serif}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}.alerts{color:#b00}"
            "</style></head><body><h2>Interaction drift: current vs reference (champion's training data)</h2>"
            + alert_block
            + "<h3>Drift metrics</h3>"
            + drift_table.to_html()
            + "<h3>Tables compared</h3>"
            + profiles.to_html()
            + "<h3>Rating histogram (share of interactions)</h3>"
            + self.rating_histogram.to_html(float_format=_format_number)
            + f"<h3>Charts</h3><img alt='rating histograms and item popularity' "
            f"src='data:image/png;base64,{chart}'/></body></html>"
        )

    def chart_png(self) -> bytes:
        """Rating histograms side by side, and item popularity in reference popularity order."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ratings_ax, popularity_ax) = plt.subplots(1, 2, figsize=(11, 4))
        self.rating_histogram.plot.bar(ax=ratings_ax, rot=0)
        ratings_ax.set_xlabel("rating")
        ratings_ax.set_ylabel("share of interactions")
        ratings_ax.set_title(f"Ratings (TVD {self.rating_tvd:.3f})")
        # Both curves over the same item order (the reference's), so reshuffled popularity shows
        # as a gap between them, which curves each sorted by their own counts would hide.
        cumulative_shares = self.item_popularity.cumsum() / self.item_popularity.sum()
        positions = np.arange(1, len(cumulative_shares) + 1)
        for column in cumulative_shares.columns:
            popularity_ax.plot(positions, cumulative_shares[column].to_numpy(), label=column)
        popularity_ax.set_xlabel("items, most popular in the reference first (new items last)")
        popularity_ax.set_ylabel("cumulative share of interactions")
        popularity_ax.set_title(f"Item popularity (Jensen-Shannon {self.popularity_js:.3f})")
        popularity_ax.legend()
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
        return buffer.getvalue()


def drift_report(reference: pd.DataFrame, current: pd.DataFrame) -> DriftReport:
    """Compare ``current`` interactions with the ``reference`` ones a champion was trained on."""
    for name, table in (("reference", reference), ("current", current)):
        missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
        if missing:
            raise ValueError(f"{name} interactions lack columns {missing}")
        if table.empty:
            raise ValueError(f"{name} interactions are empty: there is no distribution to compare")
    new_users, new_users_share = _unseen_ids(current["user_id"], reference["user_id"])
    new_items, new_items_share = _unseen_ids(current["item_id"], reference["item_id"])
    histogram = pd.DataFrame(
        {"reference": _rating_shares(reference["rating"]), "current": _rating_shares(current["rating"])}
    ).fillna(0.0)
    histogram.index = [UNRATED if math.isnan(value) else f"{value:g}" for value in histogram.index]
    popularity = _item_popularity(reference["item_id"], current["item_id"])
    return DriftReport(
        reference=profile_interactions(reference),
        current=profile_interactions(current),
        new_users=new_users,
        new_users_share=new_users_share,
        new_items=new_items,
        new_items_share=new_items_share,
        rating_histogram=histogram,
        item_popularity=popularity,
        rating_tvd=float(0.5 * (histogram["reference"] - histogram["current"]).abs().sum()),
        popularity_js=jensen_shannon_divergence(
            popularity["reference"].to_numpy(float), popularity["current"].to_numpy(float)
        ),
        top_items_overlap=_top_items_overlap(popularity["reference"], popularity["current"], TOP_ITEMS),
    )


def profile_interactions(interactions: pd.DataFrame) -> InteractionProfile:
    activity = interactions["user_id"].value_counts()
    timestamps = interactions["timestamp"]
    return InteractionProfile(
        rows=len(interactions),
        users=len(activity),
        items=int(interactions["item_id"].nunique()),
        first_timestamp=int(timestamps.min()),
        last_timestamp=int(timestamps.max()),
        rating_mean=float(interactions["rating"].mean()),  # skips NaN; NaN if all are
        unrated_share=float(interactions["rating"].isna().mean()),
        user_activity_mean=float(activity.mean()),
        user_activity_median=float(activity.median()),
    )


def jensen_shannon_divergence(first: np.ndarray, second: np.ndarray) -> float:
    """Base-2 Jensen-Shannon divergence of two count (or probability) vectors on one support.

    Symmetric and bounded, unlike the KL divergence, and defined when an item has no
    interactions on one side: 0 for proportional vectors, 1 for disjoint supports.
    """
    p, q = first / first.sum(), second / second.sum()
    midpoint = (p + q) / 2

    def kl_to_midpoint(distribution: np.ndarray) -> float:
        support = distribution > 0  # 0 * log 0 = 0
        return float(np.sum(distribution[support] * np.log2(distribution[support] / midpoint[support])))

    divergence = (kl_to_midpoint(p) + kl_to_midpoint(q)) / 2
    return min(max(divergence, 0.0), 1.0)  # float rounding can step just outside [0, 1]


def _unseen_ids(current_ids: pd.Series, reference_ids: pd.Series) -> tuple[int, float]:
    """How many distinct current ids the reference lacks, and the share of current rows they hold."""
    unseen = ~current_ids.isin(reference_ids.unique())
    return int(current_ids[unseen].nunique()), float(unseen.mean())


def _rating_shares(ratings: pd.Series) -> pd.Series:
    """Share of each rating value, NaN (unrated) included, ascending with NaN last."""
    return ratings.value_counts(normalize=True, dropna=False).sort_index()


def _item_popularity(reference_items: pd.Series, current_items: pd.Series) -> pd.DataFrame:
    counts = (
        pd.DataFrame({"reference": reference_items.value_counts(), "current": current_items.value_counts()})
        .fillna(0)
        .astype("int64")
        .rename_axis("item_id")
        .reset_index()
    )
    # Ties broken by item id, so the order (and the top items) do not depend on input row order.
    ordered = counts.sort_values(["reference", "current", "item_id"], ascending=[False, False, True])
    return ordered.set_index("item_id")


def _top_items_overlap(reference_counts: pd.Series, current_counts: pd.Series, k: int) -> float:
    """Share of the smaller top-k list (a table may have fewer than k items) found in the other."""

    def top(counts: pd.Series) -> set:
        present = counts[counts > 0]
        order = np.lexsort((present.index.to_numpy(), -present.to_numpy()))  # count desc, then id
        return set(present.index.to_numpy()[order[:k]])

    reference_top, current_top = top(reference_counts), top(current_counts)
    return len(reference_top & current_top) / min(len(reference_top), len(current_top))


def _applied_thresholds(overrides: Mapping[str, float | None] | None) -> dict[str, float]:
    """The defaults with ``overrides`` applied; metrics overridden with None are left out."""
    unknown = set(overrides or {}) - set(ALERT_RULES)
    if unknown:
        raise ValueError(f"no alert rule for {sorted(unknown)}; known metrics: {sorted(ALERT_RULES)}")
    merged = DEFAULT_THRESHOLDS | dict(overrides or {})
    return {metric: threshold for metric, threshold in merged.items() if threshold is not None}


def _is_beyond(rule: AlertRule, value: float, threshold: float) -> bool:
    if rule.comparison == "above":
        return value > threshold
    if rule.comparison == "below":
        return value < threshold
    return abs(value) > threshold  # NaN compares False everywhere: an undefined metric never alerts


def _condition(rule: AlertRule, threshold: float) -> str:
    return f"{rule.comparison.replace('_', ' ')} {threshold:g}"


def _profile_rows(profile: InteractionProfile) -> dict[str, str]:
    return {
        "interactions": f"{profile.rows:,}",
        "users": f"{profile.users:,}",
        "items": f"{profile.items:,}",
        "first interaction (UTC)": _date(profile.first_timestamp),
        "last interaction (UTC)": _date(profile.last_timestamp),
        "span (days)": f"{profile.span_days:.1f}",
        "mean rating": _rating(profile.rating_mean),
        "unrated share": f"{profile.unrated_share:.1%}",
        "interactions per user, mean": f"{profile.user_activity_mean:.1f}",
        "interactions per user, median": f"{profile.user_activity_median:g}",
    }


def _describe_size_and_span(profile: InteractionProfile) -> str:
    return (
        f"{profile.rows:,} interactions, {profile.users:,} users, {profile.items:,} items, "
        f"{_date(profile.first_timestamp)} to {_date(profile.last_timestamp)} ({profile.span_days:.0f} days)"
    )


def _date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")


def _rating(mean: float) -> str:
    return "n/a (unrated)" if math.isnan(mean) else f"{mean:.2f}"


def _format_number(value: float) -> str:
    """Whole numbers (counts) with thousands separators, anything else to 4 significant digits."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"


def new_interactions(reference: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``current`` that ``reference`` does not have (by user, item and timestamp):
    what arrived since the reference was taken."""
    keys = ["user_id", "item_id", "timestamp"]
    seen = current[keys].merge(reference[keys].drop_duplicates(), on=keys, how="left", indicator=True)
    return current[(seen["_merge"] == "left_only").to_numpy()].reset_index(drop=True)
