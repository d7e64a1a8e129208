"""Which source a run reads: one typed spec per kind, chosen by ``kind`` in the run config.

    source: {kind: embedded}                                 # MovieLens-100k, offline
    source: {kind: grouplens, name: ml-1m}                   # download, checksum-checked
    source: {kind: grouplens, path: /data/ml-25m}            # a local archive or folder
    source: {kind: competition, path: /data/movie-rec/}
    source: {kind: ratings_file, path: r.parquet, columns: {user: uid, item: iid}}

An unknown kind or option fails when ZenML compiles the run, naming it.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, TypeAdapter

from movielens_pipeline.data import embedded, grouplens, local_files
from movielens_pipeline.data.raw import RawData
from movielens_pipeline.parameters import StepParameters


class EmbeddedSource(StepParameters):
    """The real MovieLens-100k inside RecBole 1.2.1's wheel (fetched once with pip)."""

    kind: Literal["embedded"] = "embedded"
    cache_dir: Optional[str] = None
    kg_attributes: tuple[str, ...] = embedded.DEFAULT_KG_ATTRIBUTES

    def load(self) -> RawData:
        return embedded.load_embedded_ml100k(self.cache_dir, self.kg_attributes)


class GroupLensSource(StepParameters):
    """An official release by ``name`` (downloaded) or from ``path`` (a local zip or folder)."""

    kind: Literal["grouplens"]
    name: Optional[str] = None
    path: Optional[str] = None
    cache_dir: Optional[str] = None

    def load(self) -> RawData:
        return grouplens.load_grouplens(self.name, self.path, self.cache_dir)


class CompetitionSource(StepParameters):
    """train_ratings.csv plus titles/years/genres/directors/writers.tsv, in a folder or zip."""

    kind: Literal["competition"]
    path: str

    def load(self) -> RawData:
        return local_files.load_competition_folder(self.path)


class RatingsFileSource(StepParameters):
    """A CSV or Parquet file of interactions; ``columns`` maps the roles user, item, timestamp
    and (optional) rating to the file's column names."""

    kind: Literal["ratings_file"]
    path: str
    columns: Optional[dict[Literal["user", "item", "timestamp", "rating"], str]] = None
    delimiter: str = ","

    def load(self) -> RawData:
        return local_files.load_ratings_file(self.path, self.columns, self.delimiter)


SourceSpec = Annotated[
    Union[EmbeddedSource, GroupLensSource, CompetitionSource, RatingsFileSource], Field(discriminator="kind")
]

_SOURCE_SPEC = TypeAdapter(SourceSpec)


def load_source(spec: SourceSpec | dict) -> RawData:
    """Load the source a spec (or its run-config dict) describes; a bad dict raises a ValueError."""
    if isinstance(spec, dict):
        spec = _SOURCE_SPEC.validate_python(spec)
    return spec.load()
