"""Drift report: no drift on identical data, each planted shift caught by its own metric and alert."""

from __future__ import annotations

import base64
import math
import re

import numpy as np
import pandas as pd
import pytest

from movielens_pipeline.data.drift import (
    DEFAULT_THRESHOLDS,
    UNRATED,
    drift_report,
    jensen_shannon_divergence,
)

DAY = 86_400
START = 1_000_000_000


def interactions(user_ids, item_ids, ratings, first_timestamp=START) -> pd.DataFrame:
    """An interactions table as the loaders return it, one interaction an hour."""
    user_ids = np.asarray(user_ids, dtype="int64")
    return pd.DataFrame(
        {
            "user_id": user_ids,
            "item_id": np.asarray(item_ids, dtype="int64"),
            "rating": np.asarray(ratings, dtype="float64"),
            "timestamp": first_timestamp + 3600 * np.arange(len(user_ids), dtype="int64"),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    """6,000 interactions: 200 users, 300 items with long-tailed popularity, ratings 1 to 4."""
    rng = np.random.default_rng(0)
    popularity = 1 / np.arange(1, 301)
    rows = 6000
    return interactions(
        user_ids=rng.integers(1, 201, rows),
        item_ids=rng.choice(np.arange(1, 301), rows, p=popularity / popularity.sum()),
        ratings=rng.integers(1, 5, rows),
    )


def alerted_metrics(report, thresholds=None) -> set[str]:
    return {message.split(" = ")[0] for message in report.alerts(thresholds)}


def test_identical_data_in_another_row_order_shows_no_drift(reference):
    current = reference.sample(frac=1.0, random_state=1)

    report = drift_report(reference, current)
    metrics = report.metrics()

    assert metrics["drift_new_users"] == metrics["drift_new_users_share"] == 0
    assert metrics["drift_new_items"] == metrics["drift_new_items_share"] == 0
    assert metrics["drift_rating_tvd"] == 0
    assert metrics["drift_rating_mean_change"] == 0
    assert metrics["drift_popularity_js"] == 0
    assert metrics["drift_popularity_top100_overlap"] == 1
    assert metrics["drift_volume_ratio"] == metrics["drift_user_activity_mean_ratio"] == 1
    assert report.alerts() == []
    assert report.summary().splitlines()[-1] == "Alerts: none"


def test_metrics_are_flat_floats_with_mlflow_ready_names(reference):
    metrics = drift_report(reference, reference).metrics()

    assert all(isinstance(value, float) for value in metrics.values())
    assert all(re.fullmatch(r"drift_[a-z0-9_]+", name) for name in metrics)
    assert set(DEFAULT_THRESHOLDS) <= set(metrics)
    assert metrics["drift_reference_rows"] == metrics["drift_current_rows"] == 6000
    assert metrics["drift_reference_span_days"] == pytest.approx(5999 / 24)


def test_ratings_shifted_by_one_are_caught_by_the_rating_metrics_only(reference):
    current = reference.assign(rating=reference["rating"] + 1)

    report = drift_report(reference, current)
    metrics = report.metrics()

    shares = reference["rating"].value_counts(normalize=True).sort_index().to_numpy()  # ratings 1-4
    shares_before, shares_after = np.append(shares, 0.0), np.insert(shares, 0, 0.0)  # over 1-5
    assert metrics["drift_rating_mean_change"] == pytest.approx(1.0)
    assert metrics["drift_rating_tvd"] == pytest.approx(0.5 * np.abs(shares_before - shares_after).sum())
    assert report.rating_histogram.index.tolist() == ["1", "2", "3", "4", "5"]
    assert report.rating_histogram["current"].to_numpy() == pytest.approx(shares_after)
    assert metrics["drift_popularity_js"] == 0
    assert alerted_metrics(report) == {"drift_rating_tvd", "drift_rating_mean_change"}


def test_new_items_are_counted_and_caught(reference):
    # A quarter more interactions, copied from the first rows onto items never seen before, so
    # they account for exactly 20% of the current interactions.
    copied = reference.iloc[:1500]
    on_new_items = copied.assign(item_id=copied["item_id"] + 10_000)
    current = pd.concat([reference, on_new_items], ignore_index=True)

    report = drift_report(reference, current)
    metrics = report.metrics()

    assert metrics["drift_new_items"] == copied["item_id"].nunique()
    assert metrics["drift_new_items_share"] == pytest.approx(0.2)
    assert metrics["drift_new_users"] == 0
    assert (report.item_popularity.tail(int(metrics["drift_new_items"]))["reference"] == 0).all()
    assert alerted_metrics(report) == {"drift_new_items_share"}


def test_reversed_popularity_is_caught_by_the_popularity_metrics():
    # 200 items: item i has 201 - i interactions in the reference and i in the current table.
    items = np.arange(1, 201)
    reference_items = np.repeat(items, 201 - items)
    current_items = np.repeat(items, items)
    users = np.arange(len(reference_items)) % 50 + 1
    reference = interactions(users, reference_items, np.full(len(users), 4.0))
    day_after_reference = int(reference["timestamp"].max()) + DAY
    current = interactions(users, current_items, np.full(len(users), 4.0), first_timestamp=day_after_reference)

    report = drift_report(reference, current)
    metrics = report.metrics()

    assert metrics["drift_popularity_js"] == pytest.approx(jensen_shannon_divergence(201.0 - items, items * 1.0))
    assert metrics["drift_popularity_js"] > 0.25
    assert metrics["drift_popularity_top100_overlap"] == 0  # items 1-100 against items 101-200
    assert metrics["drift_new_items"] == 0
    assert metrics["drift_rating_tvd"] == 0
    assert metrics["drift_time_gap_days"] == 1
    assert alerted_metrics(report) == {"drift_popularity_js", "drift_popularity_top100_overlap"}


def test_unrated_interactions_have_their_own_histogram_bucket(reference):
    implicit = reference.assign(rating=np.nan)

    both_implicit = drift_report(implicit, implicit)
    explicit_then_implicit = drift_report(reference, implicit)

    assert both_implicit.rating_histogram.index.tolist() == [UNRATED]
    assert both_implicit.metrics()["drift_rating_tvd"] == 0
    assert math.isnan(both_implicit.metrics()["drift_rating_mean_change"])
    assert both_implicit.alerts() == []
    assert "n/a (unrated)" in both_implicit.summary()
    assert explicit_then_implicit.rating_histogram.index[-1] == UNRATED
    assert explicit_then_implicit.metrics()["drift_rating_tvd"] == pytest.approx(1.0)
    assert explicit_then_implicit.metrics()["drift_current_unrated_share"] == 1
    assert alerted_metrics(explicit_then_implicit) == {"drift_rating_tvd"}


def test_top_items_overlap_compares_the_shorter_list_when_there_are_fewer_than_100_items():
    reference = interactions([1, 1, 2], [10, 20, 30], [4, 4, 4])
    current = interactions([1, 2], [10, 20], [4, 4])

    assert drift_report(reference, current).metrics()["drift_popularity_top100_overlap"] == 1


def test_thresholds_override_the_defaults_and_none_disables_a_check(reference):
    report = drift_report(reference, reference.assign(rating=reference["rating"] + 1))

    assert alerted_metrics(report, {"drift_rating_tvd": None}) == {"drift_rating_mean_change"}
    assert alerted_metrics(report, {"drift_rating_mean_change": 1.5}) == {"drift_rating_tvd"}
    assert alerted_metrics(report, {"drift_popularity_top100_overlap": 1.01}) == {
        "drift_rating_tvd",
        "drift_rating_mean_change",
        "drift_popularity_top100_overlap",  # 1.0: an overlap threshold is a lower bound
    }
    with pytest.raises(ValueError, match="no alert rule"):
        report.alerts({"drift_rating_tdv": 0.1})


def test_jensen_shannon_divergence_bounds():
    assert jensen_shannon_divergence(np.array([1.0, 2.0, 0.0]), np.array([2.0, 4.0, 0.0])) == 0
    assert jensen_shannon_divergence(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == 1


def test_empty_or_malformed_tables_are_refused(reference):
    with pytest.raises(ValueError, match="empty"):
        drift_report(reference, reference.iloc[:0])
    with pytest.raises(ValueError, match="lack columns"):
        drift_report(reference.drop(columns="rating"), reference)


def test_html_page_holds_the_tables_alerts_and_an_embedded_png(reference):
    report = drift_report(reference, reference.assign(rating=reference["rating"] + 1))

    page = report.to_html()

    assert page.startswith("<html>") and page.endswith("</html>")
    assert page.count("<table") == 3  # drift metrics, tables compared, rating histogram
    assert "drift_popularity_js" in page and "interactions per user, median" in page
    assert "drift_rating_tvd = " in page  # the alert, listed above the tables
    png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page).group(1))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_new_interactions_are_the_rows_the_reference_does_not_have(reference):
    from movielens_pipeline.data.drift import new_interactions

    arrived = reference.head(7).assign(timestamp=reference.head(7)["timestamp"] + 1)
    current = pd.concat([reference.sample(frac=1.0, random_state=0), arrived], ignore_index=True)
    found = new_interactions(reference, current)
    pd.testing.assert_frame_equal(found, arrived.reset_index(drop=True))
    assert new_interactions(reference, reference).empty
