"""The built dataset every model trains on: id maps, time-ordered sequences, attributes.

Index conventions shared by all models:
- item and user indices are contiguous and start at 1; index 0 is padding;
- attribute indices start at 1; index 0 is padding;
- leave-one-out by time: the last item of a sequence is the test target, the one before it the
  validation target, everything earlier is training data.

The sequences are flat: one item array and one timestamp array holding every user's
interactions user after user, oldest first, and ``offsets`` where each user starts. Every
accessor returns views of those arrays (``Ragged``), so memory is a few bytes per rating and no
per-user Python object exists at any size.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import IO, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from movielens_pipeline.data.ragged import Ragged, as_ragged


@dataclass
class SequenceDataset:
    """Tables of the built dataset (stored as Parquet files by its materializer).

    - ``user_map``: user_idx, user_id (user_idx i owns row i - 1 of the sequences)
    - ``item_map``: item_idx, item_id, title
    - ``items`` / ``timestamps``: int64, every interaction, user after user, oldest first
    - ``offsets``: int64 [num_users + 1], user_idx i's interactions are ``offsets[i-1]:offsets[i]``
    - ``attribute_vocab``: attr_idx, attribute_type, value
    - ``item_attributes``: item_idx, attr_idx (long form)
    """

    user_map: pd.DataFrame
    item_map: pd.DataFrame
    items: np.ndarray
    timestamps: np.ndarray
    offsets: np.ndarray
    attribute_vocab: pd.DataFrame
    item_attributes: pd.DataFrame
    stats: dict = field(default_factory=dict)

    @classmethod
    def from_sequences(cls, sequences: Sequence[Sequence[int]], num_items: int, **tables) -> "SequenceDataset":
        """A small dataset from per-user item lists (tests): ids equal indices, timestamps count up."""
        flat = Ragged.from_rows(sequences)
        users = np.arange(1, len(sequences) + 1)
        items = np.arange(1, num_items + 1)
        tables = {
            "user_map": pd.DataFrame({"user_idx": users, "user_id": users}),
            "item_map": pd.DataFrame({"item_idx": items, "item_id": items, "title": ""}),
            "attribute_vocab": pd.DataFrame({"attr_idx": [], "attribute_type": [], "value": []}),
            "item_attributes": pd.DataFrame({"item_idx": [], "attr_idx": []}),
        } | tables
        positions = np.arange(len(flat.values)) - np.repeat(flat.starts, flat.lengths)
        return cls(items=flat.values, timestamps=positions, offsets=np.append(flat.starts, len(flat.values)), **tables)

    @property
    def num_users(self) -> int:
        return len(self.user_map)

    @property
    def num_items(self) -> int:
        return len(self.item_map)

    @property
    def num_attributes(self) -> int:
        return len(self.attribute_vocab)

    @property
    def user_indices(self) -> np.ndarray:
        return np.arange(1, self.num_users + 1, dtype=np.int64)

    def full_sequences(self) -> Ragged:
        return Ragged.from_offsets(self.items, self.offsets)

    def train_sequences(self) -> Ragged:
        """Each user's sequence without its validation and test items."""
        return self.full_sequences().without_last(2)

    def valid_inputs(self) -> Ragged:
        """History visible when predicting the validation item (the training part)."""
        return self.train_sequences()

    def test_inputs(self) -> Ragged:
        """History visible when predicting the test item (training part + validation item)."""
        return self.full_sequences().without_last(1)

    def valid_targets(self) -> np.ndarray:
        return self.full_sequences().last(2)

    def test_targets(self) -> np.ndarray:
        return self.full_sequences().last(1)

    def attribute_types(self) -> list[str]:
        return sorted(self.attribute_vocab["attribute_type"].unique().tolist())

    def informative_attribute_types(self, min_items_per_value: float) -> list[str]:
        """The attribute types whose values are shared, on average, by at least ``min_items_per_value``
        items (a type with nearly one value per item, such as a film's director, groups nothing)."""
        pairs = self.item_attributes.merge(self.attribute_vocab, on="attr_idx")
        per_type = pairs.groupby("attribute_type").agg(pairs=("item_idx", "size"), values=("attr_idx", "nunique"))
        informative = per_type["pairs"] >= min_items_per_value * per_type["values"]
        return sorted(per_type.index[informative].tolist())

    def item_attribute_index(self, attribute_types: list[str] | None = None) -> torch.Tensor:
        """Padded [num_items + 1, max_attrs] tensor of each item's attribute indices (0 = none).

        ``attribute_types`` keeps only those types (None keeps all of them).
        """
        pairs = self.item_attributes
        if attribute_types is not None:
            keep = self.attribute_vocab.loc[
                self.attribute_vocab["attribute_type"].isin(attribute_types), "attr_idx"
            ]
            pairs = pairs[pairs["attr_idx"].isin(keep)]
        pairs = pairs.sort_values(["item_idx", "attr_idx"])
        counts = pairs.groupby("item_idx").size()
        width = int(counts.max()) if len(counts) else 1
        index = torch.zeros((self.num_items + 1, width), dtype=torch.long)
        if len(pairs):
            item = pairs["item_idx"].to_numpy()
            slot = pairs.groupby("item_idx").cumcount().to_numpy()
            index[torch.from_numpy(item), torch.from_numpy(slot)] = torch.from_numpy(
                pairs["attr_idx"].to_numpy(dtype=np.int64)
            )
        return index

    def fingerprint(self) -> str:
        """Short content hash of the users' sequences (identifies the data a model saw): the
        bytes of each user index followed by its items, user after user, as int64."""
        stream = np.insert(self.items.astype(np.int64), self.offsets[:-1], self.user_indices)
        return hashlib.sha256(stream.tobytes()).hexdigest()[:16]

    def item_popularity(self) -> np.ndarray:
        """Training-part interaction count of each item index (index 0 stays 0)."""
        return np.bincount(self.train_sequences().flat()[1], minlength=self.num_items + 1)


def pad_left(sequences: Ragged | Sequence[np.ndarray], length: int) -> torch.Tensor:
    """[N, length] int64 rows holding each sequence's last ``length`` items, right-aligned."""
    return torch.from_numpy(as_ragged(sequences).padded_left(length))


DATASET_TABLES = ("user_map", "item_map", "attribute_vocab", "item_attributes")
# The flat sequences are stored as one table: user_idx, item_idx, timestamp, in sequence order.
INTERACTIONS_FILE = "interactions.parquet"
# open_file(name, mode) -> a binary or text file object, wherever the dataset is stored.
OpenFile = Callable[[str, str], IO]


def write_dataset(data: SequenceDataset, open_file: OpenFile) -> None:
    """One Parquet file per table plus ``stats.json``."""
    for name in DATASET_TABLES:
        with open_file(f"{name}.parquet", "wb") as f:
            getattr(data, name).to_parquet(f, index=False)
    lengths = np.diff(data.offsets)
    interactions = pd.DataFrame({
        "user_idx": np.repeat(data.user_indices.astype(np.int32), lengths),
        "item_idx": data.items.astype(np.int32),
        "timestamp": data.timestamps.astype(np.int64),
    })  # fmt: skip
    with open_file(INTERACTIONS_FILE, "wb") as f:
        interactions.to_parquet(f, index=False)
    with open_file("stats.json", "w") as f:
        json.dump(data.stats, f, indent=2)


def read_dataset(open_file: OpenFile) -> SequenceDataset:
    import pyarrow.parquet as pq

    tables = {}
    for name in DATASET_TABLES:
        with open_file(f"{name}.parquet", "rb") as f:
            tables[name] = pq.read_table(f).to_pandas()
    with open_file("stats.json", "r") as f:
        stats = json.load(f)
    with open_file(INTERACTIONS_FILE, "rb") as f:
        interactions = pq.read_table(f)
    users = interactions["user_idx"].to_numpy()
    if len(users) and (np.diff(users) < 0).any():
        raise ValueError(f"{INTERACTIONS_FILE} is not ordered by user_idx: the dataset artifact is corrupt")
    counts = np.bincount(users, minlength=len(tables["user_map"]) + 1)[1:]
    return SequenceDataset(
        **tables,
        items=interactions["item_idx"].to_numpy().astype(np.int64),
        timestamps=interactions["timestamp"].to_numpy().astype(np.int64),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        stats=stats,
    )
