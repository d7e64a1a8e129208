"""Block-wise top-k of dot-product scores equals a plain top-k of the full score matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from movielens_pipeline.data.ragged import Ragged
from movielens_pipeline.evaluation import top_items
from movielens_pipeline.evaluation.top_items import top_items_by_dot_product


def reference_top_k(queries, item_vectors, k, exclude):
    scores = queries @ item_vectors.T
    rows, items = exclude.flat()
    scores[torch.as_tensor(rows), torch.as_tensor(items)] = float("-inf")
    scores[:, 0] = float("-inf")
    return scores.topk(min(k, scores.shape[1]), dim=1)


# Two passes over one block, over blocks of 64 items (7 rows), and the direct full matrix.
@pytest.mark.parametrize("block_bytes, direct_bytes", [(4 * 2**20, 0), (4 * 64 * 7, 0), (4 * 2**20, 2**30)])
@pytest.mark.parametrize("rows, num_items, k", [(7, 1000, 10), (3, 5000, 100), (20, 150, 1)])
def test_block_top_k_equals_the_full_matrix_top_k(monkeypatch, block_bytes, direct_bytes, rows, num_items, k):
    monkeypatch.setattr(top_items, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(top_items, "DIRECT_BYTES", direct_bytes)
    generator = torch.Generator().manual_seed(rows)
    queries = torch.randn(rows, 16, generator=generator)
    item_vectors = torch.randn(num_items + 1, 16, generator=generator)
    rng = np.random.default_rng(0)
    exclude = Ragged.from_rows([rng.choice(np.arange(1, num_items + 1), size=rng.integers(0, 50), replace=False)
                                for _ in range(rows)])  # fmt: skip
    values, items = top_items_by_dot_product(queries, item_vectors, k, exclude)
    expected = reference_top_k(queries, item_vectors, k, exclude)
    torch.testing.assert_close(values, expected.values)  # the same dot products, summed in another order
    assert torch.equal(items, expected.indices)


def test_rows_with_fewer_allowed_items_than_k_end_in_minus_infinity_and_padding(monkeypatch):
    monkeypatch.setattr(top_items, "BLOCK_BYTES", 4 * 64 * 2)
    monkeypatch.setattr(top_items, "DIRECT_BYTES", 0)
    queries, item_vectors = torch.randn(2, 8), torch.randn(101, 8)
    exclude = Ragged.from_rows([np.arange(1, 96), np.arange(0)])  # row 0 may only get items 96..100
    values, items = top_items_by_dot_product(queries, item_vectors, 10, exclude)
    assert sorted(items[0, :5].tolist()) == [96, 97, 98, 99, 100]
    assert torch.isinf(values[0, 5:]).all() and (items[0, 5:] == 0).all()
    assert torch.isfinite(values[1]).all() and 0 not in items[1].tolist()


def test_no_rows_gives_empty_answers(monkeypatch):
    monkeypatch.setattr(top_items, "BLOCK_BYTES", 4 * 64)
    monkeypatch.setattr(top_items, "DIRECT_BYTES", 0)
    values, items = top_items_by_dot_product(torch.zeros(0, 8), torch.randn(500, 8), 5)
    assert values.shape == items.shape == (0, 5)
