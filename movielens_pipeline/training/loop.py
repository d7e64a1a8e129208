"""The one training loop every model uses: epochs, validation and early stopping, checkpoints
and resume, logging, device and mixed precision.

A model's training code supplies a ``TrainingTask``: how many rows an epoch covers, how to make
a batch from row ids, and the loss of a batch. Everything else lives here, so S3Rec
pretraining, S3Rec finetuning, LRML and BPR-MF train, stop, resume and log the same way.

Randomness: the row order of every epoch and whatever ``make_batch`` draws come from one
dedicated torch.Generator; dropout draws from the global generator. Both states are in the
checkpoint, so on CPU a resumed job continues exactly as an uninterrupted one would.

Several processes (``training.distributed``): every rank makes every global batch and trains on
its share of the rows, gradients are summed across ranks, and rank 0 alone validates, decides
when to stop, logs and writes checkpoints, broadcasting its decisions.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch

from movielens_pipeline.training import distributed
from movielens_pipeline.training.checkpoints import CheckpointStore
from movielens_pipeline.training.runtime import mixed_precision

logger = logging.getLogger(__name__)

# log_fn(metrics, step): how the loop reports per-epoch figures without knowing about MLflow.
LogFn = Callable[[dict[str, float], int], None]


def no_logging(metrics: dict[str, float], step: int) -> None:
    return None


class TrainingTask(Protocol):
    """What a model's training code hands the loop."""

    num_rows: int  # rows per epoch (sequences, windows, pairs)

    def make_batch(self, row_ids: torch.Tensor) -> Any:
        """The batch for these 0-based row ids, on the training device."""

    def loss(self, batch: Any, part: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``"loss"`` (the mean to minimise) plus any named parts to log, each a mean per row.

        ``part``: this process's row positions in the batch (None: every row); then each value is
        the part's share of the whole batch's mean, so the shares of all processes add up to it."""


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite: training stops rather than keep or promote such weights."""


@dataclass
class EarlyStopping:
    """Keeps the best epoch's weights by a validation metric (higher is better)."""

    patience: int
    best_value: float = float("-inf")
    best_epoch: int = -1
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0

    def update(self, value: float, epoch: int, model: torch.nn.Module) -> bool:
        """Record an epoch; returns True when training should stop."""
        if value > self.best_value:
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
            self.best_state = detached_state(model)
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def state(self) -> dict:
        return {
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "best_state": self.best_state,
        }

    def restore(self, state: dict) -> None:
        self.best_value = state["best_value"]
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = state["bad_epochs"]
        self.best_state = state["best_state"]


def detached_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}


@dataclass
class LoopSettings:
    epochs: int
    batch_size: int
    # Epochs without a better validation figure before stopping; None trains every epoch and
    # keeps the last weights (pretraining, which has no validation metric).
    patience: int | None = None
    # The validation figure that picks the best epoch (a key of what ``validate`` returns).
    selection_metric: str = "ndcg_at_10"
    rows_name: str = "rows"  # names the throughput figure, e.g. sequences_per_second
    # Wall-clock budget for the whole run: training stops at the first batch past it, validates
    # that epoch and keeps the best weights so far. None: no budget.
    max_minutes: float | None = None
    # Inside an epoch, a progress line (rows done, loss, ETA) at most this often.
    progress_seconds: float = 30.0


@dataclass
class FitResult:
    history: list[dict]
    state_dict: dict[str, torch.Tensor]  # the best epoch's weights (the last without patience)
    best_epoch: int
    best_valid_ndcg_at_10: float | None
    stop_reason: str  # "epochs", "patience" or "time budget"


def fit(
    name: str,
    model: torch.nn.Module,
    task: TrainingTask,
    settings: LoopSettings,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    device: torch.device,
    validate: Callable[[], dict[str, float]] | None = None,
    log_fn: LogFn = no_logging,
    checkpoints: CheckpointStore | None = None,
) -> FitResult:
    """Train ``model`` for up to ``settings.epochs`` epochs of shuffled batches of ``task``'s rows.

    With ``validate`` and a patience, validates after every epoch, stops after ``patience``
    epochs without a better validation NDCG@10 and returns the best epoch's weights. Writes a
    checkpoint after every epoch, resumes from one a killed run left, and removes it at the end.
    """
    stopper = EarlyStopping(settings.patience) if settings.patience is not None else None
    if stopper is not None and validate is None:
        raise ValueError("early stopping needs a validate function")
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported())
    history: list[dict] = []
    first_epoch, finished = 1, False
    deadline = time.monotonic() + settings.max_minutes * 60 if settings.max_minutes is not None else math.inf
    stop_reason = "epochs"

    saved = checkpoints.load() if checkpoints else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["global_rng"])
        if stopper is not None:
            stopper.restore(saved["early_stopping"])
        history, first_epoch, finished = saved["history"], saved["epoch"] + 1, saved["finished"]
        stop_reason = saved.get("stop_reason", stop_reason)
        logger.info("%s: resumed after epoch %d", name, saved["epoch"])

    main = distributed.is_main()
    for epoch in range(first_epoch, settings.epochs + 1):
        if finished:
            break
        record = {"epoch": epoch} | _train_one_epoch(name, epoch, model, task, settings, optimizer, scaler, generator,
                                                     device, deadline)  # fmt: skip
        if validate is not None:
            started = time.perf_counter()
            valid = distributed.from_main(validate() if main else None)
            record |= {f"valid_{name}": value for name, value in valid.items()}
            record["valid_seconds"] = time.perf_counter() - started
        history.append(record)
        if stopper is not None and stopper.update(record[f"valid_{settings.selection_metric}"], epoch, model):
            finished, stop_reason = True, "patience"
        if not finished and distributed.from_main(time.monotonic() >= deadline):
            finished, stop_reason = True, "time budget"
            record["stopped_on_time_budget"] = 1.0
        finished = finished or epoch == settings.epochs
        if not main:
            continue
        _log_epoch(name, record, settings)
        if stop_reason == "time budget":
            logger.warning("%s: stopped after epoch %d on its time budget of %s minutes (keeping the %s weights)",
                           name, epoch, settings.max_minutes, "best" if stopper else "last")  # fmt: skip
        log_fn({k: v for k, v in record.items() if k != "epoch"}, epoch)
        if checkpoints:
            checkpoints.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "generator": generator.get_state(),
                    "global_rng": torch.get_rng_state(),
                    "early_stopping": stopper.state() if stopper is not None else None,
                    "history": history,
                    "epoch": epoch,
                    "finished": finished,
                    "stop_reason": stop_reason,
                }
            )

    if checkpoints and main:
        checkpoints.clear()
    if stopper is None:
        return FitResult(history, detached_state(model), len(history), None, stop_reason)
    best_ndcg = history[stopper.best_epoch - 1]["valid_ndcg_at_10"]
    return FitResult(history, stopper.best_state, stopper.best_epoch, best_ndcg, stop_reason)


def _train_one_epoch(name, epoch, model, task, settings, optimizer, scaler, generator, device,
                     deadline: float = math.inf) -> dict[str, float]:  # fmt: skip
    """One pass over the task's rows in a fresh order (cut short at ``deadline``, a
    time.monotonic() value); mean losses per row seen and the timing."""
    model.train()
    rank, world = distributed.rank_and_world()
    parameters = [p for p in model.parameters() if p.requires_grad]
    budgeted = math.isfinite(deadline)
    started = time.perf_counter()
    last_progress = time.monotonic()
    order = torch.randperm(task.num_rows, generator=generator)
    totals: dict[str, torch.Tensor] = {}
    rows_seen = 0
    for start in range(0, task.num_rows, settings.batch_size):
        # Every rank must stop at the same batch: rank 0's clock decides.
        if budgeted and distributed.from_main(time.monotonic() >= deadline):
            break
        if rank == 0 and time.monotonic() - last_progress >= settings.progress_seconds and rows_seen:
            last_progress = time.monotonic()
            _log_progress(name, epoch, settings, rows_seen, task.num_rows, float(totals["loss"]) / rows_seen,
                          time.perf_counter() - started)  # fmt: skip
        row_ids = order[start : start + settings.batch_size]
        batch = task.make_batch(row_ids)
        with mixed_precision(device):
            losses = task.loss(batch, distributed.shard(len(row_ids), rank, world).to(device)) if world > 1 else task.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses["loss"]).backward()
        if world > 1:
            distributed.sum_gradients_(parameters)
        scaler.step(optimizer)
        scaler.update()
        for part, value in losses.items():
            totals[part] = totals.get(part, 0.0) + value.detach().float() * len(row_ids)
        rows_seen += len(row_ids)
    if world > 1:
        totals = distributed.sum_over_ranks(totals)
    seconds = time.perf_counter() - started
    means = {part: float(total) / max(rows_seen, 1) for part, total in totals.items()}
    not_finite = {part: value for part, value in means.items() if not math.isfinite(value)}
    if not_finite:
        raise NonFiniteLossError(
            f"{name} epoch {epoch}: {not_finite} is not finite; lower the learning rate or check the "
            "data (no weights of this run are kept)"
        )
    return means | {"epoch_seconds": seconds, f"{settings.rows_name}_per_second": rows_seen / seconds}


def _log_progress(name: str, epoch: int, settings: LoopSettings, done: int, total: int, loss: float,
                  seconds: float) -> None:  # fmt: skip
    eta = seconds * (total - done) / done
    logger.info("%s epoch %d/%d: %s/%s %s (%.0f%%), loss %.4f so far, %s %s/s, epoch ETA %s",
                name, epoch, settings.epochs, f"{done:,}", f"{total:,}", settings.rows_name, 100 * done / total, loss,
                f"{done / seconds:,.0f}", settings.rows_name, _duration(eta))  # fmt: skip


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def _log_epoch(name: str, record: dict, settings: LoopSettings) -> None:
    losses = " ".join(f"{k} {v:.4f}" for k, v in record.items() if k.endswith("loss"))
    validation = (
        f" valid HR@10 {record['valid_hit_at_10']:.4f} NDCG@10 {record['valid_ndcg_at_10']:.4f}"
        if "valid_ndcg_at_10" in record else ""
    )  # fmt: skip
    logger.info(
        "%s epoch %d/%d: %s%s (%.1fs, %.0f %s/s)", name, record["epoch"], settings.epochs, losses, validation,
        record["epoch_seconds"], record[f"{settings.rows_name}_per_second"], settings.rows_name,
    )  # fmt: skip
