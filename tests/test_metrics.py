"""Ranking metrics against plain reference implementations on small cases."""

import numpy as np
import pytest
import torch

from movielens_pipeline.data.ragged import Ragged
from movielens_pipeline.evaluation.metrics import (
    RANK_CAP,
    metrics_from_ranks,
    pessimistic_ranks,
    sample_unseen_items,
    full_ranking,
    rows_per_batch,
    user_sample,
)


def reference_rank(scores: list[float], target: int, excluded: set[int]) -> int:
    """Other items (index >= 1, not excluded) whose score is a number at least the target's;
    a NaN target ranks behind every item."""
    if np.isnan(scores[target]):
        return len(scores) - 1
    others = [i for i in range(1, len(scores)) if i != target and i not in excluded]
    return sum(1 for i in others if not np.isnan(scores[i]) and scores[i] >= scores[target])


@pytest.mark.parametrize("max_items", [12, 60])
def test_pessimistic_ranks_match_a_plain_count_with_ties_exclusions_and_nan(max_items):
    """Up to RANK_CAP the rank is exact; from there on it is stored as RANK_CAP."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        num_items = int(rng.integers(2, max_items))
        scores = rng.integers(0, 4 + num_items // 4, size=num_items + 1).astype(float)  # many ties
        scores[rng.random(num_items + 1) < 0.15] = np.nan
        target = int(rng.integers(1, num_items + 1))
        excluded = rng.integers(1, num_items + 1, size=5)
        expected = reference_rank(list(scores), target, set(excluded.tolist()) - {target})
        got, top = pessimistic_ranks(torch.tensor(scores[None]), torch.tensor([target]),
                                     Ragged.from_rows([excluded]), top_k=3)  # fmt: skip
        assert got.item() == min(expected, RANK_CAP), (scores, target, excluded)
        allowed = sum(1 for i in range(1, num_items + 1)
                      if not np.isnan(scores[i]) and (i == target or i not in excluded))  # fmt: skip
        best = top[0, : min(3, allowed)].tolist()  # past that only excluded or NaN items are left
        assert not set(best) & (set(excluded.tolist()) - {target}) and 0 not in best


def test_a_model_that_scores_nan_gets_no_hits():
    scores = torch.full((3, 6), float("nan"))
    ranks, _ = pessimistic_ranks(scores, torch.tensor([1, 2, 3]), None)
    assert (ranks.numpy() == 5).all()  # behind every one of the 5 items
    assert metrics_from_ranks(ranks.numpy(), ks=(5,))["hit_at_5"] == 0.0
    nan_scores = lambda users, histories: torch.full((len(users), 6), float("nan"))  # noqa: E731
    ranking = full_ranking(nan_scores, np.array([1]), [np.array([1])], np.array([2]), 5, negatives=np.array([[3, 4, 0]]))
    assert ranking.sampled_ranks.tolist() == [2]  # both real negatives tie with the target; padding never counts
    assert ranking.ranks.tolist() == [5]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampled_negatives_are_distinct_unseen_and_fewer_only_when_few_items_are_unseen(seed):
    rng = np.random.default_rng(seed)
    num_items, n = 60, 25
    sizes = [0, 5, 30, 40, 59, 60, 12, 35]
    forbidden = [rng.choice(np.arange(1, num_items + 1), size=k, replace=False) for k in sizes]
    negatives, counts = sample_unseen_items(forbidden, num_items, n=n, seed=seed)
    assert negatives.shape == (len(sizes), n)
    for row, count, seen, size in zip(negatives, counts, forbidden, sizes):
        drawn = row[row > 0]
        assert count == len(drawn) == min(n, num_items - size)
        assert len(set(drawn.tolist())) == len(drawn) and not set(drawn.tolist()) & set(seen.tolist())
        assert (row[len(drawn):] == 0).all()
    again, _ = sample_unseen_items(forbidden, num_items, n=n, seed=seed)
    np.testing.assert_array_equal(negatives, again)


def test_sampled_negatives_are_uniform_over_the_unseen_items():
    hits = np.zeros(31)
    for seed in range(400):
        negatives, _ = sample_unseen_items([np.arange(1, 11)], 30, n=5, seed=seed)
        hits[negatives[0]] += 1
    assert hits[:11].sum() == 0
    expected = 400 * 5 / 20
    assert np.abs(hits[11:] - expected).max() < 0.35 * expected  # 20 items, each drawn ~100 times


def test_batches_follow_the_memory_budget_and_give_the_same_ranks():
    assert rows_per_batch(84_000, memory_mb=512) < rows_per_batch(1_349, memory_mb=512) == 512
    assert rows_per_batch(84_000, memory_mb=512) * 84_001 * 13 <= 512 * 2**20
    rng = np.random.default_rng(0)
    table = torch.from_numpy(rng.random((40, 31))).float()
    score = lambda users, histories: table[users]  # noqa: E731
    histories = [rng.choice(np.arange(1, 31), 5, replace=False) for _ in range(40)]
    targets = rng.integers(1, 31, 40)
    negatives, _ = sample_unseen_items(histories, 30, n=10)
    one = full_ranking(score, np.arange(40), histories, targets, 30, batch_size=40, top_k=3, negatives=negatives)
    many = full_ranking(score, np.arange(40), histories, targets, 30, batch_size=7, top_k=3, negatives=negatives)
    for first, second in zip(one, many):
        np.testing.assert_array_equal(first, second)


def test_validation_uses_every_user_or_a_fixed_sample():
    assert user_sample(500, 1000).tolist() == list(range(500))
    sample = user_sample(100_000, 1000)
    assert len(sample) == 1000 == len(set(sample.tolist())) and (np.diff(sample) > 0).all()
    np.testing.assert_array_equal(sample, user_sample(100_000, 1000))


def test_the_bootstrap_in_chunks_matches_one_draw_when_it_fits(monkeypatch):
    from movielens_pipeline.evaluation import protocols

    rng = np.random.default_rng(0)
    first, second = rng.random(300), rng.random(300)
    whole = protocols.paired_bootstrap(first, second, samples=500)
    monkeypatch.setattr(protocols, "BOOTSTRAP_INDICES_AT_ONCE", 300 * 7)  # 7 resamples at a time
    chunked = protocols.paired_bootstrap(first, second, samples=500)
    assert chunked["mean_difference"] == whole["mean_difference"]
    assert abs(chunked["ci_low"] - whole["ci_low"]) < 0.02 and abs(chunked["ci_high"] - whole["ci_high"]) < 0.02


@pytest.mark.parametrize("integer_scores", [False, True])  # True: many exact ties, as popularity has
def test_a_dot_product_model_ranked_block_by_block_gives_what_its_score_matrix_gives(monkeypatch, integer_scores):
    from movielens_pipeline.evaluation import metrics, top_items

    rng = np.random.default_rng(3)
    num_items, users = 300, 50
    generator = torch.Generator().manual_seed(3)
    queries = torch.randn(users + 1, 8, generator=generator)
    vectors = torch.randn(num_items + 1, 8, generator=generator)
    if integer_scores:
        queries, vectors = torch.ones(users + 1, 1), torch.from_numpy(rng.integers(0, 100, (num_items + 1, 1))).float()
    scorer = metrics.DotProductScorer(lambda user_indices, histories: queries[user_indices], vectors)
    histories = [rng.choice(np.arange(1, num_items + 1), rng.integers(1, 40), replace=False) for _ in range(users)]
    # Each target is the user's r-th best unseen item, r from 0 to past the rank cap.
    order = (queries[1:] @ vectors.T)[:, 1:].argsort(dim=1, descending=True).numpy() + 1
    targets = np.array([[i for i in row if i not in h][r] for row, h, r in zip(order, histories, rng.integers(0, 30, users))])
    histories[0] = np.append(histories[0], targets[0])  # a target in its own history still ranks
    negatives, _ = sample_unseen_items(histories, num_items, n=20)
    splits = [metrics.RankingInputs(histories, targets, negatives),
              metrics.RankingInputs([h[:-1] for h in histories], rng.integers(1, num_items + 1, users), None)]
    user_indices = np.arange(1, users + 1)
    for exclude_seen in (True, False):
        matrix = metrics.full_rankings(lambda u, h: scorer(u, h), user_indices, splits, num_items,
                                       exclude_seen, batch_size=16, top_k=5)  # fmt: skip
        monkeypatch.setattr(metrics, "DIRECT_BYTES", 0)
        monkeypatch.setattr(top_items, "DIRECT_BYTES", 0)
        monkeypatch.setattr(top_items, "BLOCK_BYTES", 4 * 16 * 64)  # blocks of 64 items
        blocks = metrics.full_rankings(scorer, user_indices, splits, num_items, exclude_seen, batch_size=16, top_k=5)
        monkeypatch.undo()
        assert len(set(matrix[0].ranks.tolist())) > 3 and RANK_CAP in matrix[0].ranks  # ranks of many sizes
        for expected, got in zip(matrix, blocks):
            np.testing.assert_array_equal(got.ranks, expected.ranks)
            if expected.sampled_ranks is not None:
                np.testing.assert_array_equal(got.sampled_ranks, expected.sampled_ranks)
            if not integer_scores:  # tied items may be listed in another order
                np.testing.assert_array_equal(got.top_items, expected.top_items)
            else:
                top_scores = lambda ranking: np.sort(vectors[ranking.top_items, 0].numpy(), axis=1)  # noqa: E731
                np.testing.assert_array_equal(top_scores(got), top_scores(expected))
