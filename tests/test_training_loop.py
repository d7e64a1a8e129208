"""The shared training loop: what every model's training relies on."""

import os
import platform
import subprocess
import sys

import pytest
import torch

from movielens_pipeline.training.checkpoints import CheckpointStore
from movielens_pipeline.training.loop import LoopSettings, NonFiniteLossError, fit


class LinearTask:
    """Fit y = 3x with one weight; ``poison_from`` makes every later batch's loss NaN."""

    def __init__(self, model, poison_from_row: int | None = None):
        self.x = torch.linspace(-1, 1, 64)
        self.num_rows = len(self.x)
        self.model, self.poison_from_row = model, poison_from_row

    def make_batch(self, row_ids):
        return row_ids

    def loss(self, row_ids, part=None):
        row_ids = row_ids if part is None else row_ids[part]
        x = self.x[row_ids][:, None]
        loss = ((self.model(x).squeeze(1) - 3 * x.squeeze(1)) ** 2).mean()
        if self.poison_from_row is not None and (row_ids >= self.poison_from_row).any():
            loss = loss * float("nan")
        return {"loss": loss}


def run(task, model, epochs=5, validate=None, patience=None, checkpoints=None, log_fn=None):
    kwargs = {"log_fn": log_fn} if log_fn else {}
    return fit("linear", model, task, LoopSettings(epochs, 16, patience), torch.optim.SGD(model.parameters(), lr=0.3),
               torch.Generator().manual_seed(0), torch.device("cpu"), validate=validate, checkpoints=checkpoints,
               **kwargs)  # fmt: skip


def test_the_loop_learns_and_reports_per_epoch_losses():
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    result = run(LinearTask(model), model, epochs=8)
    assert len(result.history) == 8 and result.history[-1]["loss"] < result.history[0]["loss"]
    assert abs(model.weight.item() - 3) < 0.05 and result.best_epoch == 8


def test_a_non_finite_loss_stops_training_with_a_clear_error():
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    with pytest.raises(NonFiniteLossError, match="linear epoch 1: .*'loss': nan.* is not finite"):
        run(LinearTask(model, poison_from_row=60), model)


def test_early_stopping_keeps_the_best_epoch_and_resume_continues_after_a_crash(tmp_path):
    scores = iter([0.1, 0.3, 0.2, 0.25, 0.1, 0.05, 0.0] * 2)

    def validate():
        value = next(scores)
        return {"hit_at_10": value, "ndcg_at_10": value}

    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    result = run(LinearTask(model), model, epochs=20, validate=validate, patience=3)
    assert result.best_epoch == 2 and len(result.history) == 5 and result.best_valid_ndcg_at_10 == 0.3

    scores = iter([0.1, 0.3, 0.2, 0.25, 0.1, 0.05, 0.0])
    store = CheckpointStore(tmp_path, "job", "key")

    def crash_after_epoch_three(metrics, epoch):
        if epoch == 3:
            raise KeyboardInterrupt

    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    with pytest.raises(KeyboardInterrupt):
        run(LinearTask(model), model, epochs=20, validate=validate, patience=3, checkpoints=store,
            log_fn=crash_after_epoch_three)  # fmt: skip
    assert store.path.exists()
    # The third epoch's checkpoint was not written (the crash came first): it restarts at epoch 3.
    scores = iter([0.2, 0.25, 0.1, 0.05])
    model = torch.nn.Linear(1, 1, bias=False)
    resumed = run(LinearTask(model), model, epochs=20, validate=validate, patience=3, checkpoints=store)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4, 5] and resumed.best_epoch == 2
    assert not store.path.exists()


class SlowTask(LinearTask):
    """Each batch takes ``seconds`` of wall time."""

    def __init__(self, model, seconds: float):
        super().__init__(model)
        self.seconds = seconds

    def loss(self, row_ids):
        import time

        time.sleep(self.seconds)
        return super().loss(row_ids)


def test_a_time_budget_stops_training_keeps_the_best_weights_and_says_so(caplog):
    import logging

    scores = iter([0.2, 0.1, 0.05, 0.0] * 10)
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    settings = LoopSettings(50, 16, patience=10, max_minutes=0.25 / 60, progress_seconds=0.05)  # 0.25 s, 4 batches/epoch
    with caplog.at_level(logging.INFO, logger="movielens_pipeline.training.loop"):
        result = fit("slow", model, SlowTask(model, 0.04), settings, torch.optim.SGD(model.parameters(), lr=0.3),
                     torch.Generator().manual_seed(0), torch.device("cpu"),
                     validate=lambda: {"hit_at_10": (v := next(scores)), "ndcg_at_10": v})  # fmt: skip
    assert result.stop_reason == "time budget" and len(result.history) < 50
    assert result.history[-1]["stopped_on_time_budget"] == 1.0 and result.best_epoch == 1
    assert "stopped after epoch" in caplog.text and "on its time budget" in caplog.text
    assert "epoch ETA" in caplog.text  # progress lines inside an epoch


FREED_BYTES_KEPT = """
import ctypes, ctypes.util, sys, torch
from movielens_pipeline.training.runtime import pick_device
class MallocInfo(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallocInfo
if sys.argv[1] == "pick_device":
    pick_device("cpu")
torch.empty(12 << 20).fill_(1.0)  # a training step's large temporary: 48 MiB, written, freed
print(libc.mallinfo2().fordblks)  # free bytes malloc keeps for reuse
"""
BLOCK = 48 << 20


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_picking_the_device_keeps_large_freed_blocks_for_reuse():
    """glibc returns a freed block over 32 MiB to the kernel, and the next step's is faulted in
    and zero-filled again; after pick_device the process keeps it (benchmarks/allocator.py: what
    that saves)."""

    def kept(*args: str, **env: str) -> int:
        done = subprocess.run([sys.executable, "-c", FREED_BYTES_KEPT, *args], capture_output=True, text=True,
                              check=True, env=os.environ | env)  # fmt: skip
        return int(done.stdout)

    assert kept("no") < BLOCK <= kept("pick_device")
    # malloc parameters the user set in the environment are left as they are.
    assert kept("pick_device", MALLOC_TRIM_THRESHOLD_="0") < BLOCK
