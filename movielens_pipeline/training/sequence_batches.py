"""Batches for S3Rec: training rows cut into windows, and the per-batch draws of masks, negatives
and segments, all from one torch.Generator with tensor operations (no per-row Python work
beyond building the padded rows once).

Pretraining never sees a validation or test item: its rows come from the training parts, its
negative items are drawn from the items of those training parts, and SP's foreign segments
are cut from other training rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence, get_args

import numpy as np
import torch

from movielens_pipeline.data.dataset import SequenceDataset, pad_left
from movielens_pipeline.data.ragged import Ragged, as_ragged

# Rounds of redrawing negatives that hit the row's own items; a row that has seen nearly every
# candidate may keep a clash after the last round, which only weakens that one negative.
NEGATIVE_REDRAW_ROUNDS = 10


def history_windows(sequences: Ragged | Sequence[np.ndarray], length: int) -> Ragged:
    """Every sequence cut from its end into windows of ``length`` items that overlap by one.

    The overlap makes each item the next-item target of exactly one window in finetuning, and
    windows of a single item (nothing to predict) are dropped. A sequence of up to ``length``
    items stays one window. Windows are views of the sequences' items, latest window first.
    """
    sequences = as_ragged(sequences)
    lengths = sequences.lengths
    step = length - 1
    # A sequence of n >= 2 items has windows ending at n, n - step, ... down to the first end <= length.
    counts = np.where(lengths >= 2, 1 + np.maximum(0, -(-(lengths - length) // step)), 0)
    owner = np.repeat(np.arange(len(sequences)), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    back = np.arange(int(counts.sum())) - np.repeat(first, counts)
    ends = sequences.ends[owner] - back * step
    return Ragged(sequences.values, np.maximum(ends - length, sequences.starts[owner]), ends)


def trailing_prefixes(sequences: Ragged, length: int) -> Ragged:
    """Every prefix of each sequence's last ``length`` items: [a], [a, b], ..., [a, ..., z]
    (the S3Rec authors' pretraining instances). Views of the sequences' items."""
    first = np.maximum(sequences.ends - length, sequences.starts)
    counts = sequences.ends - first
    starts = np.repeat(first, counts)
    return Ragged(sequences.values, starts, starts + 1 + np.arange(int(counts.sum())) - np.repeat(
        np.cumsum(counts) - counts, counts))


# How a training part becomes an epoch's rows (``rows`` of the S3Rec training configs).
RowKind = Literal["windows", "last", "prefixes"]


def training_rows(dataset: SequenceDataset, length: int, kind: RowKind) -> Ragged:
    """The rows an epoch passes over, from each user's training part:
    - ``windows``: every ``length``-item window (``history_windows``);
    - ``last``: the whole part, of which a padded row keeps the most recent ``length`` items;
    - ``prefixes``: every prefix of its last ``length`` items (``trailing_prefixes``)."""
    rows = dataset.train_sequences()
    if kind == "windows":
        return history_windows(rows, length)
    if kind == "prefixes":
        return trailing_prefixes(rows, length)
    if kind == "last":
        return rows
    raise ValueError(f"rows must be one of {get_args(RowKind)}, got {kind!r}")


def uniform_below(upper: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One integer uniform in [0, upper) per element of ``upper`` (int64, every value >= 1)."""
    return (torch.rand(upper.shape, generator=generator) * upper).long().clamp(max=upper - 1)


def sample_negatives(
    candidates: torch.Tensor, rows: torch.Tensor, num_items: int, shape: tuple, generator: torch.Generator
) -> torch.Tensor:
    """Items from ``candidates`` [C], shaped like ``shape`` = (B, ...), avoiding each row's items.

    ``rows`` [B, L] are the batch's item rows; redraws only the clashing draws, round by round.
    """
    seen = torch.zeros(rows.size(0), num_items + 2, dtype=torch.bool)
    seen.scatter_(1, rows, True)
    negatives = candidates[torch.randint(len(candidates), shape, generator=generator)]
    for _ in range(NEGATIVE_REDRAW_ROUNDS):
        clash = seen.gather(1, negatives.view(len(negatives), -1)).view(shape)
        if not clash.any():
            break
        negatives[clash] = candidates[torch.randint(len(candidates), (int(clash.sum()),), generator=generator)]
    return negatives


@dataclass
class PretrainBatch:
    items: torch.Tensor  # [B, L] the original rows
    masked_items: torch.Tensor  # [B, L] rows with masked positions replaced by [MASK]
    masked: torch.Tensor  # [B, L] bool
    negatives: torch.Tensor  # [B, L] MIP negative per position (read at masked positions only)
    segment_context: torch.Tensor  # [S, L] SP inputs for the S rows with >= 2 items (S = 0 when off)
    segment_positive: torch.Tensor
    segment_negative: torch.Tensor
    segment_rows: torch.Tensor  # [S] the batch row each segment belongs to

    def to(self, device) -> "PretrainBatch":
        return PretrainBatch(**{name: value.to(device) for name, value in vars(self).items()})

    def rows(self, part: torch.Tensor) -> "PretrainBatch":
        """The rows at positions ``part`` (ascending) with their segments."""
        keep = torch.isin(self.segment_rows, part)
        return PretrainBatch(
            items=self.items[part], masked_items=self.masked_items[part], masked=self.masked[part],
            negatives=self.negatives[part], segment_context=self.segment_context[keep],
            segment_positive=self.segment_positive[keep], segment_negative=self.segment_negative[keep],
            segment_rows=self.segment_rows[keep],
        )  # fmt: skip


class PretrainingSampler:
    """Builds pretraining batches from training rows, all randomness from ``generator``."""

    def __init__(self, rows: Ragged, num_items: int, max_len: int, mask_prob: float,
                 generator: torch.Generator):  # fmt: skip
        # Rows are padded batch by batch: all of them padded at once would hold max_len values
        # per row (prefix rows are many, and mostly short).
        self.rows, self.max_len = rows, max_len
        self.lengths = torch.from_numpy(np.minimum(rows.lengths, max_len))
        self.num_items, self.mask_id = num_items, num_items + 1
        self.mask_prob = mask_prob
        self.generator = generator
        seen_items = np.unique(rows.flat()[1])
        self.candidates = torch.from_numpy(seen_items) if len(seen_items) else torch.ones(1, dtype=torch.long)
        # Rows sorted by length: the donors long enough for a segment form a suffix.
        self.donor_order = torch.argsort(self.lengths, stable=True)
        self.sorted_lengths = self.lengths[self.donor_order]
        self.donor_rank = torch.empty_like(self.donor_order)
        self.donor_rank[self.donor_order] = torch.arange(len(self.donor_order))

    def batch(self, row_ids: torch.Tensor, with_segments: bool = True) -> PretrainBatch:
        """``row_ids`` are positions in ``rows`` (0-based); SP inputs only when asked."""
        items = self._padded(row_ids)
        real = items != 0
        masked = (torch.rand(items.shape, generator=self.generator) < self.mask_prob) & real
        masked[:, -1] = real[:, -1]  # the reference always masks the most recent item
        negatives = sample_negatives(self.candidates, items, self.num_items, items.shape, self.generator)
        if with_segments:
            context, positive, negative, segment_rows = self._segments(row_ids, items)
        else:
            context = positive = negative = items[:0]
            segment_rows = torch.zeros(0, dtype=torch.long)
        return PretrainBatch(
            items=items,
            masked_items=items.masked_fill(masked, self.mask_id),
            masked=masked,
            negatives=negatives,
            segment_context=context,
            segment_positive=positive,
            segment_negative=negative,
            segment_rows=segment_rows,
        )

    def _padded(self, row_ids: torch.Tensor) -> torch.Tensor:
        return pad_left(self.rows[row_ids.numpy()], self.max_len)

    def _segments(self, row_ids: torch.Tensor, items: torch.Tensor):
        """SP inputs for rows of >= 2 items: segment length uniform in [1, len // 2], start uniform."""
        lengths = self.lengths[row_ids]
        keep = lengths >= 2
        row_ids, items, lengths = row_ids[keep], items[keep], lengths[keep]
        segment_rows = keep.nonzero().squeeze(1)
        max_len = items.size(1)
        segment_length = 1 + uniform_below(lengths // 2, self.generator)
        start = max_len - lengths + uniform_below(lengths - segment_length + 1, self.generator)
        positions = torch.arange(max_len)
        in_segment = (positions >= start[:, None]) & (positions < (start + segment_length)[:, None])
        context = items.masked_fill(in_segment, self.mask_id)
        positive = items.masked_fill((items != 0) & ~in_segment, self.mask_id)

        # Donor: another row holding at least segment_length items (possibly another window of
        # the same user); only when no other row is long enough does the row donate to itself.
        first_eligible = torch.searchsorted(self.sorted_lengths, segment_length)
        others = len(self.sorted_lengths) - first_eligible - 1
        rank = first_eligible + uniform_below(others.clamp(min=1), self.generator)
        own_rank = self.donor_rank[row_ids]
        rank = torch.where(others > 0, rank + (rank >= own_rank).long(), own_rank)
        donors = self.donor_order[rank]
        donor_lengths = self.lengths[donors]
        donor_start = max_len - donor_lengths + uniform_below(donor_lengths - segment_length + 1, self.generator)
        source = (donor_start[:, None] + positions - start[:, None]).clamp(0, max_len - 1)
        foreign = self._padded(donors).gather(1, source)
        negative = torch.where(in_segment, foreign, positive)
        return context, positive, negative, segment_rows


class FinetuningSampler:
    """Input rows (items[:-1]) and next-item targets (items[1:]) of training rows."""

    def __init__(self, rows: Ragged, num_items: int, max_len: int, generator: torch.Generator):
        windows = pad_left(rows, max_len + 1)
        self.inputs, self.targets = windows[:, :-1], windows[:, 1:]
        self.num_items = num_items
        self.candidates = torch.arange(1, num_items + 1)
        self.generator = generator

    def batch(self, row_ids: torch.Tensor, with_negatives: bool):
        inputs, targets = self.inputs[row_ids], self.targets[row_ids]
        negatives = None
        if with_negatives:
            negatives = sample_negatives(
                self.candidates, torch.cat([inputs, targets], 1), self.num_items, inputs.shape, self.generator
            )
        return inputs, targets, negatives
