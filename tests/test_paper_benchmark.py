"""The paper benchmark's pretrainings (benchmarks/s3rec_paper.py): shorter ones left finished on
the way by a longer one, and capped ones named apart from full ones."""

import pytest
import torch
from test_s3rec import chain_dataset, model_config

from benchmarks.common import Store
from benchmarks.s3rec_paper import RUN_NAME, in_natural_order, paper_pretraining, pretrained_weights, time_cap_label

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_shorter_pretraining_left_on_the_way_equals_the_same_pretraining_trained_alone(tmp_path):
    dataset = chain_dataset(num_users=40)
    config = model_config(dataset)
    cpu = torch.device("cpu")
    two, three = (paper_pretraining(epochs, "prefixes", seed=3) for epochs in (2, 3))
    longer = Store(tmp_path / "longer")
    pretrained_weights(longer, dataset, config, 3, three, "pretrained-3", cpu, snapshots={2: (two, "pretrained-2")})
    (snapshot,) = (longer.folder / "checkpoints" / "pretrained-2-seed3").glob("*.pt")
    saved = torch.load(snapshot, weights_only=True)
    assert (saved["epoch"], saved["finished"]) == (2, True)

    from_snapshot = pretrained_weights(longer, dataset, config, 3, two, "pretrained-2", cpu)
    alone = pretrained_weights(Store(tmp_path / "alone"), dataset, config, 3, two, "pretrained-2", cpu)
    assert not snapshot.exists()  # taken up as a finished pretraining, as every checkpoint is
    assert [h["loss"] for h in from_snapshot.history] == [h["loss"] for h in alone.history]
    assert all(torch.equal(from_snapshot.state_dict[k], alone.state_dict[k]) for k in alone.state_dict)
    assert from_snapshot.summary["train_seconds"] == pytest.approx(sum(h["epoch_seconds"] for h in saved["history"]))


def test_a_capped_pretraining_is_named_apart_from_the_full_one():
    full, capped = (paper_pretraining(150, "prefixes", 42, minutes) for minutes in (None, 25))
    assert (time_cap_label(full), time_cap_label(capped)) == ("", "max25min")
    assert RUN_NAME.match("s3rec-paper-pretrained-prefixes150max25min")["variant"] == "pretrained-prefixes150max25min"
    capped_sweep = RUN_NAME.match("s3rec-project-pretrained-prefixes150max7.5min-max_len100")
    assert (capped_sweep["variant"], capped_sweep["architecture"]) == ("pretrained-prefixes150max7.5min", "-max_len100")


def test_runs_of_several_lengths_are_listed_shortest_first():
    names = ["s3rec-paper-pretrained-prefixes100", "s3rec-paper-pretrained-prefixes20", "s3rec-paper-none",
             "s3rec-paper-pretrained-prefixes80", "ease"]
    assert in_natural_order(names) == ["ease", "s3rec-paper-none", "s3rec-paper-pretrained-prefixes20",
                                       "s3rec-paper-pretrained-prefixes80", "s3rec-paper-pretrained-prefixes100"]
