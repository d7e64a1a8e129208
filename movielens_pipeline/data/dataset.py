"""The built dataset every model trains on: id maps, time-ordered sequences, attributes.

Index conventions shared by all models:
- item and user indices are contiguous and start at 1; index 0 is padding;
- attribute indices start at 1; index 0 is padding;
- leave-one-out by time: the last item of a sequence is the test target, the one before it the
  validation target, everything earlier is training data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import IO, Callable, Sequence

import numpy as np
import pandas as pd
import torch


@dataclass
class SequenceDataset:
    """Tables of the built dataset (each one is stored as a Parquet file by its materializer).

    - ``user_map``: user_idx, user_id
    - ``item_map``: item_idx, item_id, title
    - ``sequences``: user_idx, items (list of item_idx, oldest first), timestamps
    - ``attribute_vocab``: attr_idx, attribute_type, value
    - ``item_attributes``: item_idx, attr_idx (long form)
    """

    user_map: pd.DataFrame
    item_map: pd.DataFrame
    sequences: pd.DataFrame
    attribute_vocab: pd.DataFrame
    item_attributes: pd.DataFrame
    stats: dict = field(default_factory=dict)

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
        return self.sequences["user_idx"].to_numpy(dtype=np.int64)

    def full_sequences(self) -> list[np.ndarray]:
        return [np.asarray(s, dtype=np.int64) for s in self.sequences["items"]]

    def train_sequences(self) -> list[np.ndarray]:
        """Each user's sequence without its validation and test items."""
        return [s[:-2] for s in self.full_sequences()]

    def valid_inputs(self) -> list[np.ndarray]:
        """History visible when predicting the validation item (the training part)."""
        return self.train_sequences()

    def test_inputs(self) -> list[np.ndarray]:
        """History visible when predicting the test item (training part + validation item)."""
        return [s[:-1] for s in self.full_sequences()]

    def valid_targets(self) -> np.ndarray:
        return np.array([s[-2] for s in self.full_sequences()], dtype=np.int64)

    def test_targets(self) -> np.ndarray:
        return np.array([s[-1] for s in self.full_sequences()], dtype=np.int64)

    def attribute_types(self) -> list[str]:
        return sorted(self.attribute_vocab["attribute_type"].unique().tolist())

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
        """Short content hash of the users' sequences (identifies the data a model saw)."""
        digest = hashlib.sha256()
        for user, seq in zip(self.user_indices, self.full_sequences()):
            digest.update(np.int64(user).tobytes() + seq.tobytes())
        return digest.hexdigest()[:16]

    def item_popularity(self) -> np.ndarray:
        """Training-part interaction count of each item index (index 0 stays 0)."""
        counts = np.zeros(self.num_items + 1, dtype=np.int64)
        for seq in self.train_sequences():
            np.add.at(counts, seq, 1)
        return counts


def pad_left(sequences: Sequence[np.ndarray], length: int) -> torch.Tensor:
    """[N, length] int64 rows holding each sequence's last ``length`` items, right-aligned."""
    rows = np.zeros((len(sequences), length), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        tail = np.asarray(sequence, dtype=np.int64)[-length:]
        rows[row, length - len(tail) :] = tail
    return torch.from_numpy(rows)


DATASET_TABLES = ("user_map", "item_map", "sequences", "attribute_vocab", "item_attributes")
# open_file(name, mode) -> a binary or text file object, wherever the dataset is stored.
OpenFile = Callable[[str, str], IO]


def write_dataset(data: SequenceDataset, open_file: OpenFile) -> None:
    """One Parquet file per table plus ``stats.json``."""
    import json

    for name in DATASET_TABLES:
        with open_file(f"{name}.parquet", "wb") as f:
            getattr(data, name).to_parquet(f, index=False)
    with open_file("stats.json", "w") as f:
        json.dump(data.stats, f, indent=2)


def read_dataset(open_file: OpenFile) -> SequenceDataset:
    import json

    import pyarrow.parquet as pq

    tables = {}
    for name in DATASET_TABLES:
        with open_file(f"{name}.parquet", "rb") as f:
            tables[name] = pq.read_table(f).to_pandas()
    with open_file("stats.json", "r") as f:
        stats = json.load(f)
    for column in ("items", "timestamps"):
        tables["sequences"][column] = tables["sequences"][column].map(list)
    return SequenceDataset(**tables, stats=stats)
