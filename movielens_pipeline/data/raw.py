"""The three plain tables every source becomes (``RawData``), and the helpers that build them.

- ``interactions``: user_id int64, item_id int64, rating float64 (NaN when the source has no
  ratings), timestamp int64 (unix seconds);
- ``items``: item_id int64, title string (any trailing "(1995)" moved into ``year``), year Int64;
- ``item_attributes`` (long form): item_id int64, attribute_type string, value string, with
  every attribute type the source has (genre, decade, director, writer, ...).

Loaders only reshape: they never drop or repair interactions, so the data contracts see the
source as it is. They raise ``SourceError`` (a ``ValueError``) when a source cannot be read.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

INTERACTION_DTYPES = {"user_id": "int64", "item_id": "int64", "rating": "float64", "timestamp": "int64"}
ITEM_DTYPES = {"item_id": "int64", "title": "string", "year": "Int64"}
ATTRIBUTE_DTYPES = {"item_id": "int64", "attribute_type": "string", "value": "string"}
# Genre labels that say "no genre known"; as attribute values they would group unrelated films.
NO_GENRE_LABELS = frozenset({"unknown", "(no genres listed)"})

TITLE_WITH_YEAR = r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$"


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


def interactions_frame(users: pd.Series, items: pd.Series, ratings: pd.Series, timestamps: pd.Series) -> pd.DataFrame:
    """The interactions table; it keeps the index of ``users`` (the file's line numbers)."""
    return pd.DataFrame({
        "user_id": as_int64(users, "user id").to_numpy(),
        "item_id": as_int64(items, "item id").to_numpy(),
        "rating": pd.to_numeric(ratings).astype("float64", copy=False).to_numpy(),
        "timestamp": as_int64(timestamps, "timestamp").to_numpy(),
    }, index=users.index, copy=False)


def items_frame(item_ids: pd.Series, titles: pd.Series, years: pd.Series) -> pd.DataFrame:
    """The items table; it keeps the index of ``item_ids`` (the file's line numbers)."""
    return pd.DataFrame({
        "item_id": as_int64(item_ids, "item id").to_numpy(),
        "title": titles.astype("string").to_numpy(),
        "year": years.astype("Int64").to_numpy(),
    }, index=item_ids.index)


def attribute_rows(item_ids: pd.Series, attribute_type: str, values: pd.Series) -> pd.DataFrame:
    """Long-form rows for one attribute type; ``values`` may hold lists (one row per element)."""
    rows = pd.DataFrame({"item_id": item_ids.to_numpy(), "value": values.to_numpy()}).explode("value")
    rows["value"] = rows["value"].astype("string").str.strip()
    keep = rows["value"].notna() & (rows["value"] != "")
    if attribute_type == "genre":
        keep &= ~rows["value"].isin(NO_GENRE_LABELS)
    rows = rows[keep]
    return pd.DataFrame({"item_id": as_int64(rows["item_id"], "item id"),
                         "attribute_type": attribute_type, "value": rows["value"].to_numpy()})


def assemble(interactions: pd.DataFrame, items: pd.DataFrame, attribute_parts: list[pd.DataFrame]) -> RawData:
    """Add decade rows (derived from year), then fix column order and dtypes. Interactions and
    items keep their index: the line of each row in its file, for messages about bad rows."""
    dated = items.dropna(subset=["year"])
    decades = (dated["year"] // 10 * 10).astype("int64").astype(str) + "s"
    parts = [*attribute_parts, attribute_rows(dated["item_id"], "decade", decades)]
    # Rows read from one file keep its line labels, for messages about them.
    labels = {part.index.name for part in parts if len(part)}
    relabel = len(labels) != 1 or None in labels
    parts = [part for part in parts if len(part)] or parts[-1:]
    attributes = pd.concat(parts, ignore_index=relabel).drop_duplicates(ignore_index=relabel)
    return RawData(
        interactions=interactions.astype(INTERACTION_DTYPES, copy=False),
        items=items.astype(ITEM_DTYPES),
        item_attributes=attributes.astype(ATTRIBUTE_DTYPES)[list(ATTRIBUTE_DTYPES)],
    )


def split_title_and_year(titles: pd.Series) -> tuple[pd.Series, pd.Series]:
    """'Heat (1995)' -> ('Heat', 1995); titles without a trailing year keep their text, year NA."""
    parts = titles.astype("string").str.extract(TITLE_WITH_YEAR)
    title = parts["title"].fillna(titles.astype("string").str.strip())
    return title, year_from_text(parts["year"])


def year_from_text(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values.astype("string"), errors="coerce").astype("Int64")


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def row_labels(values: pd.Series, where: pd.Series) -> str:
    """How a message points at rows: ``ratings.csv line [3, 9]`` (``row`` without a file)."""
    return f"{values.index.name or 'row'} {values.index[where][:5].tolist()}"


def shown_values(values: pd.Series, limit: int = 5) -> list:
    """The first values for a message, empty cells shown as "(empty)"."""
    return ["(empty)" if pd.isna(value) else value for value in values.head(limit).tolist()]


def as_int64(values: pd.Series, what: str) -> pd.Series:
    """Whole numbers as int64 (index kept), or a SourceError naming the bad values and their lines
    (ids must never be guessed, rounded or wrapped around)."""
    if pd.api.types.is_integer_dtype(values) and not values.hasnans:
        return values.astype("int64", copy=False)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers % 1 != 0) | (numbers < INT64_MIN) | (numbers > INT64_MAX)
    if bad.any():
        column = f", column {values.name}" if values.name is not None else ""
        raise SourceError(f"{row_labels(values, bad)}{column}: {bad.sum()} {what} values are not whole numbers "
                          f"that fit in 64 bits, e.g. {shown_values(values[bad])}")
    return numbers.astype("int64")
