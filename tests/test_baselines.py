"""Popularity, EASE and BPR-MF: their definitions, and that the learned ones find a planted structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

# the planted data is shared with the LRML tests
from test_lrml import ndcg_on_test_split, planted_dataset

from movielens_pipeline.evaluation.baselines import (
    EASE_BYTES_PER_ITEM_PAIR,
    ease_item_budget,
    ease_score_fn,
    fit_ease,
    popularity_score_fn,
)
from movielens_pipeline.evaluation.metrics import seen_mask
from movielens_pipeline.evaluation.scorers import user_score_fn
from movielens_pipeline.families import trained_module
from movielens_pipeline.training.pairwise import (
    BPRHyperparameters,
    BPRTrainConfig,
    train_bpr,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_popularity_scores_are_training_counts():
    dataset = planted_dataset(users_per_cluster=3)
    scores = popularity_score_fn(dataset)(torch.tensor([1, 2]), [np.array([1]), np.array([2])])
    counts = np.zeros(dataset.num_items + 1)
    for sequence in dataset.full_sequences():
        np.add.at(counts, sequence[:-2], 1)  # validation and test items do not count
    assert scores.shape == (2, dataset.num_items + 1)
    assert np.array_equal(scores[0].numpy(), counts) and np.array_equal(scores[1].numpy(), counts)


def test_ease_solves_its_constrained_least_squares():
    """B minimises ||X - X B||^2 + l2 ||B||^2 subject to diag(B) = 0: the gradient of the
    objective, (X^T X + l2 I) B - X^T X, may be non-zero only on the diagonal (the constraint)."""
    dataset = planted_dataset(users_per_cluster=3, items_per_cluster=5, sequence_length=6)
    l2 = 7.0
    model = fit_ease(dataset, l2=l2)
    assert model.items.tolist() == list(range(1, dataset.num_items + 1))  # every item fits the budget
    b = model.weights.double()
    x = seen_mask(dataset.train_sequences(), dataset.num_items).double()[:, 1:]  # column 0 is padding
    gram = x.T @ x
    gradient = (gram + l2 * torch.eye(len(gram), dtype=torch.float64)) @ b - gram
    off_diagonal = gradient - torch.diag(gradient.diagonal())
    assert torch.allclose(off_diagonal, torch.zeros_like(off_diagonal), atol=1e-4)
    assert torch.all(b.diagonal() == 0)


def test_ease_scores_from_the_given_history():
    dataset = planted_dataset(users_per_cluster=3)
    model = fit_ease(dataset, l2=10.0)
    history = np.array([3, 5])
    scores = ease_score_fn(model)(torch.tensor([1]), [history])
    assert scores[0, 0] == float("-inf")
    assert torch.allclose(scores[0, 1:], model.weights[2] + model.weights[4])  # rows of items 3 and 5


def test_ease_keeps_to_its_memory_budget_and_says_which_items_it_covers():
    dataset = planted_dataset()
    full = fit_ease(dataset, l2=10.0)
    budget_mb = 40 * 40 * EASE_BYTES_PER_ITEM_PAIR / 2**20  # room for 40 items
    small = fit_ease(dataset, l2=10.0, memory_mb=budget_mb)
    assert len(small.items) == ease_item_budget(budget_mb) == 40 < dataset.num_items
    popularity = dataset.item_popularity()
    assert popularity[small.items.numpy()].min() >= np.sort(popularity[1:])[-40]  # the most popular ones
    scores = ease_score_fn(small)(torch.tensor([1]), [dataset.train_sequences()[0]])
    covered = torch.zeros(dataset.num_items + 1, dtype=torch.bool)
    covered[small.items] = True
    assert torch.isinf(scores[0, ~covered]).all() and torch.isfinite(scores[0, covered]).all()
    assert "40 most popular" in small.note() and "all" in full.note()


def test_ease_beats_popularity_on_planted_clusters():
    dataset = planted_dataset()
    ease_ndcg = ndcg_on_test_split(ease_score_fn(fit_ease(dataset, l2=10.0)), dataset)
    popularity_ndcg = ndcg_on_test_split(popularity_score_fn(dataset), dataset)
    assert ease_ndcg > popularity_ndcg + 0.2, (ease_ndcg, popularity_ndcg)


def test_bpr_beats_popularity_on_planted_clusters():
    dataset = planted_dataset()
    trained = train_bpr(dataset, BPRHyperparameters(dim=16), BPRTrainConfig(epochs=15, batch_size=256, seed=0))
    bpr_ndcg = ndcg_on_test_split(user_score_fn(trained_module(trained)), dataset)
    popularity_ndcg = ndcg_on_test_split(popularity_score_fn(dataset), dataset)
    assert trained.kind == "bpr_mf"
    assert bpr_ndcg > popularity_ndcg + 0.2, (bpr_ndcg, popularity_ndcg)


@pytest.mark.parametrize("covered", [40, 10])  # 10: fewer items than the rank cap
def test_ease_ranked_over_its_covered_items_alone_ranks_as_over_every_item(covered):
    from movielens_pipeline.evaluation import protocols

    dataset = planted_dataset()
    small = ease_score_fn(fit_ease(dataset, l2=10.0, memory_mb=covered**2 * EASE_BYTES_PER_ITEM_PAIR / 2**20))
    assert len(small.items) == covered
    whole_width = lambda users, histories: small(users, histories)  # noqa: E731  (a plain ScoreFn)
    covered_only = protocols.evaluate_models({"ease": small}, dataset)
    every_item = protocols.evaluate_models({"ease": whole_width}, dataset)
    uncovered_targets = 0
    for got, expected in zip(covered_only, every_item):
        for protocol in ("full", "sampled"):
            np.testing.assert_array_equal(got.ranks[protocol], expected.ranks[protocol])
        if covered > 10:  # else the top 10 are padded with unscored items, whichever each path picks
            assert got.coverage_at_10 == expected.coverage_at_10
        uncovered_targets += int((~np.isin(protocols.split_inputs(dataset, got.split).targets, small.items)).sum())
    assert uncovered_targets > 0  # both kinds of target are ranked
