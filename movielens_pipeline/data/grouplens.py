"""Official GroupLens MovieLens releases (100k, 1m, 10m, 20m, 25m, 32m, latest-small): downloaded
and checksum-checked, or read from a local zip or folder."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa

from movielens_pipeline.data import raw
from movielens_pipeline.data.files import (
    DatasetFiles,
    cache_folder,
    download,
    existing_path,
    read_double_colon_file,
    read_table_file,
    verify_checksum,
)
from movielens_pipeline.data.raw import ChecksumMismatchError, RawData, SourceError

GROUPLENS_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
GROUPLENS_NAMES = ("ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small")
# MD5s published by GroupLens in <name>.zip.md5 for its frozen releases. ml-latest-small is
# re-issued from time to time, so its checksum is read from that published file at download time.
GROUPLENS_MD5 = {
    "ml-100k": "0e33842e24a9c977be4e0107933c0723",
    "ml-1m": "c4d9eecfca2ab87c1945afe126590906",
    "ml-10m": "ce571fd55effeba0271552578f2648bd",
    "ml-20m": "cd245b17a1ae2cc31bb14903e1204af3",
    "ml-25m": "6b51fb2759a8657d3bfcbfc42b592ada",
    "ml-32m": "d472be332d4daa821edc399621853b57",
}

# Order of the genre flag columns in MovieLens-100k's u.item (the same list as its u.genre).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)


def grouplens_url(name: str) -> str:
    if name not in GROUPLENS_NAMES:
        raise SourceError(f"unknown GroupLens dataset {name!r}; known: {list(GROUPLENS_NAMES)}")
    return f"{GROUPLENS_BASE_URL}{name}.zip"


def fetch_grouplens_archive(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the verified GroupLens zip in the cache, downloading it when it is not there yet."""
    url = grouplens_url(name)
    folder = cache_folder(cache_dir)
    archive = folder / f"{name}.zip"
    sidecar = folder / f"{name}.zip.md5"
    expected_md5 = GROUPLENS_MD5.get(name) or _published_md5(url, sidecar)
    if not archive.exists():
        download(url, archive)
    try:
        verify_checksum(archive, expected_md5, "md5")
    except ChecksumMismatchError:
        sidecar.unlink(missing_ok=True)  # it may be the stale one, from before a re-release
        raise
    return archive


def load_grouplens(
    name: str | None = None,
    path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> RawData:
    """Load an official GroupLens MovieLens release, from a local zip/folder (``path``) or by ``name``.

    The layout is recognised from the files present: ``u.data``/``u.item`` (100k),
    ``ratings.dat``/``movies.dat`` (1m, 10m) or ``ratings.csv``/``movies.csv`` (20m and later).
    """
    if path is None:
        if name is None:
            raise SourceError("a grouplens source needs a name (to download) or a path (local zip or folder)")
        location = fetch_grouplens_archive(name, cache_dir)
    else:
        if name is not None:
            grouplens_url(name)  # rejects misspelt names even when reading a local copy
        location = existing_path(path, "GroupLens archive")
    with DatasetFiles(location) as files:
        for marker, read_layout in (("u.data", _read_100k_layout), ("ratings.dat", _read_dat_layout),
                                    ("ratings.csv", _read_csv_layout)):
            if files.has(marker):
                return read_layout(files)
    raise SourceError(f"{location} holds none of u.data, ratings.dat, ratings.csv: not a GroupLens MovieLens release")


def _read_100k_layout(files: DatasetFiles) -> RawData:
    ratings = read_table_file(files, "u.data", delimiter="\t", encoding="latin1",
                               names=["user_id", "item_id", "rating", "timestamp"],
                               types={"user_id": pa.int64(), "item_id": pa.int64(),
                                      "rating": pa.float64(), "timestamp": pa.int64()})
    movies = read_table_file(files, "u.item", delimiter="|", encoding="latin1", quoted=False,
                              names=["item_id", "title", "release_date", "video_release_date",
                                     "imdb_url", *ML100K_GENRES],
                              types={"item_id": pa.int64(), **{genre: pa.int8() for genre in ML100K_GENRES}})
    interactions = raw.interactions_frame(ratings["user_id"], ratings["item_id"], ratings["rating"], ratings["timestamp"])
    title, title_year = raw.split_title_and_year(movies["title"])
    # release_date looks like '01-Jan-1995'; it covers titles whose year is not at the very end.
    year = title_year.fillna(raw.year_from_text(movies["release_date"].str[-4:]))
    items = raw.items_frame(movies["item_id"], title, year)
    flags = movies.set_index("item_id")[list(ML100K_GENRES)].stack()
    flagged = flags[flags == 1].index.to_frame(index=False, name=["item_id", "genre"])
    genres = raw.attribute_rows(flagged["item_id"], "genre", flagged["genre"])
    return raw.assemble(interactions, items, [genres])


def _read_dat_layout(files: DatasetFiles) -> RawData:
    ratings = read_double_colon_file(files, "ratings.dat", {
        "user_id": pa.int64(), "item_id": pa.int64(), "rating": pa.float64(), "timestamp": pa.int64()})
    movies = read_double_colon_file(files, "movies.dat", {
        "item_id": pa.int64(), "title": pa.string(), "genres": pa.string()})
    interactions = raw.interactions_frame(ratings["user_id"], ratings["item_id"], ratings["rating"], ratings["timestamp"])
    return raw.assemble(interactions, *_movies_with_genres(movies["item_id"], movies["title"], movies["genres"]))


def _read_csv_layout(files: DatasetFiles) -> RawData:
    ratings = read_table_file(files, "ratings.csv", delimiter=",", types={
        "userId": pa.int64(), "movieId": pa.int64(), "rating": pa.float64(), "timestamp": pa.int64()})
    movies = read_table_file(files, "movies.csv", delimiter=",", types={"movieId": pa.int64()})
    interactions = raw.interactions_frame(ratings["userId"], ratings["movieId"], ratings["rating"], ratings["timestamp"])
    return raw.assemble(interactions, *_movies_with_genres(movies["movieId"], movies["title"], movies["genres"]))


def _movies_with_genres(item_ids: pd.Series, titles: pd.Series, genres: pd.Series) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Items and genre rows from the 1m-and-later movie files: 'Title (1995)' and 'A|B|C' genres."""
    title, year = raw.split_title_and_year(titles)
    return raw.items_frame(item_ids, title, year), [raw.attribute_rows(item_ids, "genre", genres.str.split("|"))]


def _published_md5(url: str, sidecar: Path) -> str:
    """The MD5 GroupLens publishes next to the archive, e.g. 'MD5 (ml-1m.zip) = c4d9…'."""
    if not sidecar.exists():
        download(f"{url}.md5", sidecar)
    match = re.search(r"\b[0-9a-fA-F]{32}\b", sidecar.read_text(errors="replace"))
    if match is None:
        sidecar.unlink()
        raise SourceError(f"{url}.md5 does not contain an MD5 checksum")
    return match.group(0).lower()
