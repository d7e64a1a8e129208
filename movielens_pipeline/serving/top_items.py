"""The k best items of each row for a dot-product model, without a [rows, items] score matrix.

Scoring a 1,000-row request against 87k items as one matrix writes 350 MB that top-k then reads
back, and the machine's memory bandwidth, not its arithmetic, sets the latency. Here the items
are scored one cache-sized block at a time, and each block is reduced to its k best at once:
the block's items are split in groups of ``GROUP``, and only the k groups with the highest maxima
can hold the block's k best items (any other item is beaten by the maxima of those k groups), so
the exact top-k runs over k * GROUP candidates instead of the whole block.
"""

from __future__ import annotations

import numpy as np
import torch

from movielens_pipeline.data.ragged import Ragged

GROUP = 32
# Scores of one block of items for every row stay within about this many bytes (L2/L3 sized).
BLOCK_BYTES = 4 * 2**20


def top_items_by_dot_product(
    queries: torch.Tensor, item_vectors: torch.Tensor, k: int, exclude: Ragged | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Values and item indices [rows, k] of the k highest ``queries @ item_vectors.T`` per row,
    best first; item 0 (padding) and each row's ``exclude`` items never appear. Where a row has
    fewer than k allowed items, the rest of it is -inf with item 0."""
    rows, num_columns = queries.shape[0], item_vectors.shape[0]
    block = max(GROUP, BLOCK_BYTES // (4 * max(rows, 1)) // GROUP * GROUP)
    excluded_rows, excluded_items = _by_item(exclude)
    scores = torch.empty(rows, block, dtype=queries.dtype, device=queries.device)
    best_values = torch.full((rows, k), float("-inf"), dtype=queries.dtype, device=queries.device)
    best_items = torch.zeros((rows, k), dtype=torch.long, device=queries.device)
    for start in range(0, num_columns, block):
        stop = min(num_columns, start + block)
        torch.mm(queries, item_vectors[start:stop].T, out=scores[:, : stop - start])
        scores[:, stop - start :] = float("-inf")
        low, high = np.searchsorted(excluded_items, [start, stop])
        scores[torch.as_tensor(excluded_rows[low:high], device=scores.device),
               torch.as_tensor(excluded_items[low:high] - start, device=scores.device)] = float("-inf")  # fmt: skip
        if start == 0:
            scores[:, 0] = float("-inf")
        values, positions = _block_top_k(scores, k)
        merged_values = torch.cat([best_values, values], dim=1)
        merged_items = torch.cat([best_items, positions + start], dim=1)
        top = merged_values.topk(k, dim=1)
        best_values, best_items = top.values, merged_items.gather(1, top.indices)
    best_items[best_values == float("-inf")] = 0
    return best_values, best_items


def _by_item(exclude: Ragged | None) -> tuple[np.ndarray, np.ndarray]:
    """The (row, item) pairs of ``exclude`` sorted by item, so each block finds its own by bisection."""
    if exclude is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rows, items = exclude.flat()
    order = np.argsort(items, kind="stable")
    return rows[order], items[order]


def _block_top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Values and positions [rows, k] of each row's k best in a block whose width is a multiple of GROUP."""
    rows, width = scores.shape
    if k * GROUP >= width:
        top = scores.topk(min(k, width), dim=1)
        return top.values, top.indices
    groups = scores.view(rows, width // GROUP, GROUP)
    best_groups = groups.amax(dim=-1).topk(k, dim=1).indices  # [rows, k]
    members = (best_groups[:, :, None] * GROUP + torch.arange(GROUP, device=scores.device)).view(rows, -1)
    top = scores.gather(1, members).topk(k, dim=1)
    return top.values, members.gather(1, top.indices)
