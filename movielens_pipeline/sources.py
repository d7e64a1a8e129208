"""Loaders that turn a MovieLens-style source into three plain tables (``RawData``).

Every loader returns the same shapes, whatever the source:

- ``interactions``: user_id int64, item_id int64, rating float64 (NaN when the source has no
  ratings), timestamp int64 (unix seconds);
- ``items``: item_id int64, title string (any trailing "(1995)" moved into ``year``), year Int64;
- ``item_attributes`` (long form): item_id int64, attribute_type string, value string, with
  every attribute type the source has (genre, decade, director, writer, ...).

Loaders only reshape: they never drop or repair interactions, so the data contracts
(``movielens_pipeline.contracts``) see the source as it is. They raise ``SourceError`` (a
``ValueError``) when a source cannot be read at all.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

INTERACTION_DTYPES = {"user_id": "int64", "item_id": "int64", "rating": "float64", "timestamp": "int64"}
ITEM_DTYPES = {"item_id": "int64", "title": "string", "year": "Int64"}
ATTRIBUTE_DTYPES = {"item_id": "int64", "attribute_type": "string", "value": "string"}

# MovieLens-100k as shipped inside RecBole's wheel: a pinned, checksummed copy that pip can fetch
# from any package index (or mirror) even where files.grouplens.org is unreachable.
EMBEDDED_WHEEL_REQUIREMENT = "recbole==1.2.1"
EMBEDDED_WHEEL_NAME = "recbole-1.2.1-py3-none-any.whl"
EMBEDDED_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"

# Knowledge-graph relations of the embedded data that can become attribute types (Freebase ids
# as values). Actors are off by default: about 25 per film, they would swamp the vocabulary.
KG_RELATION_BY_ATTRIBUTE = {
    "director": "film.film.directed_by",
    "writer": "film.film.written_by",
    "actor": "film.film.actor",
    "producer": "film.film.produced_by",
    "cinematographer": "film.film.cinematography",
    "production_company": "film.film.production_companies",
    "language": "film.film.language",
    "country": "film.film.country",
    "content_rating": "film.film.rating",
    "subject": "film.film.subjects",
}
DEFAULT_KG_ATTRIBUTES = ("director", "writer")

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
# Genre labels that say "no genre known"; as attribute values they would group unrelated films.
NO_GENRE_LABELS = frozenset({"unknown", "(no genres listed)"})

_TITLE_WITH_YEAR = r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$"
# A byte that never occurs in MovieLens text, used as the CSV delimiter to read whole lines.
_WHOLE_LINE_DELIMITER = "\x1f"


@dataclass
class RawData:
    """The three tables every source is turned into (see the module docstring for columns)."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    item_attributes: pd.DataFrame


class SourceError(ValueError):
    """A source cannot be read: unknown kind, missing file, unknown layout, unparsable values."""


class ChecksumMismatchError(SourceError):
    """A downloaded or cached file does not have the published checksum (it has been deleted)."""


# --- run-config dispatch -------------------------------------------------------------------


def load_source(spec: Mapping[str, Any]) -> RawData:
    """Load the source described by a run-config entry, e.g. ``{"kind": "grouplens", "name": "ml-1m"}``.

    Kinds and their options (the keyword arguments of the matching loader):
    ``embedded`` (cache_dir, kg_attributes), ``grouplens`` (name, path, cache_dir),
    ``competition`` (path), ``ratings_file`` (path, columns, delimiter).
    """
    options = dict(spec)
    kind = options.pop("kind", None)
    loader = _LOADERS_BY_KIND.get(kind)
    if loader is None:
        raise SourceError(f"unknown source kind {kind!r}; expected one of {sorted(_LOADERS_BY_KIND)}")
    try:
        inspect.signature(loader).bind(**options)
    except TypeError as error:
        accepted = list(inspect.signature(loader).parameters)
        raise SourceError(f"source kind {kind!r}: {error}; accepted options: {accepted}") from None
    return loader(**options)


# --- a. MovieLens-100k embedded in RecBole's wheel ------------------------------------------


def default_cache_dir() -> Path:
    """Where downloads are kept: $MOVIELENS_CACHE_DIR, else ~/.cache/movielens-pipeline."""
    configured = os.environ.get("MOVIELENS_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "movielens-pipeline"


def ensure_embedded_wheel(cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the verified RecBole wheel in the cache, fetching it with pip when it is not there yet."""
    folder = _cache_folder(cache_dir)
    wheel = folder / EMBEDDED_WHEEL_NAME
    if not wheel.exists():
        _pip_download_wheel(folder, wheel)
    _verify_checksum(wheel, EMBEDDED_WHEEL_SHA256, "sha256")
    return wheel


def load_embedded_ml100k(
    cache_dir: str | os.PathLike | None = None,
    kg_attributes: Sequence[str] = DEFAULT_KG_ATTRIBUTES,
) -> RawData:
    """Load the real MovieLens-100k shipped in RecBole 1.2.1's wheel, read straight from the zip.

    ``kg_attributes`` picks which knowledge-graph relations become attribute types (keys of
    ``KG_RELATION_BY_ATTRIBUTE``); genre and decade are always present.
    """
    unknown = sorted(set(kg_attributes) - set(KG_RELATION_BY_ATTRIBUTE))
    if unknown:
        raise SourceError(f"unknown kg_attributes {unknown}; known: {sorted(KG_RELATION_BY_ATTRIBUTE)}")
    with _DatasetFiles(ensure_embedded_wheel(cache_dir)) as files:
        inter = _read_atomic(files, "ml-100k.inter", {"user_id": pa.int64(), "item_id": pa.int64(),
                                                      "rating": pa.float64(), "timestamp": pa.float64()})
        item = _read_atomic(files, "ml-100k.item", {"item_id": pa.int64()})
        link = _read_atomic(files, "ml-100k.link", {"item_id": pa.int64()})
        kg = _read_atomic(files, "ml-100k.kg", {})

    interactions = _interactions_frame(inter["user_id"], inter["item_id"], inter["rating"], inter["timestamp"])
    title, title_year = _split_title_and_year(item["movie_title"])
    # release_year holds a few non-years ('unkonwn', 'V'); the title may still carry the year.
    year = _year_from_text(item["release_year"]).fillna(title_year)
    items = _items_frame(item["item_id"], title, year)
    genres = _attribute_rows(item["item_id"], "genre", item["class"].str.split(" "))

    relation_to_attribute = {KG_RELATION_BY_ATTRIBUTE[name]: name for name in kg_attributes}
    facts = kg[kg["relation_id"].isin(relation_to_attribute)].merge(
        link, left_on="head_id", right_on="entity_id", validate="many_to_one")
    kg_rows = [
        _attribute_rows(group["item_id"], relation_to_attribute[relation], group["tail_id"])
        for relation, group in facts.groupby("relation_id")
    ]
    return _assemble(interactions, items, [genres, *kg_rows])


def _pip_download_wheel(folder: Path, wheel: Path) -> None:
    # Download into a private folder and move the file in place, so a concurrent reader never
    # sees a half-written wheel; --only-binary makes sure pip does not fall back to the sdist.
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   EMBEDDED_WHEEL_REQUIREMENT, "-d", scratch]
        finished = subprocess.run(command, capture_output=True, text=True)
        fetched = Path(scratch) / EMBEDDED_WHEEL_NAME
        if finished.returncode != 0 or not fetched.exists():
            raise SourceError(f"could not fetch {EMBEDDED_WHEEL_REQUIREMENT} with pip "
                              f"(exit {finished.returncode}):\n{finished.stderr.strip()[-2000:]}")
        os.replace(fetched, wheel)


def _read_atomic(files: _DatasetFiles, name: str, types: Mapping[str, pa.DataType]) -> pd.DataFrame:
    """Read a RecBole atomic file: tab-separated, header fields written as ``name:type``."""
    with files.open(name) as stream:
        header = _read_header(stream, "\t", "utf8")
        names = [field.split(":", 1)[0] for field in header]
        return _read_table(stream, name, delimiter="\t", names=names, types=types, quoted=False).to_pandas()


# --- b. official GroupLens archives ----------------------------------------------------------


def grouplens_url(name: str) -> str:
    if name not in GROUPLENS_NAMES:
        raise SourceError(f"unknown GroupLens dataset {name!r}; known: {list(GROUPLENS_NAMES)}")
    return f"{GROUPLENS_BASE_URL}{name}.zip"


def fetch_grouplens_archive(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the verified GroupLens zip in the cache, downloading it when it is not there yet."""
    url = grouplens_url(name)
    folder = _cache_folder(cache_dir)
    archive = folder / f"{name}.zip"
    sidecar = folder / f"{name}.zip.md5"
    expected_md5 = GROUPLENS_MD5.get(name) or _published_md5(url, sidecar)
    if not archive.exists():
        _download(url, archive)
    try:
        _verify_checksum(archive, expected_md5, "md5")
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
        location = _existing_path(path, "GroupLens archive")
    with _DatasetFiles(location) as files:
        for marker, read_layout in (("u.data", _read_100k_layout), ("ratings.dat", _read_dat_layout),
                                    ("ratings.csv", _read_csv_layout)):
            if files.has(marker):
                return read_layout(files)
    raise SourceError(f"{location} holds none of u.data, ratings.dat, ratings.csv: not a GroupLens MovieLens release")


def _read_100k_layout(files: _DatasetFiles) -> RawData:
    ratings = _read_table_file(files, "u.data", delimiter="\t", encoding="latin1",
                               names=["user_id", "item_id", "rating", "timestamp"],
                               types={"user_id": pa.int64(), "item_id": pa.int64(),
                                      "rating": pa.float64(), "timestamp": pa.int64()})
    movies = _read_table_file(files, "u.item", delimiter="|", encoding="latin1", quoted=False,
                              names=["item_id", "title", "release_date", "video_release_date",
                                     "imdb_url", *ML100K_GENRES],
                              types={"item_id": pa.int64(), **{genre: pa.int8() for genre in ML100K_GENRES}})
    interactions = _interactions_frame(ratings["user_id"], ratings["item_id"], ratings["rating"], ratings["timestamp"])
    title, title_year = _split_title_and_year(movies["title"])
    # release_date looks like '01-Jan-1995'; it covers titles whose year is not at the very end.
    year = title_year.fillna(_year_from_text(movies["release_date"].str[-4:]))
    items = _items_frame(movies["item_id"], title, year)
    flags = movies.set_index("item_id")[list(ML100K_GENRES)].stack()
    flagged = flags[flags == 1].index.to_frame(index=False, name=["item_id", "genre"])
    genres = _attribute_rows(flagged["item_id"], "genre", flagged["genre"])
    return _assemble(interactions, items, [genres])


def _read_dat_layout(files: _DatasetFiles) -> RawData:
    ratings = _read_double_colon_file(files, "ratings.dat", {
        "user_id": pa.int64(), "item_id": pa.int64(), "rating": pa.float64(), "timestamp": pa.int64()})
    movies = _read_double_colon_file(files, "movies.dat", {
        "item_id": pa.int64(), "title": pa.string(), "genres": pa.string()})
    interactions = _interactions_frame(ratings["user_id"], ratings["item_id"], ratings["rating"], ratings["timestamp"])
    return _assemble(interactions, *_movies_with_genres(movies["item_id"], movies["title"], movies["genres"]))


def _read_csv_layout(files: _DatasetFiles) -> RawData:
    ratings = _read_table_file(files, "ratings.csv", delimiter=",", types={
        "userId": pa.int64(), "movieId": pa.int64(), "rating": pa.float64(), "timestamp": pa.int64()})
    movies = _read_table_file(files, "movies.csv", delimiter=",", types={"movieId": pa.int64()})
    interactions = _interactions_frame(ratings["userId"], ratings["movieId"], ratings["rating"], ratings["timestamp"])
    return _assemble(interactions, *_movies_with_genres(movies["movieId"], movies["title"], movies["genres"]))


def _movies_with_genres(item_ids: pd.Series, titles: pd.Series, genres: pd.Series) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Items and genre rows from the 1m-and-later movie files: 'Title (1995)' and 'A|B|C' genres."""
    title, year = _split_title_and_year(titles)
    return _items_frame(item_ids, title, year), [_attribute_rows(item_ids, "genre", genres.str.split("|"))]


def _published_md5(url: str, sidecar: Path) -> str:
    """The MD5 GroupLens publishes next to the archive, e.g. 'MD5 (ml-1m.zip) = c4d9…'."""
    if not sidecar.exists():
        _download(f"{url}.md5", sidecar)
    match = re.search(r"\b[0-9a-fA-F]{32}\b", sidecar.read_text(errors="replace"))
    if match is None:
        sidecar.unlink()
        raise SourceError(f"{url}.md5 does not contain an MD5 checksum")
    return match.group(0).lower()


def _download(url: str, target: Path) -> None:
    # Written under a temporary name first, so an interrupted download never looks complete.
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f"{target.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out, length=1 << 20)
    except (urllib.error.URLError, OSError) as error:
        os.unlink(partial)
        raise SourceError(f"could not download {url}: {error}. Without network access, give the "
                          "source a path to a local copy of the archive.") from error
    os.replace(partial, target)


# --- c. competition folder ---------------------------------------------------------------------

# Attribute files of the competition data: file name -> attribute type, which is also the name
# of the file's value column (the other one is item).
COMPETITION_ATTRIBUTE_FILES = {"genres.tsv": "genre", "directors.tsv": "director", "writers.tsv": "writer"}


def load_competition_folder(path: str | os.PathLike) -> RawData:
    """Load movie-recommendation competition data: ``train_ratings.csv`` (user, item, time) and
    ``titles.tsv``, ``years.tsv``, ``genres.tsv``, ``directors.tsv``, ``writers.tsv`` (item, value).

    The data has no ratings, so rating is NaN. The folder may also be a zip of it.
    """
    with _DatasetFiles(_existing_path(path, "competition data")) as files:
        ratings = _read_table_file(files, "train_ratings.csv", delimiter=",",
                                   types={"user": pa.int64(), "item": pa.int64(), "time": pa.int64()})
        titles, years, *attribute_tables = [
            _read_table_file(files, file_name, delimiter="\t", quoted=False,
                             types={"item": pa.int64(), value_column: pa.string()})
            for file_name, value_column in {"titles.tsv": "title", "years.tsv": "year",
                                            **COMPETITION_ATTRIBUTE_FILES}.items()]

    no_ratings = pd.Series(np.nan, index=ratings.index)
    interactions = _interactions_frame(ratings["user"], ratings["item"], no_ratings, ratings["time"])
    title, title_year = _split_title_and_year(titles["title"])
    # years.tsv does not list every item; those keep the year written in their title.
    listed_year = titles[["item"]].merge(years, on="item", how="left", validate="many_to_one")["year"]
    items = _items_frame(titles["item"], title, _year_from_text(listed_year).fillna(title_year))
    attributes = [_attribute_rows(table["item"], attribute_type, table[attribute_type])
                  for attribute_type, table in zip(COMPETITION_ATTRIBUTE_FILES.values(), attribute_tables)]
    return _assemble(interactions, items, attributes)


# --- d. plain ratings file -------------------------------------------------------------------

DEFAULT_RATINGS_COLUMNS = {"user": "user_id", "item": "item_id", "timestamp": "timestamp"}


def load_ratings_file(
    path: str | os.PathLike,
    columns: Mapping[str, str] | None = None,
    delimiter: str = ",",
) -> RawData:
    """Load a plain CSV or Parquet (by suffix .parquet/.pq) file of interactions.

    ``columns`` maps the roles user, item, timestamp and the optional rating to the file's column
    names (defaults: user_id, item_id, timestamp; no rating). Timestamps may be unix seconds or
    date-times (naive ones are read as UTC). Such a file knows no titles or attributes: every item
    gets the placeholder title ``"item <id>"`` and there are no attribute rows.
    """
    roles = {**DEFAULT_RATINGS_COLUMNS, **(columns or {})}
    unknown_roles = sorted(set(roles) - {"user", "item", "timestamp", "rating"})
    if unknown_roles:
        raise SourceError(f"unknown column roles {unknown_roles}; expected user, item, timestamp, rating")
    file = _existing_path(path, "ratings file")
    wanted = list(roles.values())
    if file.suffix.lower() in {".parquet", ".pq"}:
        available = pq.read_schema(file).names
        _require_columns(file.name, available, wanted)
        table = pq.read_table(file, columns=wanted).to_pandas()
    else:
        parse_options = pacsv.ParseOptions(delimiter=delimiter)
        with pacsv.open_csv(file, parse_options=parse_options) as reader:
            _require_columns(file.name, reader.schema.names, wanted)
        table = pacsv.read_csv(file, parse_options=parse_options,
                               convert_options=pacsv.ConvertOptions(include_columns=wanted)).to_pandas()

    rating = table[roles["rating"]] if "rating" in roles else pd.Series(np.nan, index=table.index)
    interactions = _interactions_frame(table[roles["user"]], table[roles["item"]], rating,
                                       _as_unix_seconds(table[roles["timestamp"]], roles["timestamp"]))
    item_ids = pd.Series(np.sort(interactions["item_id"].unique()))
    items = _items_frame(item_ids, "item " + item_ids.astype(str), pd.Series(pd.NA, index=item_ids.index))
    return _assemble(interactions, items, [])


def _as_unix_seconds(values: pd.Series, column: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values):
        return values
    try:
        moments = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError) as error:
        raise SourceError(f"column {column!r}: timestamps are neither unix seconds nor date-times ({error})") from None
    return (moments - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)


_LOADERS_BY_KIND: dict[str, Callable[..., RawData]] = {
    "embedded": load_embedded_ml100k,
    "grouplens": load_grouplens,
    "competition": load_competition_folder,
    "ratings_file": load_ratings_file,
}


# --- building the three tables ----------------------------------------------------------------


def _interactions_frame(users: pd.Series, items: pd.Series, ratings: pd.Series, timestamps: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": _as_int64(users, "user id"),
        "item_id": _as_int64(items, "item id"),
        "rating": pd.to_numeric(ratings).astype("float64").to_numpy(),
        "timestamp": _as_int64(timestamps, "timestamp"),
    })


def _items_frame(item_ids: pd.Series, titles: pd.Series, years: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": _as_int64(item_ids, "item id"),
        "title": titles.astype("string").to_numpy(),
        "year": years.astype("Int64").to_numpy(),
    })


def _attribute_rows(item_ids: pd.Series, attribute_type: str, values: pd.Series) -> pd.DataFrame:
    """Long-form rows for one attribute type; ``values`` may hold lists (one row per element)."""
    rows = pd.DataFrame({"item_id": item_ids.to_numpy(), "value": values.to_numpy()}).explode("value")
    rows["value"] = rows["value"].astype("string").str.strip()
    keep = rows["value"].notna() & (rows["value"] != "")
    if attribute_type == "genre":
        keep &= ~rows["value"].isin(NO_GENRE_LABELS)
    rows = rows[keep]
    return pd.DataFrame({"item_id": _as_int64(rows["item_id"], "item id"),
                         "attribute_type": attribute_type, "value": rows["value"].to_numpy()})


def _assemble(interactions: pd.DataFrame, items: pd.DataFrame, attribute_parts: list[pd.DataFrame]) -> RawData:
    """Add decade rows (derived from year), then fix column order, dtypes and indexes."""
    dated = items.dropna(subset=["year"])
    decades = (dated["year"] // 10 * 10).astype("int64").astype(str) + "s"
    parts = [*attribute_parts, _attribute_rows(dated["item_id"], "decade", decades)]
    attributes = pd.concat(parts, ignore_index=True).drop_duplicates(ignore_index=True)
    return RawData(
        interactions=interactions.astype(INTERACTION_DTYPES).reset_index(drop=True),
        items=items.astype(ITEM_DTYPES).reset_index(drop=True),
        item_attributes=attributes.astype(ATTRIBUTE_DTYPES)[list(ATTRIBUTE_DTYPES)],
    )


def _split_title_and_year(titles: pd.Series) -> tuple[pd.Series, pd.Series]:
    """'Heat (1995)' -> ('Heat', 1995); titles without a trailing year keep their text, year NA."""
    parts = titles.astype("string").str.extract(_TITLE_WITH_YEAR)
    title = parts["title"].fillna(titles.astype("string").str.strip())
    return title, _year_from_text(parts["year"])


def _year_from_text(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values.astype("string"), errors="coerce").astype("Int64")


def _as_int64(values: pd.Series, what: str) -> pd.Series:
    """Whole numbers as int64, or a SourceError naming the bad values (ids must never be guessed)."""
    if pd.api.types.is_integer_dtype(values) and not values.hasnans:
        return values.astype("int64").reset_index(drop=True)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers % 1 != 0)
    if bad.any():
        raise SourceError(f"{bad.sum()} {what} values are not whole numbers, e.g. "
                          f"{values[bad].head(5).tolist()} at rows {values.index[bad][:5].tolist()}")
    return numbers.astype("int64").reset_index(drop=True)


# --- reading files ---------------------------------------------------------------------------


class _DatasetFiles:
    """The files of a dataset looked up by base name, inside a zip or a folder.

    Official archives wrap their files in a top folder (ml-1m/ratings.dat), so files one level
    down are found too; a file at the top level wins over a nested one.
    """

    def __init__(self, location: Path):
        self.location = location
        self._zip: zipfile.ZipFile | None = None
        if location.is_dir():
            shallow_first = [*sorted(location.glob("*")), *sorted(location.glob("*/*"))]
            paths: list[Path | str] = [path for path in shallow_first if path.is_file()]
        elif zipfile.is_zipfile(location):
            self._zip = zipfile.ZipFile(location)
            files = [member for member in self._zip.namelist() if not member.endswith("/")]
            paths = sorted(files, key=lambda member: member.count("/"))
        else:
            raise SourceError(f"{location} is neither a folder nor a zip archive")
        self._members: dict[str, Path | str] = {}
        for path in paths:
            self._members.setdefault(PurePosixPath(path).name, path)

    def __enter__(self) -> _DatasetFiles:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._zip is not None:
            self._zip.close()

    def has(self, name: str) -> bool:
        return name in self._members

    def open(self, name: str) -> IO[bytes]:
        if name not in self._members:
            raise SourceError(f"{self.location} has no file {name}")
        member = self._members[name]
        return self._zip.open(member) if self._zip is not None else open(member, "rb")


def _read_table_file(files: _DatasetFiles, name: str, *, delimiter: str, types: Mapping[str, pa.DataType],
                     names: Sequence[str] | None = None, encoding: str = "utf8", quoted: bool = True) -> pd.DataFrame:
    """Read a delimited file; without ``names`` its first line is the header."""
    with files.open(name) as stream:
        if names is None:
            names = _read_header(stream, delimiter, encoding)
        return _read_table(stream, name, delimiter=delimiter, names=names, types=types,
                           encoding=encoding, quoted=quoted).to_pandas()


def _read_header(stream: IO[bytes], delimiter: str, encoding: str) -> list[str]:
    return stream.readline().decode(encoding).rstrip("\r\n").split(delimiter)


def _read_table(stream: IO[bytes], label: str, *, delimiter: str, names: Sequence[str],
                types: Mapping[str, pa.DataType], encoding: str = "utf8", quoted: bool = True) -> pa.Table:
    """Read the rest of ``stream`` with pyarrow; columns not in ``types`` stay text (never inferred)."""
    _require_columns(label, names, types)
    try:
        return pacsv.read_csv(
            stream,
            read_options=pacsv.ReadOptions(column_names=list(names), encoding=encoding),
            # MovieLens titles contain bare quote characters, so only real CSV gets quote handling.
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoted else False),
            convert_options=pacsv.ConvertOptions(column_types={n: types.get(n, pa.string()) for n in names}),
        )
    except pa.ArrowInvalid as error:
        raise SourceError(f"{label}: {error}") from None


def _read_double_colon_file(files: _DatasetFiles, name: str, types: Mapping[str, pa.DataType]) -> pd.DataFrame:
    """Read a headerless '::'-separated latin-1 file (pyarrow's CSV reader takes one-character
    delimiters only): read whole lines, then split every line at once."""
    with files.open(name) as stream:
        lines = _read_table(stream, name, delimiter=_WHOLE_LINE_DELIMITER, names=["line"],
                            types={"line": pa.string()}, encoding="latin1", quoted=False).column("line")
    fields = pc.split_pattern(lines, "::", max_splits=len(types) - 1)
    wrong = np.flatnonzero(pc.list_value_length(fields).to_numpy(zero_copy_only=False) != len(types))
    if wrong.size:
        raise SourceError(f"{name}: {wrong.size} lines do not have {len(types)} '::'-separated fields, "
                          f"e.g. line {wrong[0] + 1}: {lines[int(wrong[0])].as_py()!r}")
    try:
        columns = {column: pc.list_element(fields, position).cast(dtype)
                   for position, (column, dtype) in enumerate(types.items())}
    except pa.ArrowInvalid as error:
        raise SourceError(f"{name}: {error}") from None
    return pa.table(columns).to_pandas()


def _require_columns(label: str, present: Sequence[str], required: Sequence[str] | Mapping[str, Any]) -> None:
    missing = [column for column in required if column not in present]
    if missing:
        raise SourceError(f"{label} lacks columns {missing}; it has {list(present)}")


# --- files, cache and checksums ----------------------------------------------------------------


def _existing_path(path: str | os.PathLike, what: str) -> Path:
    location = Path(path).expanduser()
    if not location.exists():
        raise SourceError(f"{what} not found: {location}")
    return location


def _cache_folder(cache_dir: str | os.PathLike | None) -> Path:
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _verify_checksum(path: Path, expected: str, algorithm: str) -> None:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        path.unlink()
        raise ChecksumMismatchError(
            f"{path} has {algorithm} {digest.hexdigest()}, expected {expected}: the file is corrupt or "
            "not the published release. It has been deleted; the next run downloads it again.")
