"""The MovieLens-shaped generator: its marginals, determinism, and the real loader reading it."""

import numpy as np
import pandas as pd
import pytest

from movielens_pipeline.data.sources import load_source
from movielens_pipeline.data.synthetic import MIN_RATINGS_PER_USER, catalogue_size, write_synthetic


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = write_synthetic(tmp_path_factory.mktemp("synthetic"), 200_000, seed=3)
    return folder, pd.read_csv(folder / "ratings.csv"), pd.read_csv(folder / "movies.csv")


def test_the_official_layout_and_size(generated):
    folder, ratings, movies = generated
    assert (folder / "ratings.csv").read_text().splitlines()[0] == "userId,movieId,rating,timestamp"
    assert (folder / "movies.csv").read_text().splitlines()[0] == "movieId,title,genres"
    assert len(ratings) == 200_000 and len(movies) == catalogue_size(200_000)
    assert not ratings.duplicated(["userId", "movieId"]).any()
    assert ratings[["userId", "movieId"]].apply(tuple, axis=1).is_monotonic_increasing  # sorted by user, movie
    assert movies["title"].str.fullmatch(r".+ \(\d{4}\)").all()
    assert ratings["movieId"].isin(movies["movieId"]).all()


def test_movielens_marginals(generated):
    _, ratings, movies = generated
    per_user = ratings.groupby("userId").size()
    assert per_user.min() >= MIN_RATINGS_PER_USER
    assert per_user.max() > 8 * per_user.median()  # heavy-tailed activity
    assert set(ratings["rating"].unique()) <= {x / 2 for x in range(1, 11)} and ratings["rating"].nunique() >= 8
    per_item = ratings.groupby("movieId").size().sort_values(ascending=False).to_numpy()
    # Skewed popularity (uniform would give 10% and 50%): the top tenth of the movies hold over
    # 30% of the ratings, the bottom half under 30%.
    assert per_item[: len(per_item) // 10].sum() > 0.3 * len(ratings)
    assert per_item[len(per_item) // 2 :].sum() < 0.3 * len(ratings)
    released = pd.to_datetime(movies.set_index("movieId")["title"].str[-5:-1] + "-01-01").astype("int64") // 10**9
    assert (ratings["timestamp"].to_numpy() >= released.loc[ratings["movieId"]].to_numpy()).all()
    same_second = ratings.duplicated(["userId", "timestamp"], keep=False).mean()
    assert same_second > 0.2  # bursts of ratings in the same second


def test_the_same_seed_gives_the_same_files_and_another_seed_does_not(tmp_path):
    first = write_synthetic(tmp_path / "a", 30_000, seed=1)
    second = write_synthetic(tmp_path / "b", 30_000, seed=1)
    other = write_synthetic(tmp_path / "c", 30_000, seed=2)
    for name in ("ratings.csv", "movies.csv"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    assert (first / "ratings.csv").read_bytes() != (other / "ratings.csv").read_bytes()


def test_the_grouplens_loader_reads_it_and_the_contracts_pass(generated):
    from movielens_pipeline.data.contracts import validate_tables

    folder, ratings, _ = generated
    raw = load_source({"kind": "grouplens", "path": str(folder)})
    assert len(raw.interactions) == len(ratings)
    np.testing.assert_array_equal(raw.interactions["user_id"].to_numpy(), ratings["userId"].to_numpy())
    report = validate_tables(raw.interactions, raw.items, raw.item_attributes)
    assert report.success, report.failure_message()
