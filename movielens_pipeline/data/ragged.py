"""Rows of different lengths over one flat array, with no Python object per row.

Every user's sequence, a split's histories, the training windows and a serving request's
histories are all ``Ragged``: row ``i`` is ``values[starts[i]:ends[i]]``. Trimming a row's end
or picking rows only moves the bounds, so the training part of a sequence, the test history and
each window are views of the same item array; operations over all rows are numpy expressions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Ragged:
    values: np.ndarray  # int64, the rows' items back to back (rows may share or skip values)
    starts: np.ndarray  # int64 [rows]
    ends: np.ndarray  # int64 [rows], ends >= starts

    @classmethod
    def from_offsets(cls, values: np.ndarray, offsets: np.ndarray) -> "Ragged":
        """Rows laid end to end: row i is ``values[offsets[i]:offsets[i + 1]]``."""
        offsets = np.asarray(offsets, dtype=np.int64)
        return cls(np.asarray(values, dtype=np.int64), offsets[:-1], offsets[1:])

    @classmethod
    def from_pairs(cls, rows: np.ndarray, values: np.ndarray, num_rows: int) -> "Ragged":
        """From (row, value) pairs ordered by row: row i holds the values paired with i."""
        counts = np.bincount(rows, minlength=num_rows)
        return cls.from_offsets(values, np.concatenate([[0], np.cumsum(counts)]))

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[int]]) -> "Ragged":
        """From a list of rows (small inputs: tests and serving requests)."""
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        values = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows]) if len(rows) else np.zeros(0, np.int64)
        return cls.from_offsets(values, np.concatenate([[0], np.cumsum(lengths)]))

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def lengths(self) -> np.ndarray:
        return self.ends - self.starts

    def __getitem__(self, rows):
        """An int gives that row as a view; a slice, index array or boolean mask gives a Ragged."""
        if isinstance(rows, (int, np.integer)):
            return self.values[self.starts[rows] : self.ends[rows]]
        return Ragged(self.values, self.starts[rows], self.ends[rows])

    def __iter__(self):
        return (self.values[s:e] for s, e in zip(self.starts, self.ends))

    def without_last(self, count: int) -> "Ragged":
        """Every row minus its last ``count`` values (rows shorter than that become empty)."""
        return Ragged(self.values, self.starts, np.maximum(self.ends - count, self.starts))

    def last(self, back: int = 1) -> np.ndarray:
        """Each row's value ``back`` places from its end (every row must be long enough)."""
        return self.values[self.ends - back]

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(row of each value, index of each value in ``values``), row after row, in order."""
        lengths = self.lengths
        rows = np.repeat(np.arange(len(self), dtype=np.int64), lengths)
        first = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(self) else np.zeros(0, np.int64)
        index = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(first - self.starts, lengths)
        return rows, index

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """(row of each value, the value), all rows concatenated."""
        rows, index = self.positions()
        return rows, self.values[index]

    def padded_left(self, length: int) -> np.ndarray:
        """[rows, length] int64: each row's last ``length`` values right-aligned, 0 before them."""
        take = self.ends[:, None] - length + np.arange(length)[None, :]
        real = take >= self.starts[:, None]
        out = np.zeros(take.shape, dtype=np.int64)
        out[real] = self.values[take[real]]
        return out

    def compact(self) -> "Ragged":
        """The same rows laid end to end in a fresh array (drops values no row uses)."""
        _, index = self.positions()
        return Ragged.from_offsets(self.values[index], np.concatenate([[0], np.cumsum(self.lengths)]))


def as_ragged(rows) -> Ragged:
    return rows if isinstance(rows, Ragged) else Ragged.from_rows(rows)


def join_rows(parts: Sequence[Ragged]) -> Ragged:
    """Row i of the result is row i of every part, one after the other (all parts have as many rows)."""
    flats = [part.flat() for part in parts]
    rows = np.concatenate([r for r, _ in flats])
    values = np.concatenate([v for _, v in flats])
    order = np.argsort(rows, kind="stable")
    return Ragged.from_pairs(rows[order], values[order], len(parts[0]))


def distinct(keys: np.ndarray) -> np.ndarray:
    """The distinct values of ``keys``, sorted. A sort and a comparison: np.unique hashes large
    integer arrays instead, which at 32M (user, item) keys took 34 s against 0.6 s."""
    keys = np.sort(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys
