"""Pretraining and finetuning S3-Rec on the training part of each user's sequence.

Every epoch makes one pass over the rows (``rows``): by default each user's training part cut
into ``max_len``-item windows (``history_windows``); otherwise only its most recent ``max_len``
items, or for pretraining every prefix of those (the authors' instances); each row is left-padded and gets a loss at every position (pretraining: MIP and MAP at masked
positions, AAP at the others, SP once per row; finetuning: the next item at every position).
Using every window rather than the last one doubles the training data on MovieLens-100k, where
the median user has 64 ratings and the mean 105. The epochs, early stopping and checkpoints are
the shared loop's (``training.loop``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Literal, Optional, Sequence

import numpy as np
import torch
from pydantic import model_validator

from models.s3rec import FINETUNE_LOSSES, S3Rec, S3RecConfig
from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.evaluation.metrics import validator
from movielens_pipeline.evaluation.scorers import s3rec_score_fn
from movielens_pipeline.parameters import StepParameters, hyperparameters_of
from movielens_pipeline.training.checkpoints import CheckpointStore
from movielens_pipeline.training.loop import LogFn, LoopSettings, fit, no_logging
from movielens_pipeline.training.runtime import seed_everything
from movielens_pipeline.training.sequence_batches import (
    FinetuningSampler,
    PretrainingSampler,
    RowKind,
    training_rows,
)
from movielens_pipeline.training.trained_model import TrainedModel

logger = logging.getLogger(__name__)

# The architecture a run config sets (``model:``); the vocabulary sizes come from the dataset.
S3RecHyperparameters = hyperparameters_of(
    S3RecConfig, ("num_items", "num_attributes"), "S3RecHyperparameters", __name__
)


class PretrainConfig(StepParameters):
    """Defaults tuned on MovieLens-100k (see benchmarks/s3rec_ml100k.py)."""

    # Each epoch covers every training window (2,435 rows on ML-100k). On ML-100k 10, 20 and 60
    # epochs finetuned to the same test NDCG@10 within noise; where pretraining pays
    # (Toys_and_Games) 10 kept a quarter of 20's gain (benchmarks/results/pretrain_epochs_gpu.json).
    # 20 costs about a minute on 2 cores.
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
    # Attribute types AAP and MAP predict. None: every type whose values are shared by at least
    # MIN_ITEMS_PER_ATTRIBUTE items on average (on MovieLens-100k genre and decade, not its ~2,500
    # directors and writers, 1.3-1.5 films each, which made finetuning worse; LastFM's tags and
    # the Amazon sets' categories and brands qualify).
    attribute_types: Optional[tuple[str, ...]] = None
    # Rows of an epoch, from each training sequence: every max_len-item window ("windows"), its
    # most recent max_len items ("last"), or every prefix of those ("prefixes", the authors' code).
    rows: RowKind = "windows"
    seed: int = 42
    # Wall-clock budget of this training run in minutes (None: none): it stops at the first batch
    # past it, validates, and keeps the best weights so far; MLflow records stopped_on_time_budget.
    max_minutes: Optional[float] = None

    @model_validator(mode="after")
    def _some_objective(self):
        if not any((self.aap_weight, self.mip_weight, self.map_weight, self.sp_weight)):
            raise ValueError("at least one pretraining objective needs a non-zero weight")
        return self


class FinetuneConfig(StepParameters):
    """Defaults tuned on MovieLens-100k (see benchmarks/s3rec_ml100k.py)."""

    epochs: int = 200
    batch_size: int = 128
    lr: float = 2e-3
    # "ce" (full softmax), "bce" (one sampled negative per position) or "sampled_softmax" (K shared
    # negatives per batch with the logQ correction: the choice for catalogues of tens of thousands).
    loss: str = "ce"
    sampled_negatives: int = 1024  # K, for "sampled_softmax"
    # Where "sampled_softmax" draws its negatives: "uniform", K distinct items (every item when K
    # is the catalogue or more), or "popularity", K draws with replacement in proportion to the
    # training interaction counts (harder negatives, corrected by -log q).
    # Uniform is the default: on MovieLens-100k it came within 0.004 of the full softmax over 5
    # seeds, popularity 0.013 below it (K = 256, 3 seeds; benchmarks/sampled_softmax.py).
    negative_sampling: Literal["uniform", "popularity"] = "uniform"
    patience: int = 10  # epochs without a better validation figure before stopping
    # What picks the best epoch: full-ranking NDCG@10, or MRR against 99 sampled negatives as in
    # the authors' code (reproductions of the paper's protocol only).
    validation_metric: Literal["ndcg_at_10", "sampled_mrr"] = "ndcg_at_10"
    # Rows of an epoch, from each training sequence: every max_len-item window ("windows") or its
    # most recent max_len items ("last", one row per user as in the paper). Prefixes would add
    # nothing: the causal encoder already predicts the next item at every position of a row.
    rows: Literal["windows", "last"] = "windows"
    eval_batch_size: int = 512
    # Users ranked after every epoch: a fixed seeded sample of this many (all when fewer).
    validation_users: int = 10_000
    seed: int = 42
    # Wall-clock budget of this training run in minutes (None: none): it stops at the first batch
    # past it, validates, and keeps the best weights so far; MLflow records stopped_on_time_budget.
    max_minutes: Optional[float] = None

    @model_validator(mode="after")
    def _known_loss(self):
        if self.loss not in FINETUNE_LOSSES:
            raise ValueError(f"loss must be one of {FINETUNE_LOSSES}, got {self.loss!r}")
        if self.sampled_negatives < 1:
            raise ValueError(f"sampled_negatives must be at least 1, got {self.sampled_negatives}")
        return self


def s3rec_config(dataset: SequenceDataset, hyperparameters=None) -> S3RecConfig:
    """The model config for ``dataset`` from run-config hyperparameters (defaults when None)."""
    hyperparameters = hyperparameters or S3RecHyperparameters()
    return hyperparameters.sized(num_items=dataset.num_items, num_attributes=dataset.num_attributes)


def _check_sizes(dataset: SequenceDataset, model_config: S3RecConfig) -> None:
    if (model_config.num_items, model_config.num_attributes) != (dataset.num_items, dataset.num_attributes):
        raise ValueError("model config sizes do not match the dataset")


# Items an attribute value must group on average for its type to be predicted by default.
MIN_ITEMS_PER_ATTRIBUTE = 5


def _attribute_targets(dataset: SequenceDataset, attribute_types: Sequence[str] | None):
    """Candidate attribute ids [A] and each item's multi-hot row over them [num_items + 1, A]."""
    if attribute_types is None:
        attribute_types = dataset.informative_attribute_types(MIN_ITEMS_PER_ATTRIBUTE)
    index = dataset.item_attribute_index(list(attribute_types))
    attribute_ids = torch.unique(index[index != 0])
    multi_hot = torch.zeros(len(index), dataset.num_attributes + 1, dtype=torch.bool)
    multi_hot.scatter_(1, index, True)
    return attribute_ids, multi_hot[:, attribute_ids]


class PretrainingTask:
    """AAP, MIP, MAP and SP on masked training windows; losses are per row."""

    def __init__(self, model: S3Rec, dataset: SequenceDataset, cfg: PretrainConfig,
                 generator: torch.Generator, device: torch.device):  # fmt: skip
        max_len = model.config.max_len
        rows = training_rows(dataset, max_len, cfg.rows)
        self.num_rows = len(rows)
        self.sampler = PretrainingSampler(rows, dataset.num_items, max_len, cfg.mask_prob, generator)
        attribute_ids, item_attributes = _attribute_targets(dataset, cfg.attribute_types)
        self.attribute_ids, self.item_attributes = attribute_ids.to(device), item_attributes.to(device)
        self.use_attributes = len(attribute_ids) > 0
        if not self.use_attributes and (cfg.aap_weight or cfg.map_weight):
            logger.warning("s3rec pretrain: no item has attributes of types %s; AAP and MAP are off", cfg.attribute_types)
        self.weights = {"aap_loss": cfg.aap_weight, "mip_loss": cfg.mip_weight, "map_loss": cfg.map_weight,
                        "sp_loss": cfg.sp_weight}  # fmt: skip
        self.model, self.cfg, self.device = model, cfg, device

    def make_batch(self, row_ids: torch.Tensor):
        return self.sampler.batch(row_ids, with_segments=bool(self.cfg.sp_weight)).to(self.device)

    def loss(self, batch, part: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        model, cfg = self.model, self.cfg
        rows = len(batch.items)  # every loss is a sum over the batch's rows divided by their number
        if part is not None:
            batch = batch.rows(part)
        losses: dict[str, torch.Tensor] = {}
        if cfg.aap_weight or cfg.mip_weight or cfg.map_weight:
            hidden = model.encode(batch.masked_items, causal=False)
            unmasked = (batch.items != 0) & ~batch.masked
            if cfg.aap_weight and self.use_attributes:
                losses["aap_loss"] = model.associated_attribute_loss(
                    hidden[unmasked], self.item_attributes[batch.items[unmasked]], self.attribute_ids
                )
            if cfg.mip_weight:
                losses["mip_loss"] = model.masked_item_loss(
                    hidden[batch.masked], batch.items[batch.masked], batch.negatives[batch.masked]
                )
            if cfg.map_weight and self.use_attributes:
                losses["map_loss"] = model.masked_attribute_loss(
                    hidden[batch.masked], self.item_attributes[batch.items[batch.masked]], self.attribute_ids
                )
        if len(batch.segment_context):
            losses["sp_loss"] = model.segment_loss(batch.segment_context, batch.segment_positive, batch.segment_negative)
        losses = {name: value / rows for name, value in losses.items()}
        losses["loss"] = sum(self.weights[name] * value for name, value in losses.items())
        return losses


@torch.no_grad()
def pretraining_losses(model: S3Rec, dataset: SequenceDataset, cfg: PretrainConfig) -> dict[str, float]:
    """Mean per-row pretraining losses of ``model`` over every row ``cfg.rows`` gives, dropout
    off, with masks, negatives and segments drawn once from ``cfg.seed``: how well weights
    trained elsewhere (the authors' checkpoint, or ours on other rows or for longer) fit these
    objectives, all measured on the same draw."""
    task = PretrainingTask(model, dataset, cfg, torch.Generator().manual_seed(cfg.seed), torch.device("cpu"))
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    for start in range(0, task.num_rows, cfg.batch_size):
        row_ids = torch.arange(start, min(start + cfg.batch_size, task.num_rows))
        for name, value in task.loss(task.make_batch(row_ids)).items():
            totals[name] = totals.get(name, 0.0) + float(value) * len(row_ids)
    model.train(was_training)
    return {name: total / task.num_rows for name, total in totals.items()}


class NextItemTask:
    """Next-item prediction at every position of causal training windows."""

    def __init__(self, model: S3Rec, dataset: SequenceDataset, cfg: FinetuneConfig,
                 generator: torch.Generator, device: torch.device):  # fmt: skip
        max_len = model.config.max_len
        rows = training_rows(dataset, max_len + 1, cfg.rows)
        self.num_rows = len(rows)
        self.sampler = FinetuningSampler(rows, dataset.num_items, max_len, generator)
        self.generator = generator
        self.proposal = NegativeProposal(dataset, cfg.negative_sampling, device) if cfg.loss == "sampled_softmax" else None
        self.model, self.cfg, self.device = model, cfg, device

    def make_batch(self, row_ids: torch.Tensor):
        inputs, targets, negatives = self.sampler.batch(row_ids, with_negatives=self.cfg.loss == "bce")
        if self.cfg.loss == "sampled_softmax":
            negatives = self.proposal.sample(self.cfg.sampled_negatives, self.generator)
        return inputs.to(self.device), targets.to(self.device), None if negatives is None else negatives.to(self.device)

    def loss(self, batch, part: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        inputs, targets, negatives = batch
        log_q = self.proposal.log_q if self.proposal is not None else None
        if part is None:
            return {"loss": self.model.next_item_loss(inputs, targets, self.cfg.loss, negatives, log_q)}
        # The loss is a mean over real positions: a part weighs its share of them.
        positions = (inputs != 0).sum()
        inputs, targets = inputs[part], targets[part]
        if self.cfg.loss == "bce":  # one negative per position; sampled softmax shares its negatives
            negatives = negatives[part]
        share = (inputs != 0).sum() / positions
        return {"loss": self.model.next_item_loss(inputs, targets, self.cfg.loss, negatives, log_q) * share}


class NegativeProposal:
    """The distribution sampled softmax draws its shared negatives from: uniform over the items,
    or proportional to their training interaction counts (every item keeps a count of at least 1).

    Uniform negatives are drawn without replacement: a repeated item adds no information, and K
    distinct items bring the loss closer to the full softmax (at K >= catalogue it is the full
    softmax). Their log q is one constant, which the softmax ignores, so no correction changes.
    """

    def __init__(self, dataset: SequenceDataset, kind: str, device: torch.device):
        self.kind, self.num_items = kind, dataset.num_items
        weights = np.ones(dataset.num_items + 1) if kind == "uniform" else np.maximum(dataset.item_popularity(), 1)
        weights[0] = 0.0  # padding is never a negative
        self.probabilities = torch.as_tensor(weights / weights.sum(), dtype=torch.float64)
        # log q of padding is never read (padding is neither a target nor a negative).
        self.log_q = torch.log(self.probabilities.clamp(min=1e-300)).float().to(device)

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        if self.kind == "uniform":
            return torch.randperm(self.num_items, generator=generator)[:count] + 1
        return torch.multinomial(self.probabilities, count, replacement=True, generator=generator)


def _adam(model: S3Rec, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999))


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
    task = PretrainingTask(model, dataset, cfg, generator, device)
    result = fit(
        "s3rec pretrain", model, task,
        LoopSettings(cfg.epochs, cfg.batch_size, rows_name="sequences", max_minutes=cfg.max_minutes),
        _adam(model, cfg.lr), generator, device, log_fn=log_fn, checkpoints=checkpoints,
    )  # fmt: skip
    return TrainedModel(
        kind="s3rec",
        config=asdict(model_config) | {"training": cfg.as_dict()},
        state_dict=result.state_dict,
        history=result.history,
        summary={
            "epochs_run": len(result.history),
            "stop_reason": result.stop_reason,
            "final_loss": result.history[-1].get("loss") if result.history else None,
            "train_seconds": sum(h["epoch_seconds"] for h in result.history),
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
    name: str = "s3rec",
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
    task = NextItemTask(model, dataset, cfg, generator, device)
    score = s3rec_score_fn(model, device)
    result = fit(
        f"{name} finetune", model, task,
        LoopSettings(cfg.epochs, cfg.batch_size, cfg.patience, cfg.validation_metric, rows_name="sequences",
                     max_minutes=cfg.max_minutes),
        _adam(model, cfg.lr), generator, device,
        validate=validator(score, dataset, cfg.eval_batch_size, device, cfg.validation_users,
                           sampled=cfg.validation_metric == "sampled_mrr"),
        log_fn=log_fn, checkpoints=checkpoints,
    )  # fmt: skip
    best = result.history[result.best_epoch - 1]
    config = asdict(model_config) | {"training": cfg.as_dict()}
    if pretrained is not None:
        config["pretraining"] = pretrained.config.get("training")
    return TrainedModel(
        kind="s3rec",
        config=config,
        state_dict=result.state_dict,
        history=result.history,
        summary={
            "best_epoch": result.best_epoch,
            "best_valid_ndcg_at_10": result.best_valid_ndcg_at_10,
            "best_valid_hit_at_10": best["valid_hit_at_10"],
            "epochs_run": len(result.history),
            "stop_reason": result.stop_reason,
            "pretrained": pretrained is not None,
            "train_seconds": sum(h["epoch_seconds"] for h in result.history),
        },
    )
