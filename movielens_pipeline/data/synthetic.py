"""MovieLens-shaped synthetic ratings, for sizes whose archives cannot be downloaded here.

    python -m movielens_pipeline.data.synthetic --ratings 32000000 --out data/synthetic-32m

writes the official ml-25m/ml-32m layout (``ratings.csv``: userId,movieId,rating,timestamp,
sorted by user then movie; ``movies.csv``: movieId,title,genres with "Name (Year)" titles and
``|``-separated genres), read through the real GroupLens loader with
``source: {kind: grouplens, path: <folder>}``. Deterministic for a seed, vectorised (no
per-user Python loop): 32M ratings in about a minute.

The shape follows MovieLens: users and movies in the proportions of the official archives
(about 160 ratings per user; 3,706 movies at 1M ratings to 87,585 at 32M), every user with at
least 20 ratings and a heavy-tailed activity, Zipf-like movie popularity, a movie rated only
after its release, ratings in sessions with bursts of several in the same second, half stars.
The ratings follow user taste plus movie quality, so models have structure to find.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

# (ratings, movies) of the official archives; sizes in between are interpolated in log space.
OFFICIAL_SIZES = ((100_000, 1_682), (1_000_209, 3_706), (10_000_054, 10_681), (20_000_263, 27_278),
                  (25_000_095, 62_423), (32_000_204, 87_585))  # fmt: skip
RATINGS_PER_USER = 160
MIN_RATINGS_PER_USER = 20
FIRST_RATING = 822_873_600  # 1996-01-29, ML's first
LAST_RATING = 1_697_155_200  # 2023-10-13, ML-32M's last
GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
          "Western")  # fmt: skip
TASTES = 8  # latent taste groups: users like the movies of their group better
SECONDS_PER_YEAR = 31_556_952
# Rounds of drawing by popularity before a heavy user's last few items come uniformly (drawing
# the rare tail by popularity would take very many rounds).
ZIPF_ROUNDS = 4


def catalogue_size(ratings: int) -> int:
    sizes = np.array(OFFICIAL_SIZES, dtype=float)
    return int(round(np.exp(np.interp(np.log(ratings), np.log(sizes[:, 0]), np.log(sizes[:, 1])))))


def user_activity(users: int, ratings: int, max_per_user: int, rng: np.random.Generator) -> np.ndarray:
    """Ratings per user: at least 20, heavy-tailed (Pareto), summing to ``ratings``."""
    extra = rng.pareto(1.3, users) + 0.05
    extra *= (ratings - MIN_RATINGS_PER_USER * users) / extra.sum()
    counts = np.minimum(MIN_RATINGS_PER_USER + np.floor(extra).astype(np.int64), max_per_user)
    short = ratings - counts.sum()  # floor and the cap leave some ratings to hand out
    while short > 0:
        room = np.flatnonzero(counts < max_per_user)
        chosen = rng.choice(room, size=min(short, len(room)), replace=False)
        counts[chosen] += 1
        short -= len(chosen)
    return counts


def sorted_unique(keys: np.ndarray) -> np.ndarray:
    keys = np.sort(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys


def distinct_items_per_user(counts: np.ndarray, weights: np.ndarray, rng: np.random.Generator) -> tuple:
    """(users, items) with ``counts[u]`` distinct items for user u, drawn by ``weights``; the
    pairs come back sorted by user, then item.

    One vectorised round draws 20% more than each user needs, removes repeated pairs and keeps
    a random ``counts[u]`` of each user's distinct items. The heaviest users, whose share of the
    catalogue makes repeats common, get further rounds of their own, the last ones uniform over
    the catalogue (the rare tail would take very many draws by popularity).
    """
    num_items, num_users = len(weights), len(counts)
    cumulative = np.cumsum(weights / weights.sum())

    def draw(users: np.ndarray, by_popularity: bool) -> np.ndarray:
        if by_popularity:
            return np.minimum(np.searchsorted(cumulative, rng.random(len(users))), num_items - 1)
        return rng.integers(0, num_items, len(users))

    users = np.repeat(np.arange(num_users, dtype=np.int64), np.ceil(counts * 1.2).astype(np.int64) + 2)
    keys = sorted_unique(users * num_items + draw(users, True))
    owner = keys // num_items
    have = np.bincount(owner, minlength=num_users)
    # A random counts[u] of each user's distinct items: rank them in a random order within the user.
    order = np.argsort(owner + rng.random(len(keys)), kind="stable")
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys)) - np.repeat(np.cumsum(have) - have, have)
    keys = keys[rank < counts[owner]]

    rounds = 0
    while True:
        missing = counts - np.bincount(keys // num_items, minlength=num_users)
        short = np.flatnonzero(missing > 0)
        if not len(short):
            return keys // num_items, keys % num_items
        users = np.repeat(short, missing[short])
        theirs = np.isin(keys // num_items, short)
        # Users draw only what they miss, so removing repeats never leaves one with too many.
        merged = sorted_unique(np.concatenate([keys[theirs], users * num_items + draw(users, rounds < ZIPF_ROUNDS)]))
        keys = sorted_unique(np.concatenate([keys[~theirs], merged]))
        rounds += 1


def generate(ratings: int, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """(ratings, movies) tables in the ml-32m layout."""
    rng = np.random.default_rng(seed)
    num_users = max(1, ratings // RATINGS_PER_USER)
    num_items = catalogue_size(ratings)
    counts = user_activity(num_users, ratings, max_per_user=num_items // 2, rng=rng)

    # Movies: Zipf-like popularity in a random order of ids; release years skewed to recent ones.
    rank = rng.permutation(num_items)
    popularity = 1.0 / (rank + 5.0) ** 0.95
    years = np.clip(np.round(2023 - rng.exponential(18, num_items)), 1902, 2023).astype(np.int64)
    release = (years - 1970) * SECONDS_PER_YEAR
    quality = rng.normal(0, 0.6, num_items)
    item_taste = rng.integers(0, TASTES, num_items)
    users, items = distinct_items_per_user(counts, popularity, rng)

    # Time: each user rates in sessions (about one per 10 ratings) spread over their active span;
    # half of a session's ratings share its first second (MovieLens users rate in bursts).
    start = rng.integers(FIRST_RATING, LAST_RATING - 30 * 86_400, num_users)
    span = np.minimum(rng.exponential(2 * SECONDS_PER_YEAR, num_users), LAST_RATING - start)
    sessions = np.maximum(1, counts // 10)
    first_session = np.cumsum(sessions) - sessions
    session = first_session[users] + (rng.random(len(users)) * sessions[users]).astype(np.int64)
    session_start = start[np.repeat(np.arange(num_users), sessions)] + (
        rng.random(sessions.sum()) * span[np.repeat(np.arange(num_users), sessions)]
    ).astype(np.int64)
    in_burst = rng.random(len(users)) < 0.5
    when = session_start[session] + np.where(in_burst, 0, rng.integers(1, 1_800, len(users)))
    # A movie is rated only after its release: late ratings move to a time after it.
    too_early = when < release[items] + 86_400
    when[too_early] = release[items][too_early] + 86_400 + (rng.random(int(too_early.sum())) * 90 * 86_400).astype(np.int64)
    when = np.clip(when, np.maximum(FIRST_RATING, release[items] + 86_400), LAST_RATING)

    user_taste = rng.integers(0, TASTES, num_users)
    score = 3.4 + quality[items] + 0.9 * (user_taste[users] == item_taste[items]) + rng.normal(0, 0.7, len(users))
    stars = np.clip(np.round(score * 2) / 2, 0.5, 5.0)

    ratings_table = pa.table({
        "userId": pa.array(users + 1, pa.int64()),
        "movieId": pa.array(items + 1, pa.int64()),
        "rating": pa.array(stars, pa.float64()),
        "timestamp": pa.array(when, pa.int64()),
    })  # fmt: skip
    first_genre = rng.integers(0, len(GENRES), num_items)
    second_genre = np.where(rng.random(num_items) < 0.5, rng.integers(0, len(GENRES), num_items), first_genre)
    genre_names = np.array(GENRES)
    genres = np.where(first_genre == second_genre, genre_names[first_genre],
                      np.char.add(np.char.add(genre_names[first_genre], "|"), genre_names[second_genre]))
    titles = np.char.add(np.char.add(np.char.add("Movie ", (np.arange(num_items) + 1).astype(str)), " ("),
                         np.char.add(years.astype(str), ")"))  # fmt: skip
    movies_table = pa.table({
        "movieId": pa.array(np.arange(1, num_items + 1), pa.int64()),
        "title": pa.array(titles.tolist()),
        "genres": pa.array(genres.tolist()),
    })  # fmt: skip
    return ratings_table, movies_table


def write_synthetic(folder: str | Path, ratings: int, seed: int = 0) -> Path:
    """Write ratings.csv and movies.csv into ``folder`` (created); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ratings_table, movies_table = generate(ratings, seed)
    # Nothing generated holds a comma or a quote, so nothing is quoted, as in the official files
    # (pyarrow would quote the header, so it is written here).
    options = pacsv.WriteOptions(quoting_style="none", include_header=False)
    for name, table in (("ratings.csv", ratings_table), ("movies.csv", movies_table)):
        with open(folder / name, "wb") as out:
            out.write((",".join(table.column_names) + "\n").encode())
            pacsv.write_csv(table, out, write_options=options)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, required=True, help="number of ratings, e.g. 32000000")
    parser.add_argument("--out", required=True, help="folder to write ratings.csv and movies.csv into")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    folder = write_synthetic(args.out, args.ratings, args.seed)
    print(f"wrote {args.ratings:,} ratings to {folder} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
