"""MovieLens-100k as shipped inside RecBole 1.2.1's wheel: a pinned, checksummed copy that pip
can fetch from any package index (or mirror) even where files.grouplens.org is unreachable.
RecBole is never installed or imported: the files are read straight from the zip."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import pyarrow as pa

from movielens_pipeline.data import raw
from movielens_pipeline.data.files import (
    DatasetFiles,
    cache_folder,
    read_header,
    read_table,
    verify_checksum,
)
from movielens_pipeline.data.raw import RawData, SourceError

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


def ensure_embedded_wheel(cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the verified RecBole wheel in the cache, fetching it with pip when it is not there yet."""
    folder = cache_folder(cache_dir)
    wheel = folder / EMBEDDED_WHEEL_NAME
    if not wheel.exists():
        _pip_download_wheel(folder, wheel)
    verify_checksum(wheel, EMBEDDED_WHEEL_SHA256, "sha256")
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
    with DatasetFiles(ensure_embedded_wheel(cache_dir)) as files:
        inter = _read_atomic(files, "ml-100k.inter", {"user_id": pa.int64(), "item_id": pa.int64(),
                                                      "rating": pa.float64(), "timestamp": pa.float64()})
        item = _read_atomic(files, "ml-100k.item", {"item_id": pa.int64()})
        link = _read_atomic(files, "ml-100k.link", {"item_id": pa.int64()})
        kg = _read_atomic(files, "ml-100k.kg", {})

    interactions = raw.interactions_frame(inter["user_id"], inter["item_id"], inter["rating"], inter["timestamp"])
    title, title_year = raw.split_title_and_year(item["movie_title"])
    # release_year holds a few non-years ('unkonwn', 'V'); the title may still carry the year.
    year = raw.year_from_text(item["release_year"]).fillna(title_year)
    items = raw.items_frame(item["item_id"], title, year)
    genres = raw.attribute_rows(item["item_id"], "genre", item["class"].str.split(" "))

    relation_to_attribute = {KG_RELATION_BY_ATTRIBUTE[name]: name for name in kg_attributes}
    facts = kg[kg["relation_id"].isin(relation_to_attribute)].merge(
        link, left_on="head_id", right_on="entity_id", validate="many_to_one")
    kg_rows = [
        raw.attribute_rows(group["item_id"], relation_to_attribute[relation], group["tail_id"])
        for relation, group in facts.groupby("relation_id")
    ]
    return raw.assemble(interactions, items, [genres, *kg_rows])


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


def _read_atomic(files: DatasetFiles, name: str, types: Mapping[str, pa.DataType]) -> pd.DataFrame:
    """Read a RecBole atomic file: tab-separated, header fields written as ``name:type``."""
    with files.open(name) as stream:
        header = read_header(stream, name, "\t", "utf8")
        names = [field.split(":", 1)[0] for field in header]
        return read_table(stream, name, delimiter="\t", names=names, types=types, quoted=False).to_pandas()
