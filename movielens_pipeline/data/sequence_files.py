"""Sequence files as the S3Rec authors ship their datasets (RUCAIBox/CIKM2020-S3Rec's ``data/``),
in a folder or a zip:
- ``<name>.txt``: one user per line, ``user item item ...`` separated by spaces, items oldest
  first. The files carry no times: the position on the line is the time order, written as
  ``SEQUENCE_EPOCH`` + position seconds so every later step (contracts, time-ordered split)
  reads them as it reads any source;
- ``<name>_item2attributes.json`` (optional): ``{"item": [attribute, ...]}``, one attribute type
  (``attribute_type``); a repeated attribute of an item counts once.

Item-attributes file (CSV or Parquet): an item column plus one or more attribute columns, one
row per item; a multi-valued cell such as ``Action|Comedy`` is split on ``separator``. An empty
cell means the item has no value of that type; an empty part of a cell (``Action||Comedy``) is
kept, so the attribute contract rejects it with its line.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from movielens_pipeline.data import raw
from movielens_pipeline.data.files import (
    WHOLE_LINE_DELIMITER,
    DatasetFiles,
    existing_path,
    read_table,
    value_problem,
)
from movielens_pipeline.data.raw import RawData, SourceError

# 2000-01-01 00:00:00 UTC: sequence positions become seconds after it (inside the contracts' range).
SEQUENCE_EPOCH = 946_684_800


def load_sequence_files(path: str | os.PathLike, name: str, attribute_type: str = "attribute") -> RawData:
    """``<name>.txt`` and, when present, ``<name>_item2attributes.json`` from a folder or zip."""
    sequences_file, attributes_file = f"{name}.txt", f"{name}_item2attributes.json"
    with DatasetFiles(existing_path(path, "sequence files")) as files:
        with files.open(sequences_file) as stream:
            lines = read_table(stream, sequences_file, delimiter=WHOLE_LINE_DELIMITER, names=["line"],
                               types={"line": pa.string()}, quoted=False, keep_empty_lines=True).column("line")
        interactions = _sequence_interactions(lines, sequences_file)
        attributes = []
        if files.has(attributes_file):
            with files.open(attributes_file) as stream:
                attributes = [_item2attributes(stream.read(), attributes_file, attribute_type)]
    item_ids = pd.Series(np.sort(interactions["item_id"].unique()))
    items = raw.items_frame(item_ids, "item " + item_ids.astype(str), pd.Series(pd.NA, index=item_ids.index))
    return raw.assemble(interactions, items, attributes)


def _sequence_interactions(lines: pa.ChunkedArray, label: str) -> pd.DataFrame:
    """One interaction per item token, indexed by its line; every token checked to be a whole number."""
    trimmed = pc.fill_null(pc.utf8_trim_whitespace(lines), "")
    content = pc.not_equal(trimmed, "").to_numpy(zero_copy_only=False)  # blank lines carry nothing
    tokens = pc.utf8_split_whitespace(pc.filter(trimmed, content))
    counts = np.zeros(len(content), dtype=np.int64)
    counts[content] = pc.list_value_length(tokens).to_numpy(zero_copy_only=False)
    numbers = np.arange(1, len(counts) + 1)
    lonely = np.flatnonzero(counts == 1)
    if lonely.size:
        raise SourceError(f"{label} line {numbers[lonely[0]]}: user {lines[int(lonely[0])].as_py().strip()!r} has "
                          f"no items ({lonely.size} such lines); each line is 'user item item ...'")
    flat = pc.list_flatten(tokens)
    try:
        values = flat.cast(pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        texts = flat.to_numpy(zero_copy_only=False)
        bad = next(i for i, text in enumerate(texts) if value_problem(text, pa.int64()))
        line_of_token = np.repeat(numbers, counts)
        first = np.searchsorted(line_of_token, line_of_token[bad])
        position = bad - first
        role = "the user id" if position == 0 else f"item {position}"
        raise SourceError(f"{label} line {line_of_token[bad]}, field {position + 1} ({role}): {texts[bad]!r} "
                          f"{value_problem(texts[bad], pa.int64())}") from None
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[content]
    users = values[starts]
    repeated = _first_repeat(users)
    if repeated is not None:
        where = numbers[content][users == users[repeated]][:2].tolist()
        raise SourceError(f"{label} lines {where}: user {users[repeated]} has two lines; each user's items belong "
                          "on one line, in time order")
    item_counts = counts[content] - 1
    is_item = np.ones(len(values), dtype=bool)
    is_item[starts] = False
    position = np.arange(int(item_counts.sum())) - np.repeat(np.cumsum(item_counts) - item_counts, item_counts)
    frame = raw.interactions_frame(
        pd.Series(np.repeat(users, item_counts)), pd.Series(values[is_item]),
        pd.Series(np.full(len(position), np.nan)), pd.Series(SEQUENCE_EPOCH + position),
    )  # fmt: skip
    frame.index = pd.Index(np.repeat(numbers[content], item_counts), name=f"{label} line")
    return frame


def _first_repeat(values: np.ndarray) -> int | None:
    """Position of a value that occurs more than once, or None."""
    order = np.argsort(values, kind="stable")
    same = np.flatnonzero(values[order][1:] == values[order][:-1])
    return int(order[same[0]]) if same.size else None


def _item2attributes(content: bytes, label: str, attribute_type: str) -> pd.DataFrame:
    """``{"item": [attribute, ...]}`` as long-form rows indexed by the item key they came from."""
    try:
        mapping = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SourceError(f"{label}: not valid JSON ({error})") from None
    if not isinstance(mapping, dict):
        raise SourceError(f"{label}: expected an object {{item: [attribute, ...]}}, got {type(mapping).__name__}")
    keys = pd.Series(list(mapping.keys()))
    not_whole = keys[[value_problem(key, pa.int64()) is not None for key in keys]]
    if len(not_whole):
        raise SourceError(f"{label}, key {not_whole.iloc[0]!r}: an item id must be a whole number "
                          f"({len(not_whole)} such keys)")
    not_lists = [key for key, value in mapping.items() if not isinstance(value, list)]
    if not_lists:
        raise SourceError(f"{label}, key {not_lists[0]!r}: expected a list of attributes, got "
                          f"{mapping[not_lists[0]]!r}")
    lengths = np.array([len(value) for value in mapping.values()], dtype=np.int64)
    values = pd.Series([str(value) for attributes in mapping.values() for value in attributes], dtype="string")
    rows = pd.DataFrame({
        "item_id": np.repeat(keys.astype("int64").to_numpy(), lengths),
        "attribute_type": attribute_type,
        "value": values.str.strip().to_numpy(),
    }, index=pd.Index(np.repeat(keys.to_numpy(), lengths), name=f"{label} key"))  # fmt: skip
    return rows
