"""Which source a run reads: one typed spec per kind, chosen by ``kind`` in the run config.

    source: {kind: embedded}                                 # MovieLens-100k, offline
    source: {kind: grouplens, name: ml-1m}                   # download, checksum-checked
    source: {kind: grouplens, path: /data/ml-25m}            # a local archive or folder
    source: {kind: competition, path: /data/movie-rec/}
    source: {kind: ratings_file, path: r.parquet, columns: {user: uid, item: iid},
             attributes: {path: items.csv, item_column: movie, columns: [genres], separator: "|"}}
    source: {kind: sequences, path: /data/s3rec, name: Toys_and_Games}   # <name>.txt + attributes

An unknown kind or option fails when ZenML compiles the run, naming it.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, TypeAdapter

from movielens_pipeline.data import embedded, grouplens, local_files, sequence_files
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


class ItemAttributesFile(StepParameters):
    """Item attributes beside a ratings file (CSV or Parquet): one row per item, an item column
    and attribute columns, each column one attribute type named after it."""

    path: str
    item_column: str = "item_id"
    columns: Optional[list[str]] = None  # the attribute columns; None: every column but the item's
    separator: Optional[str] = "|"  # splits multi-valued cells ("Action|Comedy"); None: one value a cell
    delimiter: str = ","  # of a CSV file

    def load(self):
        return local_files.load_item_attributes(self.path, self.item_column, self.columns, self.separator,
                                                self.delimiter)  # fmt: skip


class RatingsFileSource(StepParameters):
    """A CSV or Parquet file of interactions; ``columns`` maps the roles user, item, timestamp
    and (optional) rating to the file's column names; ``attributes`` an optional item-attributes
    file, which S3Rec's attribute objectives (AAP, MAP) learn from."""

    kind: Literal["ratings_file"]
    path: str
    columns: Optional[dict[Literal["user", "item", "timestamp", "rating"], str]] = None
    delimiter: str = ","
    attributes: Optional[ItemAttributesFile] = None

    def load(self) -> RawData:
        attributes = self.attributes.load() if self.attributes is not None else None
        return local_files.load_ratings_file(self.path, self.columns, self.delimiter, attributes)


class SequencesSource(StepParameters):
    """Sequence files in the S3Rec authors' format: ``<name>.txt`` (a user per line, items in time
    order) and, when present, ``<name>_item2attributes.json`` (one attribute type), in a folder or zip."""

    kind: Literal["sequences"]
    path: str
    name: str
    attribute_type: str = "attribute"  # what the JSON's attributes are (LastFM: tags; Amazon: categories, brand)

    def load(self) -> RawData:
        return sequence_files.load_sequence_files(self.path, self.name, self.attribute_type)


SourceSpec = Annotated[
    Union[EmbeddedSource, GroupLensSource, CompetitionSource, RatingsFileSource, SequencesSource],
    Field(discriminator="kind"),
]

_SOURCE_SPEC = TypeAdapter(SourceSpec)


def load_source(spec: SourceSpec | dict) -> RawData:
    """Load the source a spec (or its run-config dict) describes; a bad dict raises a ValueError."""
    if isinstance(spec, dict):
        spec = _SOURCE_SPEC.validate_python(spec)
    return spec.load()
