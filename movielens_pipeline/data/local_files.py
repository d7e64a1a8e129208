"""Local sources: a movie-recommendation competition folder, and a plain ratings file (CSV or
Parquet) with configurable column names."""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from movielens_pipeline.data import raw
from movielens_pipeline.data.files import (
    DatasetFiles,
    existing_path,
    explain_unreadable,
    read_header,
    read_table,
    read_table_file,
    require_columns,
    with_line_numbers,
)
from movielens_pipeline.data.raw import RawData, SourceError

# Attribute files of the competition data: file name -> attribute type, which is also the name
# of the file's value column (the other one is item).
COMPETITION_ATTRIBUTE_FILES = {"genres.tsv": "genre", "directors.tsv": "director", "writers.tsv": "writer"}


def load_competition_folder(path: str | os.PathLike) -> RawData:
    """Load movie-recommendation competition data: ``train_ratings.csv`` (user, item, time) and
    ``titles.tsv``, ``years.tsv``, ``genres.tsv``, ``directors.tsv``, ``writers.tsv`` (item, value).

    The data has no ratings, so rating is NaN. The folder may also be a zip of it.
    """
    with DatasetFiles(existing_path(path, "competition data")) as files:
        ratings = read_table_file(files, "train_ratings.csv", delimiter=",",
                                   types={"user": pa.int64(), "item": pa.int64(), "time": pa.int64()})
        titles, years, *attribute_tables = [
            read_table_file(files, file_name, delimiter="\t", quoted=False,
                             types={"item": pa.int64(), value_column: pa.string()})
            for file_name, value_column in {"titles.tsv": "title", "years.tsv": "year",
                                            **COMPETITION_ATTRIBUTE_FILES}.items()]

    no_ratings = pd.Series(np.nan, index=ratings.index)
    interactions = raw.interactions_frame(ratings["user"], ratings["item"], no_ratings, ratings["time"])
    title, title_year = raw.split_title_and_year(titles["title"])
    # years.tsv does not list every item; those keep the year written in their title.
    listed_year = titles[["item"]].merge(years, on="item", how="left", validate="many_to_one")["year"]
    listed_year.index = titles.index
    items = raw.items_frame(titles["item"], title, raw.year_from_text(listed_year).fillna(title_year))
    attributes = [raw.attribute_rows(table["item"], attribute_type, table[attribute_type])
                  for attribute_type, table in zip(COMPETITION_ATTRIBUTE_FILES.values(), attribute_tables)]
    return raw.assemble(interactions, items, attributes)


# --- d. plain ratings file -------------------------------------------------------------------

DEFAULT_RATINGS_COLUMNS = {"user": "user_id", "item": "item_id", "timestamp": "timestamp"}


def load_ratings_file(
    path: str | os.PathLike,
    columns: Mapping[str, str] | None = None,
    delimiter: str = ",",
    item_attributes: pd.DataFrame | None = None,
) -> RawData:
    """Load a plain CSV or Parquet (by suffix .parquet/.pq) file of interactions.

    ``columns`` maps the roles user, item, timestamp and the optional rating to the file's column
    names (defaults: user_id, item_id, timestamp; no rating). Timestamps may be unix seconds or
    date-times (naive ones are read as UTC). Such a file knows no titles: every item gets the
    placeholder title ``"item <id>"``. ``item_attributes``: long-form attribute rows read from an
    item-attributes file (``sequence_files.load_item_attributes``), else there are none.
    """
    roles = {**DEFAULT_RATINGS_COLUMNS, **(columns or {})}
    unknown_roles = sorted(set(roles) - {"user", "item", "timestamp", "rating"})
    if unknown_roles:
        raise SourceError(f"unknown column roles {unknown_roles}; expected user, item, timestamp, rating")
    file = existing_path(path, "ratings file")
    wanted = list(roles.values())
    if file.suffix.lower() in {".parquet", ".pq"}:
        available = pq.read_schema(file).names
        require_columns(file.name, available, wanted)
        table = with_line_numbers(pq.read_table(file, columns=wanted).to_pandas(), f"{file.name} row", 1)
    else:
        table = _read_ratings_csv(file, wanted, delimiter)
    rating = table[roles["rating"]] if "rating" in roles else pd.Series(np.nan, index=table.index)
    interactions = raw.interactions_frame(table[roles["user"]], table[roles["item"]], rating,
                                       _as_unix_seconds(table[roles["timestamp"]], roles["timestamp"]))
    item_ids = pd.Series(np.sort(interactions["item_id"].unique()))
    items = raw.items_frame(item_ids, "item " + item_ids.astype(str), pd.Series(pd.NA, index=item_ids.index))
    return raw.assemble(interactions, items, [] if item_attributes is None else [item_attributes])


def _read_ratings_csv(file, wanted: list[str], delimiter: str) -> pd.DataFrame:
    """The wanted columns, types inferred; index = line numbers. When inference fails on a bad
    value, the columns are read as text so the conversions name the line and the value."""
    parse_options = pacsv.ParseOptions(delimiter=delimiter, ignore_empty_lines=False)
    with open(file, "rb") as stream:
        header = read_header(stream, file.name, delimiter, "utf8", quoted=True)
    require_columns(file.name, header, wanted)
    read_options = pacsv.ReadOptions(skip_rows=1, column_names=header)
    try:
        table = pacsv.read_csv(file, read_options=read_options, parse_options=parse_options,
                               convert_options=pacsv.ConvertOptions(include_columns=wanted)).to_pandas()
    except pa.ArrowInvalid:
        text_types = {column: pa.string() for column in wanted}
        try:
            table = pacsv.read_csv(file, read_options=read_options, parse_options=parse_options,
                                   convert_options=pacsv.ConvertOptions(include_columns=wanted,
                                                                        column_types=text_types)).to_pandas()
        except pa.ArrowInvalid as error:
            with open(file, "rb") as stream:
                raise SourceError(explain_unreadable(stream, file.name, delimiter=delimiter, names=header, types={},
                                                     encoding="utf8", quoted=True, first_line=2,
                                                     arrow_error=error)) from None  # fmt: skip
    return with_line_numbers(table, f"{file.name} line", 2, skip_blank=True)


def _as_unix_seconds(values: pd.Series, column: str) -> pd.Series:
    """Unix seconds as they are, date-times (naive ones read as UTC) converted to them."""
    if pd.api.types.is_datetime64_any_dtype(values):
        moments = values.dt.tz_localize("UTC") if values.dt.tz is None else values
        return (moments - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    if pd.api.types.is_numeric_dtype(values):
        return values
    numbers = pd.to_numeric(values, errors="coerce")
    text = numbers.isna() & values.notna()
    if text.any():
        moments = pd.to_datetime(values[text], utc=True, errors="coerce", format="mixed")
        bad = pd.Series(False, index=values.index)
        bad[text] = moments.isna().to_numpy()
        if bad.any():
            raise SourceError(f"{raw.row_labels(values, bad)}, column {column}: {bad.sum()} timestamps are "
                              f"neither unix seconds nor date-times, e.g. {values[bad].head(5).tolist()}")
        numbers[text] = (moments - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return numbers


# --- e. item attributes beside a ratings file ------------------------------------------------


def load_item_attributes(path: str | os.PathLike, item_column: str = "item_id",
                         columns: Sequence[str] | None = None, separator: str | None = "|",
                         delimiter: str = ",") -> pd.DataFrame:  # fmt: skip
    """Long-form attribute rows (item_id, attribute_type = column name, value) of an item-attributes
    file (CSV or Parquet: an item column plus attribute columns, one row per item), indexed by the
    line (CSV) or row (Parquet) each came from.

    A multi-valued cell such as ``Action|Comedy`` is split on ``separator``. An empty cell means
    the item has no value of that type; an empty part of a cell (``Action||Comedy``) is kept, so
    the attribute contract rejects it with its line.
    """
    file = existing_path(path, "item attributes file")
    if file.suffix.lower() in {".parquet", ".pq"}:
        available = pq.read_schema(file).names
        wanted = _attribute_columns(file.name, available, item_column, columns)
        table = pq.read_table(file, columns=[item_column, *wanted]).to_pandas()
        table = with_line_numbers(table, f"{file.name} row", 1)
    else:
        with open(file, "rb") as stream:
            available = read_header(stream, file.name, delimiter, "utf8", quoted=True)
            wanted = _attribute_columns(file.name, available, item_column, columns)
            table = read_table(stream, file.name, delimiter=delimiter, names=available,
                               types={name: pa.string() for name in available}).to_pandas()  # fmt: skip
        table = with_line_numbers(table[[item_column, *wanted]], f"{file.name} line", 2, skip_blank=True)
    item_ids = raw.as_int64(table[item_column], "item id")
    parts = []
    for column in wanted:
        cells = table[column].astype("string")
        present = cells.notna() & (cells.str.strip() != "")
        split = cells[present].str.split(separator, regex=False) if separator else cells[present].map(lambda v: [v])
        exploded = split.explode()
        parts.append(pd.DataFrame({
            "item_id": item_ids.reindex(exploded.index).to_numpy(),
            "attribute_type": column,
            "value": exploded.astype("string").str.strip().to_numpy(),
        }, index=exploded.index))  # fmt: skip
    return pd.concat(parts) if parts else pd.DataFrame(columns=["item_id", "attribute_type", "value"])


def _attribute_columns(label: str, available: Sequence[str], item_column: str,
                       columns: Sequence[str] | None) -> list[str]:  # fmt: skip
    require_columns(label, available, [item_column, *(columns or [])])
    wanted = list(columns) if columns is not None else [name for name in available if name != item_column]
    if not wanted:
        raise SourceError(f"{label}: no attribute column beside {item_column!r}; it has {list(available)}")
    return wanted
