"""The k best items of each row for a dot-product model, without a [rows, items] score matrix.

Used by serving and by evaluation's full ranking. Scoring 1,000 rows against 87k items as one
matrix writes 350 MB that top-k then reads back, so memory bandwidth, not arithmetic, sets the
time. Here the catalogue is split in groups of ``GROUP`` consecutive items, and two passes find
the top k:
1. the items are scored one cache-sized block at a time, as [block items, rows] (on 2 cores
   that product runs about 15% faster than [rows, block items]), and only each group's best
   allowed score is kept ([items / GROUP, rows]);
2. the k groups with the highest maxima hold every one of the k best items (an item of any other
   group is beaten by those k maxima), so only their k * GROUP items are scored again, and the
   exact top-k runs over them.
The second pass computes the same dot products in another order, so two items whose scores
differ only in the last bit may be ordered as a full matrix product would not order them.
"""

from __future__ import annotations

import numpy as np
import torch

from movielens_pipeline.data.ragged import Ragged

GROUP = 32
# One block of scores stays within about this many bytes (in cache), whatever the row count.
BLOCK_BYTES = 8 * 2**20
# Up to this size the whole score matrix is formed and ranked directly: below it the second
# pass costs more than it saves (measured on 2 cores: a request of 256 rows breaks even at about
# 20k items, and is twice as fast block by block at 87k).
DIRECT_BYTES = 32 * 2**20
# Rows whose candidates are scored again at once.
CANDIDATE_ROWS = 128


def exclude_items_(scores: torch.Tensor, exclude: Ragged | None) -> torch.Tensor:
    """``scores`` [B, num_items + 1] with each row's ``exclude`` items and padding (column 0) set
    to -inf, in place."""
    if exclude is not None:
        rows, cols = (torch.as_tensor(part, device=scores.device) for part in exclude.flat())
        scores[rows, cols] = float("-inf")
    scores[:, 0] = float("-inf")
    return scores


def top_items_by_dot_product(
    queries: torch.Tensor, item_vectors: torch.Tensor, k: int, exclude: Ragged | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Values and item indices [rows, k] of the k highest ``queries @ item_vectors.T`` per row,
    best first; item 0 (padding) and each row's ``exclude`` items never appear. Where a row has
    fewer than k allowed items, the rest of it is -inf with item 0."""
    rows, num_columns = queries.shape[0], item_vectors.shape[0]
    if rows * num_columns * 4 <= DIRECT_BYTES:
        return top_k_of_scores(queries @ item_vectors.T, k, exclude)
    block = max(GROUP, BLOCK_BYTES // (4 * rows) // GROUP * GROUP)
    device, minus_inf = queries.device, float("-inf")
    excluded_rows, excluded_items = (np.zeros(0, dtype=np.int64),) * 2 if exclude is None else exclude.flat()
    excluded_rows = torch.as_tensor(excluded_rows, device=device)
    excluded_items = torch.as_tensor(excluded_items, device=device)

    maxima = torch.empty(-(-num_columns // GROUP), rows, dtype=queries.dtype, device=device)
    scores = torch.empty(block, rows, dtype=queries.dtype, device=device)
    in_block = _pairs_by_block(excluded_items, block, num_columns)
    for start in range(0, num_columns, block):
        stop = min(num_columns, start + block)
        torch.mm(item_vectors[start:stop], queries.T, out=scores[: stop - start])
        scores[stop - start :] = minus_inf
        pairs = in_block[start // block]
        scores[excluded_items[pairs] - start, excluded_rows[pairs]] = minus_inf
        if start == 0:
            scores[0] = minus_inf
        width = -(-(stop - start) // GROUP) * GROUP
        torch.amax(scores[:width].view(-1, GROUP, rows), dim=1, out=maxima[start // GROUP : (start + width) // GROUP])
    maxima = maxima.T.contiguous()

    best_groups = maxima.topk(min(k, maxima.shape[1]), dim=1).indices  # [rows, g]
    candidates = (best_groups[:, :, None] * GROUP + torch.arange(GROUP, device=device)).view(rows, -1)
    candidate_scores = dot_products(queries, item_vectors, candidates.clamp(max=num_columns - 1))
    candidate_scores[(candidates >= num_columns) | (candidates == 0)] = minus_inf
    # Where each row's excluded items sit among its candidates, if at all.
    slot = torch.full_like(maxima, -1, dtype=torch.long)
    slot.scatter_(1, best_groups, torch.arange(best_groups.shape[1], device=device).expand_as(best_groups))
    position = slot[excluded_rows, excluded_items // GROUP]
    hit = position >= 0
    candidate_scores[excluded_rows[hit], position[hit] * GROUP + excluded_items[hit] % GROUP] = minus_inf
    top = candidate_scores.topk(k, dim=1)
    items = candidates.gather(1, top.indices)
    items[top.values == minus_inf] = 0
    return top.values, items


def top_k_of_scores(
    scores: torch.Tensor, k: int, exclude: Ragged | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same answer from a full score matrix [rows, items] (overwritten)."""
    top = exclude_items_(scores, exclude).topk(k, dim=1)
    return top.values, top.indices.masked_fill(top.values == float("-inf"), 0)


def dot_products(queries: torch.Tensor, item_vectors: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """queries[r] . item_vectors[items[r, j]] for every [r, j], gathering the vectors a few rows at
    a time: one gather of every row's candidates is tens of MB, paid for in page faults."""
    return torch.cat([
        torch.bmm(item_vectors.index_select(0, chunk.flatten()).view(len(chunk), -1, item_vectors.shape[1]),
                  queries[start : start + len(chunk), :, None]).squeeze(-1)
        for start, chunk in zip(range(0, len(items), CANDIDATE_ROWS), items.split(CANDIDATE_ROWS))
    ])  # fmt: skip


def _pairs_by_block(items: torch.Tensor, block: int, num_columns: int) -> list[torch.Tensor]:
    """Positions of the excluded pairs whose item falls in each block of columns."""
    blocks = (items // block).cpu().numpy().astype(np.int32)
    order = np.argsort(blocks, kind="stable")
    bounds = np.searchsorted(blocks[order], np.arange(-(-num_columns // block) + 1))
    order = torch.as_tensor(order, device=items.device)
    return [order[low:high] for low, high in zip(bounds[:-1], bounds[1:])]
