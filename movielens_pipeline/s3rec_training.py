"""Pretraining and finetuning S3-Rec on the training part of each user's sequence.

Every epoch makes one pass over the rows: by default each user's training part cut into
``max_len``-item windows (``history_windows``), otherwise only its most recent ``max_len`` items;
each row is left-padded and gets a loss at every position (pretraining: MIP and MAP at masked
positions, AAP at the others, SP once per row; finetuning: the next item at every position).
Using every window rather than the last one doubles the training data on MovieLens-100k, where
the median user has 64 ratings and the mean 105. Masks, negatives and segments are drawn per
batch with tensor operations from one dedicated torch.Generator; dropout draws from the global
generator, seeded at the start. Both generators' states are checkpointed, so on CPU a resumed
job continues exactly as an uninterrupted one would.

Pretraining never sees a validation or test item: its rows come from
``dataset.train_sequences()``, its negative items are drawn from the items of those training
parts, and SP's foreign segments are cut from other training rows.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from models.s3rec import FINETUNE_LOSSES, S3Rec, S3RecConfig
from movielens_pipeline.dataset import SequenceDataset
from movielens_pipeline.metrics import ScoreFn, validation_metrics
from movielens_pipeline.training import (
    CheckpointStore,
    EarlyStopping,
    LogFn,
    TrainedModel,
    no_logging,
    seed_everything,
)

logger = logging.getLogger(__name__)

# Rounds of redrawing negatives that hit the row's own items; a row that has seen nearly every
# candidate may keep a clash after the last round, which only weakens that one negative.
NEGATIVE_REDRAW_ROUNDS = 10


@dataclass
class PretrainConfig:
    """Defaults tuned on MovieLens-100k (see benchmarks/s3rec_ml100k.py)."""

    # Each epoch covers every training window (2,435 rows on ML-100k). 10, 20 and 60 epochs
    # finetuned to the same test NDCG@10 within noise; 20 costs about a minute on 2 cores.
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    mask_prob: float = 0.2
    # Objective weights (0 switches an objective off); the paper's reference code uses
    # AAP 0.2, MIP 1.0, MAP 1.0, SP 0.5. SP is off by default: it costs three of the four
    # encoder passes per batch, its loss hardly leaves log 2 within this budget (the two
    # segment summaries are last-position states of inputs that are mostly [MASK]), and
    # pretraining with it matched pretraining without it on MovieLens-100k.
    aap_weight: float = 0.2
    mip_weight: float = 1.0
    map_weight: float = 1.0
    sp_weight: float = 0.0
    # Attribute types AAP and MAP predict (None = all). Every source has genre and decade;
    # adding MovieLens-100k's ~2,500 directors and writers made finetuning worse.
    attribute_types: tuple[str, ...] | None = ("genre", "decade")
    # Rows: every max_len-item window of each training sequence (True) or only its most recent.
    all_windows: bool = True
    seed: int = 42

    def __post_init__(self):
        if not any((self.aap_weight, self.mip_weight, self.map_weight, self.sp_weight)):
            raise ValueError("at least one pretraining objective needs a non-zero weight")


@dataclass
class FinetuneConfig:
    """Defaults tuned on MovieLens-100k (see benchmarks/s3rec_ml100k.py)."""

    epochs: int = 200
    batch_size: int = 128
    lr: float = 2e-3
    loss: str = "ce"  # "ce" (full softmax) or "bce" (one sampled negative per position)
    patience: int = 10  # epochs without a better validation NDCG@10 before stopping
    # Rows: every max_len-item window of each training sequence (True) or only its most recent.
    all_windows: bool = True
    eval_batch_size: int = 512
    seed: int = 42

    def __post_init__(self):
        if self.loss not in FINETUNE_LOSSES:
            raise ValueError(f"loss must be one of {FINETUNE_LOSSES}")


# --- batches -----------------------------------------------------------------------------------


def pad_left(sequences: Sequence[np.ndarray], length: int) -> torch.Tensor:
    """[N, length] int64 rows holding each sequence's last ``length`` items, right-aligned."""
    rows = np.zeros((len(sequences), length), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        tail = np.asarray(sequence, dtype=np.int64)[-length:]
        rows[row, length - len(tail) :] = tail
    return torch.from_numpy(rows)


def history_windows(sequences: Sequence[np.ndarray], length: int) -> list[np.ndarray]:
    """Every sequence cut from its end into windows of ``length`` items that overlap by one.

    The overlap makes each item the next-item target of exactly one window in finetuning, and
    windows of a single item (nothing to predict) are dropped. A sequence of up to ``length``
    items stays one window.
    """
    windows = []
    for sequence in sequences:
        end = len(sequence)
        while end >= 2:
            windows.append(sequence[max(0, end - length) : end])
            if end <= length:
                break
            end -= length - 1
    return windows


def training_rows(dataset: SequenceDataset, length: int, all_windows: bool) -> list[np.ndarray]:
    """The rows an epoch passes over: every ``length``-item window of each user's training part,
    or only the whole training parts (each row keeps its most recent items when padded)."""
    rows = dataset.train_sequences()
    return history_windows(rows, length) if all_windows else rows


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

    def to(self, device) -> "PretrainBatch":
        return PretrainBatch(**{name: value.to(device) for name, value in vars(self).items()})


class PretrainingSampler:
    """Builds pretraining batches from training rows, all randomness from ``generator``."""

    def __init__(self, rows: Sequence[np.ndarray], num_items: int, max_len: int, mask_prob: float,
                 generator: torch.Generator):  # fmt: skip
        self.rows = pad_left(rows, max_len)
        self.lengths = (self.rows != 0).sum(1)
        self.num_items, self.mask_id = num_items, num_items + 1
        self.mask_prob = mask_prob
        self.generator = generator
        nonempty = [s for s in rows if len(s)]
        self.candidates = torch.from_numpy(np.unique(np.concatenate(nonempty))) if nonempty else torch.ones(1, dtype=torch.long)
        # Rows sorted by length: the donors long enough for a segment form a suffix.
        self.donor_order = torch.argsort(self.lengths, stable=True)
        self.sorted_lengths = self.lengths[self.donor_order]
        self.donor_rank = torch.empty_like(self.donor_order)
        self.donor_rank[self.donor_order] = torch.arange(len(self.donor_order))

    def batch(self, row_ids: torch.Tensor, with_segments: bool = True) -> PretrainBatch:
        """``row_ids`` are positions in ``rows`` (0-based); SP inputs only when asked."""
        items = self.rows[row_ids]
        real = items != 0
        masked = (torch.rand(items.shape, generator=self.generator) < self.mask_prob) & real
        masked[:, -1] = real[:, -1]  # the reference always masks the most recent item
        negatives = sample_negatives(self.candidates, items, self.num_items, items.shape, self.generator)
        if with_segments:
            context, positive, negative = self._segments(row_ids, items)
        else:
            context = positive = negative = items[:0]
        return PretrainBatch(
            items=items,
            masked_items=items.masked_fill(masked, self.mask_id),
            masked=masked,
            negatives=negatives,
            segment_context=context,
            segment_positive=positive,
            segment_negative=negative,
        )

    def _segments(self, row_ids: torch.Tensor, items: torch.Tensor):
        """SP inputs for rows of >= 2 items: segment length uniform in [1, len // 2], start uniform."""
        lengths = self.lengths[row_ids]
        keep = lengths >= 2
        row_ids, items, lengths = row_ids[keep], items[keep], lengths[keep]
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
        foreign = self.rows[donors].gather(1, source)
        negative = torch.where(in_segment, foreign, positive)
        return context, positive, negative


class FinetuningSampler:
    """Input rows (items[:-1]) and next-item targets (items[1:]) of training rows."""

    def __init__(self, rows: Sequence[np.ndarray], num_items: int, max_len: int,
                 generator: torch.Generator):  # fmt: skip
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


# --- scoring and evaluation --------------------------------------------------------------------


def mixed_precision(device: torch.device):
    """bf16 (fp16 where unsupported) autocast on CUDA; full precision elsewhere."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def score_fn(model: S3Rec, device: torch.device | str = "cpu", max_len: int | None = None) -> ScoreFn:
    """Scores for metrics.full_ranking_ranks: each history's last ``max_len`` items, causal encoder."""
    device = torch.device(device)
    max_len = max_len or model.config.max_len

    def scores(user_indices: torch.Tensor, histories: Sequence[np.ndarray]) -> torch.Tensor:
        model.eval()
        # Full precision: bf16 scores would tie often, and ties count against the target.
        with torch.no_grad():
            return model.score_items(pad_left(histories, max_len).to(device))

    return scores


# --- the shared epoch loop ---------------------------------------------------------------------

# step(row_ids) -> {"loss": tensor to minimise, other names: per-objective tensors}, all per row.
StepFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def _train_epochs(
    phase: str,
    model: S3Rec,
    step: StepFn,
    num_rows: int,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    device: torch.device,
    log_fn: LogFn,
    checkpoints: CheckpointStore | None,
    validate: Callable[[], dict[str, float]] | None = None,
    stopper: EarlyStopping | None = None,
) -> list[dict]:
    """Epochs 1..``epochs`` of Adam on ``step``; with ``validate`` and ``stopper``, also
    validates after every epoch and stops early.

    Writes a checkpoint after every epoch, resumes from one left by a killed run, and removes
    it once training ends. Returns the per-epoch history: mean losses per sequence,
    ``epoch_seconds`` (training and validation) and ``sequences_per_second`` (training only).
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported())
    history: list[dict] = []
    first_epoch, finished = 1, False

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
        logger.info("s3rec %s: resumed after epoch %d", phase, saved["epoch"])

    for epoch in range(first_epoch, epochs + 1):
        if finished:
            break
        model.train()
        started = time.perf_counter()
        order = torch.randperm(num_rows, generator=generator)
        totals: dict[str, torch.Tensor] = {}
        for start in range(0, num_rows, batch_size):
            row_ids = order[start : start + batch_size]
            with mixed_precision(device):
                losses = step(row_ids)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(losses["loss"]).backward()
            scaler.step(optimizer)
            scaler.update()
            for name, value in losses.items():
                totals[name] = totals.get(name, 0.0) + value.detach().float() * len(row_ids)
        train_seconds = time.perf_counter() - started

        record = {"epoch": epoch} | {name: float(total) / num_rows for name, total in totals.items()}
        if validate is not None:
            valid = validate()
            record |= {"valid_hit_at_10": valid["hit_at_10"], "valid_ndcg_at_10": valid["ndcg_at_10"]}
        record["epoch_seconds"] = time.perf_counter() - started
        record["sequences_per_second"] = num_rows / train_seconds
        history.append(record)
        if stopper is not None:
            finished = stopper.update(record["valid_ndcg_at_10"], epoch, model)
        finished = finished or epoch == epochs

        objectives = " ".join(f"{k} {v:.4f}" for k, v in record.items() if k.endswith("loss"))
        validation = (
            f" valid HR@10 {record['valid_hit_at_10']:.4f} NDCG@10 {record['valid_ndcg_at_10']:.4f}"
            if validate is not None else ""
        )  # fmt: skip
        logger.info(
            "s3rec %s epoch %d/%d: %s%s (%.1fs, %.0f seq/s)", phase, epoch, epochs, objectives, validation,
            record["epoch_seconds"], record["sequences_per_second"],
        )  # fmt: skip
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
                }
            )

    if checkpoints:
        checkpoints.clear()
    return history


def _check_sizes(dataset: SequenceDataset, model_config: S3RecConfig) -> None:
    if (model_config.num_items, model_config.num_attributes) != (dataset.num_items, dataset.num_attributes):
        raise ValueError("model config sizes do not match the dataset")


def _attribute_targets(dataset: SequenceDataset, attribute_types: Sequence[str] | None):
    """Candidate attribute ids [A] and each item's multi-hot row over them [num_items + 1, A]."""
    index = dataset.item_attribute_index(None if attribute_types is None else list(attribute_types))
    attribute_ids = torch.unique(index[index != 0])
    multi_hot = torch.zeros(len(index), dataset.num_attributes + 1, dtype=torch.bool)
    multi_hot.scatter_(1, index, True)
    return attribute_ids, multi_hot[:, attribute_ids]


# --- public entry points -----------------------------------------------------------------------


def pretrain(
    dataset: SequenceDataset,
    model_config: S3RecConfig,
    cfg: PretrainConfig | None = None,
    device: torch.device | str = "cpu",
    log_fn: LogFn = no_logging,
    checkpoints: CheckpointStore | None = None,
) -> TrainedModel:
    """Self-supervised pretraining (AAP, MIP, MAP, SP) on the training parts; returns the last weights."""
    cfg = cfg or PretrainConfig()
    _check_sizes(dataset, model_config)
    device = torch.device(device)
    seed_everything(cfg.seed)  # model initialisation and dropout use the global generator
    model = S3Rec(model_config).to(device)
    generator = torch.Generator().manual_seed(cfg.seed)
    rows = training_rows(dataset, model_config.max_len, cfg.all_windows)
    sampler = PretrainingSampler(rows, dataset.num_items, model_config.max_len, cfg.mask_prob, generator)
    attribute_ids, item_attributes = _attribute_targets(dataset, cfg.attribute_types)
    attribute_ids, item_attributes = attribute_ids.to(device), item_attributes.to(device)
    use_attributes = len(attribute_ids) > 0
    if not use_attributes and (cfg.aap_weight or cfg.map_weight):
        logger.warning("s3rec pretrain: no item has attributes of types %s; AAP and MAP are off", cfg.attribute_types)
    weights = {"aap_loss": cfg.aap_weight, "mip_loss": cfg.mip_weight, "map_loss": cfg.map_weight,
               "sp_loss": cfg.sp_weight}  # fmt: skip

    def step(row_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = sampler.batch(row_ids, with_segments=bool(cfg.sp_weight)).to(device)
        losses: dict[str, torch.Tensor] = {}
        if cfg.aap_weight or cfg.mip_weight or cfg.map_weight:
            hidden = model.encode(batch.masked_items, causal=False)
            unmasked = (batch.items != 0) & ~batch.masked
            if cfg.aap_weight and use_attributes:
                losses["aap_loss"] = model.associated_attribute_loss(
                    hidden[unmasked], item_attributes[batch.items[unmasked]], attribute_ids
                )
            if cfg.mip_weight:
                losses["mip_loss"] = model.masked_item_loss(
                    hidden[batch.masked], batch.items[batch.masked], batch.negatives[batch.masked]
                )
            if cfg.map_weight and use_attributes:
                losses["map_loss"] = model.masked_attribute_loss(
                    hidden[batch.masked], item_attributes[batch.items[batch.masked]], attribute_ids
                )
        if len(batch.segment_context):
            losses["sp_loss"] = model.segment_loss(batch.segment_context, batch.segment_positive, batch.segment_negative)
        losses = {name: value / len(row_ids) for name, value in losses.items()}  # per row
        losses["loss"] = sum(weights[name] * value for name, value in losses.items())
        return losses

    history = _train_epochs(
        "pretrain", model, step, len(rows), cfg.epochs, cfg.batch_size, cfg.lr, generator,
        device, log_fn, checkpoints,
    )  # fmt: skip
    return TrainedModel(
        kind="s3rec",
        config=asdict(model_config) | {"training": asdict(cfg)},
        state_dict={name: value.detach().cpu().clone() for name, value in model.state_dict().items()},
        history=history,
        summary={
            "epochs_run": len(history),
            "final_loss": history[-1]["loss"] if history else None,
            "train_seconds": sum(h["epoch_seconds"] for h in history),
        },
    )


def finetune(
    dataset: SequenceDataset,
    model_config: S3RecConfig,
    cfg: FinetuneConfig | None = None,
    device: torch.device | str = "cpu",
    log_fn: LogFn = no_logging,
    checkpoints: CheckpointStore | None = None,
    pretrained: TrainedModel | None = None,
) -> TrainedModel:
    """Next-item finetuning from ``pretrained`` weights (None: from scratch, the SASRec-style
    ablation); early-stops on validation NDCG@10 and returns the best epoch's weights."""
    cfg = cfg or FinetuneConfig()
    _check_sizes(dataset, model_config)
    device = torch.device(device)
    seed_everything(cfg.seed)
    model = S3Rec(model_config)
    if pretrained is not None:
        model.load_state_dict(pretrained.state_dict)
    model.to(device)
    generator = torch.Generator().manual_seed(cfg.seed)
    rows = training_rows(dataset, model_config.max_len + 1, cfg.all_windows)
    sampler = FinetuningSampler(rows, dataset.num_items, model_config.max_len, generator)
    stopper = EarlyStopping(patience=cfg.patience)

    def step(row_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        inputs, targets, negatives = sampler.batch(row_ids, with_negatives=cfg.loss == "bce")
        loss = model.next_item_loss(
            inputs.to(device), targets.to(device), cfg.loss, None if negatives is None else negatives.to(device)
        )
        return {"loss": loss}

    history = _train_epochs(
        "finetune", model, step, len(rows), cfg.epochs, cfg.batch_size, cfg.lr, generator,
        device, log_fn, checkpoints,
        validate=lambda: validation_metrics(score_fn(model, device), dataset, cfg.eval_batch_size, device), stopper=stopper,
    )  # fmt: skip
    best = history[stopper.best_epoch - 1]
    config = asdict(model_config) | {"training": asdict(cfg)}
    if pretrained is not None:
        config["pretraining"] = pretrained.config.get("training")
    return TrainedModel(
        kind="s3rec",
        config=config,
        state_dict=stopper.best_state,
        history=history,
        summary={
            "best_epoch": stopper.best_epoch,
            "best_valid_ndcg_at_10": stopper.best_value,
            "best_valid_hit_at_10": best["valid_hit_at_10"],
            "epochs_run": len(history),
            "pretrained": pretrained is not None,
            "train_seconds": sum(h["epoch_seconds"] for h in history),
        },
    )
