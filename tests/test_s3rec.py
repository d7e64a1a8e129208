"""S3-Rec: shapes, attention masks, no leakage of valid/test items into pretraining, determinism,
checkpoint resume and learning a planted sequential structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_lrml import ndcg_on_test_split

from models.s3rec import S3Rec, S3RecConfig, dropout
from movielens_pipeline.data.dataset import SequenceDataset, pad_left
from movielens_pipeline.evaluation.baselines import popularity_score_fn
from movielens_pipeline.evaluation.scorers import s3rec_score_fn
from movielens_pipeline.training.checkpoints import CheckpointStore
from movielens_pipeline.training.s3rec import (
    FinetuneConfig,
    NegativeProposal,
    PretrainConfig,
    finetune,
    pretrain,
    pretraining_losses,
)
from movielens_pipeline.training.sequence_batches import (
    PretrainingSampler,
    history_windows,
)

SMALL = dict(hidden_size=16, num_layers=1, num_heads=2, max_len=12)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_dataset(sequences: list[list[int]], num_items: int, genres: dict[int, list[str]]) -> SequenceDataset:
    values = sorted({g for item_genres in genres.values() for g in item_genres})
    attr_idx = {value: i + 1 for i, value in enumerate(values)}
    return SequenceDataset.from_sequences(
        sequences,
        num_items,
        attribute_vocab=pd.DataFrame(
            {"attr_idx": np.arange(1, len(values) + 1), "attribute_type": "genre", "value": values}
        ),
        item_attributes=pd.DataFrame(
            [(item, attr_idx[g]) for item, item_genres in genres.items() for g in item_genres],
            columns=["item_idx", "attr_idx"],
        ),
    )


def chain_dataset(num_items=60, num_users=150, length=16, noise=0.1, seed=0) -> SequenceDataset:
    """Users walk one hidden cycle through all items (the next item is fixed by the current one),
    with a random jump now and then; a genre per item follows the item's place on the cycle."""
    rng = np.random.default_rng(seed)
    cycle = rng.permutation(np.arange(1, num_items + 1))
    successor = dict(zip(cycle.tolist(), np.roll(cycle, -1).tolist()))
    sequences = []
    for _ in range(num_users):
        item = int(rng.integers(1, num_items + 1))
        sequence = [item]
        while len(sequence) < length:
            item = int(rng.integers(1, num_items + 1)) if rng.random() < noise else successor[item]
            sequence.append(item)
        sequences.append(sequence)
    place = {int(item): i for i, item in enumerate(cycle)}
    genres = {item: [f"g{place[item] % 6}"] for item in range(1, num_items + 1)}
    return make_dataset(sequences, num_items, genres)


def cluster_walk_dataset(clusters=10, per_cluster=60, users=200, length=10, seed=0) -> SequenceDataset:
    """Users step through clusters of items in a fixed cycle (cluster c, then c + 1, ...), picking
    any item of the cluster at random; each item's one attribute is its cluster. Items are many
    and seen about three times each, so which cluster an item belongs to is hard to learn from the
    sequences alone, and the attribute says it outright."""
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(users):
        first = int(rng.integers(clusters))
        steps = (first + np.arange(length)) % clusters
        sequences.append((steps * per_cluster + 1 + rng.integers(per_cluster, size=length)).tolist())
    genres = {item: [f"c{(item - 1) // per_cluster}"] for item in range(1, clusters * per_cluster + 1)}
    return make_dataset(sequences, clusters * per_cluster, genres)


def leak_dataset(num_users=40, train_items=30, seed=0) -> tuple[SequenceDataset, set[int]]:
    """Training parts use items 1..train_items; every valid and test item is unique to one user."""
    rng = np.random.default_rng(seed)
    held_out = iter(range(train_items + 1, train_items + 1 + 2 * num_users))
    sequences = [
        rng.choice(np.arange(1, train_items + 1), size=int(rng.integers(2, 15)), replace=False).tolist()
        + [next(held_out), next(held_out)]
        for _ in range(num_users)
    ]
    num_items = train_items + 2 * num_users
    genres = {item: [f"g{item % 4}"] for item in range(1, num_items + 1)}
    return make_dataset(sequences, num_items, genres), set(range(train_items + 1, num_items + 1))


def model_config(dataset: SequenceDataset, **overrides) -> S3RecConfig:
    return S3RecConfig(dataset.num_items, dataset.num_attributes, **(SMALL | overrides))


def test_shapes_and_losses_are_finite():
    config = S3RecConfig(num_items=30, num_attributes=5, **SMALL)
    model = S3Rec(config)
    items = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]])
    assert model.encode(items, causal=False).shape == (2, 12, 16)
    scores = model.score_items(items)
    assert scores.shape == (2, 31)  # padding column kept, [MASK] column dropped
    for loss in ("ce", "bce"):
        value = model.next_item_loss(items[:, :-1], items[:, 1:], loss, negatives=torch.full((2, 11), 20))
        assert torch.isfinite(value) and value > 0
    hidden = model.encode(items, causal=False)[items != 0]
    attribute_ids = torch.arange(1, 6)
    targets = torch.zeros(len(hidden), 5)
    assert torch.isfinite(model.associated_attribute_loss(hidden, targets, attribute_ids))
    assert torch.isfinite(model.masked_attribute_loss(hidden, targets, attribute_ids))
    assert torch.isfinite(model.masked_item_loss(hidden, items[items != 0], torch.full((len(hidden),), 25)))
    assert torch.isfinite(model.segment_loss(items, items, items))


def test_causal_encoder_hides_later_items_and_bidirectional_does_not():
    model = S3Rec(S3RecConfig(num_items=30, num_attributes=5, **SMALL)).eval()
    items = torch.tensor([[0, 0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11]])
    changed = items.clone()
    changed[0, -1] = 20  # a later item changes
    with torch.no_grad():
        causal, causal_changed = model.encode(items, True), model.encode(changed, True)
        both, both_changed = model.encode(items, False), model.encode(changed, False)
    real_earlier = slice(3, 11)
    assert torch.allclose(causal[0, real_earlier], causal_changed[0, real_earlier])
    assert not torch.allclose(both[0, real_earlier], both_changed[0, real_earlier])
    assert torch.isfinite(causal).all()  # padding queries attend to themselves, no NaN rows


def test_scoring_the_last_position_of_the_shortest_padding_equals_the_full_encoder():
    model = S3Rec(S3RecConfig(num_items=30, num_attributes=5, **SMALL)).eval()  # max_len 12
    histories = [np.array([3, 4, 5]), np.array([7, 8, 9, 10, 11]), np.array([2])]
    with torch.no_grad():
        full = model.encode(pad_left(histories, 12), causal=True)[:, -1] @ model.item_embedding.weight[:31].T
        scored = s3rec_score_fn(model)(torch.arange(3), histories)  # padded to 5, last position only
    torch.testing.assert_close(scored, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_zeroes_a_share_p_and_keeps_the_expected_value(p):
    torch.manual_seed(0)
    x = torch.rand(400, 2_501) + 0.5  # 1M elements, none zero
    dropped = dropout(x, p, training=True)
    zeroed = dropped == 0
    assert abs(zeroed.float().mean().item() - p) < 0.003
    torch.testing.assert_close(dropped[~zeroed], x[~zeroed] / (1 - p), rtol=1e-3, atol=0.0)  # p is kept to 1/65536
    assert abs(dropped.mean().item() / x.mean().item() - 1) < 0.005
    assert dropout(x, p, training=False) is x
    torch.manual_seed(1)
    first = dropout(x, p, training=True)
    torch.manual_seed(1)
    assert torch.equal(first, dropout(x, p, training=True))  # the global seed decides the mask


def test_dropout_outside_zero_to_one_is_refused():
    for value in (-0.1, 1.0):
        with pytest.raises(ValueError, match="hidden_dropout"):
            S3RecConfig(num_items=30, num_attributes=5, **(SMALL | {"hidden_dropout": value}))


def test_pretraining_lowers_its_own_losses_on_a_fixed_draw():
    """The probe that compares pretrainings (ours, the authors') measures what pretraining trains."""
    dataset = cluster_walk_dataset(users=80)
    config = model_config(dataset)
    cfg = PretrainConfig(epochs=15, batch_size=32, sp_weight=0.5, rows="prefixes")
    untrained = S3Rec(config)
    before = pretraining_losses(untrained, dataset, cfg)
    assert pretraining_losses(untrained, dataset, cfg) == before  # one fixed draw, dropout off
    trained = S3Rec(config)
    trained.load_state_dict(pretrain(dataset, config, cfg).state_dict)
    after = pretraining_losses(trained, dataset, cfg)
    assert set(after) == {"aap_loss", "mip_loss", "map_loss", "sp_loss", "loss"}
    for name in ("aap_loss", "map_loss", "loss"):
        assert after[name] < 0.8 * before[name], (name, before, after)
    assert after["mip_loss"] < before["mip_loss"], (before, after)


def test_pad_left_keeps_the_most_recent_items_right_aligned():
    rows = pad_left([np.array([1, 2, 3, 4, 5]), np.array([7]), np.array([], dtype=np.int64)], 3)
    assert rows.tolist() == [[3, 4, 5], [0, 0, 7], [0, 0, 0]]


@pytest.mark.parametrize("length", [2, 3, 5, 8, 20])
def test_history_windows_make_every_item_a_next_item_target_exactly_once(length):
    sequences = [np.arange(100 * k, 100 * k + n) for k, n in enumerate((0, 1, 2, 7, 8, 19), start=1)]
    windows = history_windows(sequences, length)
    assert all(2 <= len(w) <= length for w in windows)
    assert all((np.diff(w) == 1).all() for w in windows)  # contiguous stretches, order kept
    targets = np.concatenate([w[1:] for w in windows])
    expected = np.concatenate([s[1:] for s in sequences])
    assert sorted(targets.tolist()) == sorted(expected.tolist())
    assert len(set(targets.tolist())) == len(targets)


def test_pretraining_batches_never_contain_valid_or_test_items():
    dataset, held_out = leak_dataset()
    generator = torch.Generator().manual_seed(0)
    sampler = PretrainingSampler(dataset.train_sequences(), dataset.num_items, 12, 0.5, generator)
    held = torch.tensor(sorted(held_out))
    mask_id = dataset.num_items + 1
    for _ in range(20):
        batch = sampler.batch(torch.randperm(dataset.num_users, generator=generator)[:16])
        for name, tensor in vars(batch).items():
            if tensor.dtype == torch.long:
                assert not torch.isin(tensor, held).any(), name
        # MIP negatives avoid the row's own items
        assert not (batch.negatives[:, :, None] == batch.items[:, None, :]).any(-1)[batch.masked].any()
        # SP: one segment per row, masked out of the context, replaced by real items in the negative
        in_segment = (batch.segment_positive != mask_id) & (batch.segment_positive != 0)
        assert in_segment.any(1).all()
        assert (batch.segment_context[in_segment] == mask_id).all()
        assert ((batch.segment_negative[in_segment] != 0) & (batch.segment_negative[in_segment] != mask_id)).all()
        assert torch.equal(batch.segment_negative[~in_segment], batch.segment_positive[~in_segment])


def test_pretraining_never_looks_up_valid_or_test_items():
    """Every item id the item embedding table is asked for during pretraining is a training item."""
    dataset, held_out = leak_dataset()
    looked_up: list[torch.Tensor] = []
    table_size = dataset.num_items + 2

    def record(module, args):
        if isinstance(module, torch.nn.Embedding) and module.num_embeddings == table_size:
            looked_up.append(args[0].detach().flatten())

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        trained = pretrain(dataset, model_config(dataset), PretrainConfig(epochs=2, batch_size=16, sp_weight=0.5))
    finally:
        handle.remove()
    assert {"aap_loss", "mip_loss", "map_loss", "sp_loss"} <= set(trained.history[-1])
    seen = set(torch.cat(looked_up).tolist())
    assert seen and not seen & held_out
    assert dataset.num_items + 1 in seen  # the [MASK] token was used


def test_same_seed_gives_identical_runs():
    dataset = chain_dataset(num_users=60)
    config = model_config(dataset)
    pre_cfg = PretrainConfig(epochs=2, batch_size=16, sp_weight=0.5)
    ft_cfg = FinetuneConfig(epochs=2, batch_size=16, loss="bce")
    pretrained = [pretrain(dataset, config, pre_cfg) for _ in range(2)]
    first, second = (finetune(dataset, config, ft_cfg, pretrained=p) for p in pretrained)
    other_seed = pretrain(dataset, config, pre_cfg.model_copy(update={"seed": 7}))

    def losses(trained):
        return [{k: v for k, v in h.items() if k.endswith("loss") or k.startswith("valid_") and not k.endswith("_seconds")} for h in trained.history]

    assert losses(pretrained[0]) == losses(pretrained[1])
    assert losses(first) == losses(second)
    assert all(torch.equal(first.state_dict[k], second.state_dict[k]) for k in first.state_dict)
    assert losses(other_seed) != losses(pretrained[0])


class Killed(Exception):
    pass


@pytest.mark.parametrize("phase", ["pretrain", "finetune"])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, phase):
    dataset = chain_dataset(num_users=60)
    config = model_config(dataset)
    if phase == "pretrain":
        cfg = PretrainConfig(epochs=3, batch_size=16, sp_weight=0.5)
        run = lambda **kw: pretrain(dataset, config, cfg, **kw)  # noqa: E731
    else:
        cfg = FinetuneConfig(epochs=3, batch_size=16, loss="bce", patience=10)
        run = lambda **kw: finetune(dataset, config, cfg, **kw)  # noqa: E731
    uninterrupted = run()

    def die_after_first_epoch(metrics, epoch):
        if epoch == 2:  # epoch 1's checkpoint is on disk; epoch 2 is lost
            raise Killed

    store = CheckpointStore(tmp_path, "s3rec", "job")
    with pytest.raises(Killed):
        run(checkpoints=store, log_fn=die_after_first_epoch)
    assert store.path.exists()
    resumed = run(checkpoints=store)
    assert not store.path.exists()  # cleared on success
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in uninterrupted.history]
    assert all(torch.equal(resumed.state_dict[k], uninterrupted.state_dict[k]) for k in resumed.state_dict)


def test_finetuned_model_learns_planted_sequences_far_better_than_popularity():
    dataset = chain_dataset()
    config = model_config(dataset, hidden_size=32, hidden_dropout=0.1, attention_dropout=0.1)
    pretrained = pretrain(dataset, config, PretrainConfig(epochs=3, batch_size=32))
    trained = finetune(dataset, config, FinetuneConfig(epochs=25, batch_size=32, lr=3e-3), pretrained=pretrained)
    assert trained.kind == "s3rec" and trained.summary["best_epoch"] >= 1
    assert trained.config["training"]["loss"] == "ce" and trained.config["pretraining"]["epochs"] == 3
    model = S3Rec(config)
    model.load_state_dict(trained.state_dict)
    model_ndcg = ndcg_on_test_split(s3rec_score_fn(model, "cpu", config.max_len), dataset)
    popularity_ndcg = ndcg_on_test_split(popularity_score_fn(dataset), dataset)
    assert model_ndcg > popularity_ndcg + 0.4, (model_ndcg, popularity_ndcg)


def test_attributes_that_predict_the_next_item_make_aap_and_map_pretraining_pay():
    """The same pretraining and finetuning, once with the attribute objectives (AAP, MAP) and once
    without them (MIP alone): only the first learns which items share a cluster before finetuning."""
    gains = []
    for seed in (0, 2):
        dataset = cluster_walk_dataset(seed=seed)
        config = model_config(dataset, hidden_size=32, hidden_dropout=0.1, attention_dropout=0.1)
        figures = {}
        for name, weights in (("with", {}), ("without", {"aap_weight": 0.0, "map_weight": 0.0})):
            pretrained = pretrain(dataset, config, PretrainConfig(epochs=60, batch_size=32, seed=seed, **weights))
            trained = finetune(dataset, config, FinetuneConfig(epochs=30, batch_size=32, lr=3e-3, seed=seed),
                               pretrained=pretrained)  # fmt: skip
            model = S3Rec(config)
            model.load_state_dict(trained.state_dict)
            figures[name] = ndcg_on_test_split(s3rec_score_fn(model, "cpu", config.max_len), dataset)
        gains.append(figures["with"] - figures["without"])
    # Knowing the cluster, the best test NDCG@10 is about 0.08 (the target is 1 of 60 items).
    assert min(gains) > 0.01 and np.mean(gains) > 0.025, gains


def test_sampled_softmax_over_every_item_with_a_uniform_proposal_is_the_full_softmax():
    torch.manual_seed(0)
    model = S3Rec(S3RecConfig(num_items=30, num_attributes=5, **SMALL)).eval()  # no dropout: same encoding twice
    items = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]])
    uniform = torch.full((32,), -np.log(30.0))
    full = model.next_item_loss(items[:, :-1], items[:, 1:], "ce")
    # Each target is among the negatives and is left out there, so the softmax is over all 30 items.
    sampled = model.next_item_loss(items[:, :-1], items[:, 1:], "sampled_softmax", torch.arange(1, 31), uniform)
    torch.testing.assert_close(sampled, full)


def test_uniform_proposal_draws_distinct_items_and_every_item_at_the_catalogue_size():
    proposal = NegativeProposal(chain_dataset(), "uniform", torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    draws = [proposal.sample(40, generator) for _ in range(50)]
    assert all(len(d.unique()) == 40 and d.min() >= 1 and d.max() <= 60 for d in draws)
    assert len(torch.cat(draws).unique()) == 60  # no item is left out of the draws
    assert sorted(proposal.sample(100, generator).tolist()) == list(range(1, 61))


def test_sampled_softmax_finetuning_learns_planted_sequences_far_better_than_popularity():
    dataset = chain_dataset()
    config = model_config(dataset, hidden_size=32, hidden_dropout=0.1, attention_dropout=0.1)
    cfg = FinetuneConfig(epochs=25, batch_size=32, lr=3e-3, loss="sampled_softmax", sampled_negatives=16)
    trained = finetune(dataset, config, cfg)
    model = S3Rec(config)
    model.load_state_dict(trained.state_dict)
    model_ndcg = ndcg_on_test_split(s3rec_score_fn(model, "cpu", config.max_len), dataset)
    popularity_ndcg = ndcg_on_test_split(popularity_score_fn(dataset), dataset)
    assert model_ndcg > popularity_ndcg + 0.4, (model_ndcg, popularity_ndcg)


def test_configs_reject_settings_that_cannot_train():
    with pytest.raises(ValueError):
        PretrainConfig(aap_weight=0, mip_weight=0, map_weight=0, sp_weight=0)
    with pytest.raises(ValueError):
        FinetuneConfig(loss="hinge")
    dataset = chain_dataset(num_users=10)
    with pytest.raises(ValueError):
        finetune(dataset, S3RecConfig(dataset.num_items + 1, dataset.num_attributes, **SMALL))
