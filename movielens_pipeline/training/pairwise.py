"""Training LRML and BPR-MF (pairwise implicit-feedback models) on the training parts.

Each user's training items become implicit-feedback (user, item) pairs; every epoch visits them
in a fresh random order, with negatives drawn uniformly from the items the user never
interacted with in training. The epochs, early stopping and checkpoints are the shared loop's.

A pairwise model is any nn.Module with
- ``forward(users [B], positives [B], negatives [B, n]) -> (ranking_loss, squared_norms)``,
  squared_norms being the batch's embedding norms that ``l2`` multiplies, and
- ``score_all_items(users [B]) -> [B, num_items + 1]``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal, Optional

import numpy as np
import torch
import torch.nn as nn

from models.bpr import BPRMF, BPRConfig
from models.lrml import LRML, LRMLConfig
from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.evaluation.metrics import validator
from movielens_pipeline.evaluation.scorers import user_score_fn
from movielens_pipeline.parameters import StepParameters, hyperparameters_of
from movielens_pipeline.training.checkpoints import CheckpointStore
from movielens_pipeline.training.loop import LogFn, LoopSettings, fit, no_logging
from movielens_pipeline.training.runtime import seed_everything
from movielens_pipeline.training.trained_model import TrainedModel

OPTIMIZERS = {"adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad, "sgd": torch.optim.SGD}

# The architectures a run config sets (``model:``); the table sizes come from the dataset.
LRMLHyperparameters = hyperparameters_of(LRMLConfig, ("num_users", "num_items"), "LRMLHyperparameters", __name__)
BPRHyperparameters = hyperparameters_of(BPRConfig, ("num_users", "num_items"), "BPRHyperparameters", __name__)


class PairwiseTrainConfig(StepParameters):
    """What every pairwise model shares: the budget (epochs, batch, negatives, patience) and
    the optimiser settings, whose defaults each model's subclass tunes."""

    epochs: int = 40
    batch_size: int = 1024
    lr: float = 5e-3
    optimizer: Literal["adam", "adagrad", "sgd"] = "adam"
    negatives_per_positive: int = 5
    # Where negatives come from: "uniform" over the items, or "popularity", in proportion to
    # training count ** popularity_exponent (harder negatives: popular items the user skipped).
    negative_sampling: Literal["uniform", "popularity"] = "uniform"
    popularity_exponent: float = 0.75
    l2: float = 0.0  # weight of the squared norms of the embedding rows a batch uses
    patience: int = 8  # epochs without a better validation NDCG@10 before stopping
    seed: int = 42
    eval_batch_size: int = 512
    # Users ranked after every epoch: a fixed seeded sample of this many (all when fewer).
    validation_users: int = 10_000
    # Wall-clock budget of this training run in minutes (None: none): it stops at the first batch
    # past it, validates, and keeps the best weights so far; MLflow records stopped_on_time_budget.
    max_minutes: Optional[float] = None


class LRMLTrainConfig(PairwiseTrainConfig):
    """LRML's defaults: Adagrad 0.05 had the best MovieLens-100k validation NDCG@10 of the
    settings tried (notes in benchmarks/lrml_ml100k.py). 20 uniform negatives per positive, of
    which the model's ``negative_reduction: hardest`` trains on the closest: the best validation
    NDCG@10 on MovieLens-100k, LastFM and Toys_and_Games alike (benchmarks/lrml_tuning.py).
    Patience 5 kept the same test NDCG@10 as 8 on all three (-.0001, .0000, .0000) in 0.70, 0.86
    and 0.89 of the training time (benchmarks/patience.py)."""

    lr: float = 0.05
    optimizer: Literal["adam", "adagrad", "sgd"] = "adagrad"
    negatives_per_positive: int = 20
    patience: int = 5


class BPRTrainConfig(PairwiseTrainConfig):
    """BPR-MF keeps the shared defaults (Adam, lr 5e-3, no L2: best on MovieLens-100k validation)."""


def training_pairs(dataset: SequenceDataset) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, item) pairs of the training parts, as two int64 arrays sorted by user, item."""
    rows, items = dataset.train_sequences().flat()
    users = dataset.user_indices[rows]
    pair_keys = np.unique(users * (dataset.num_items + 1) + items)
    return pair_keys // (dataset.num_items + 1), pair_keys % (dataset.num_items + 1)


class NegativeSampler:
    """Item draws that avoid each user's training positives, vectorized: uniform, or in
    proportion to ``weights`` (one per item index, index 0 unused).

    Positives are kept as sorted keys user * (num_items + 1) + item; a batch of draws is
    checked with one binary search and only the colliding draws are drawn and checked again, so
    the Python loop runs once per round (a handful), never once per pair.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, num_items: int, weights: np.ndarray | None = None):
        self.num_items = num_items
        self.positive_keys = torch.from_numpy(np.unique(users * (num_items + 1) + items))
        positives_per_user = np.bincount(users)
        if positives_per_user.max(initial=0) >= num_items:
            raise ValueError("a user has interacted with every item: no negative exists")
        self.weights = None
        if weights is not None:
            self.weights = torch.as_tensor(weights, dtype=torch.float64).clone()
            self.weights[0] = 0.0

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        keys = users * (self.num_items + 1) + items
        where = torch.searchsorted(self.positive_keys, keys).clamp(max=len(self.positive_keys) - 1)
        return self.positive_keys[where] == keys

    def sample(self, users: torch.Tensor, per_user: int, generator: torch.Generator) -> torch.Tensor:
        """[len(users), per_user] items none of which is a training positive of its row's user."""
        users = users.repeat_interleave(per_user)
        items = self._draw(users.numel(), generator)
        # Only the draws that hit a positive are checked again: a heavy user's rows can take ten
        # rounds to clear, and re-checking every draw each round made sampling half of LRML's time.
        clashing = self.is_positive(users, items).nonzero().squeeze(1)
        while clashing.numel():
            redrawn = self._draw(clashing.numel(), generator)
            items[clashing] = redrawn
            clashing = clashing[self.is_positive(users[clashing], redrawn)]
        return items.view(-1, per_user)

    def _draw(self, count: int, generator: torch.Generator) -> torch.Tensor:
        if self.weights is None:
            return torch.randint(1, self.num_items + 1, (count,), generator=generator)
        return torch.multinomial(self.weights, count, replacement=True, generator=generator)


class PairwiseTask:
    """Rows are the training pairs; each batch draws its negatives, the loss adds the L2 term."""

    def __init__(self, model: nn.Module, dataset: SequenceDataset, cfg: PairwiseTrainConfig,
                 generator: torch.Generator, device: torch.device):  # fmt: skip
        users, items = training_pairs(dataset)
        weights = None
        if cfg.negative_sampling == "popularity":
            weights = np.maximum(dataset.item_popularity(), 1).astype(np.float64) ** cfg.popularity_exponent
        self.sampler = NegativeSampler(users, items, dataset.num_items, weights)
        self.users, self.items = torch.from_numpy(users), torch.from_numpy(items)
        self.num_rows = len(users)
        self.model, self.cfg, self.generator, self.device = model, cfg, generator, device

    def make_batch(self, row_ids: torch.Tensor):
        users = self.users[row_ids]
        negatives = self.sampler.sample(users, self.cfg.negatives_per_positive, self.generator)
        return users.to(self.device), self.items[row_ids].to(self.device), negatives.to(self.device)

    def loss(self, batch, part: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        share = 1.0
        if part is not None:
            users, positives, negatives = batch
            if hasattr(self.model, "clip_rows_"):  # every rank projects the whole batch's rows: replicas stay equal
                self.model.clip_rows_(users, torch.cat([positives, negatives.flatten()]))
            batch, share = [tensor[part] for tensor in batch], len(part) / len(users)
        ranking_loss, squared_norms = self.model(*batch)
        loss = ranking_loss + self.cfg.l2 * squared_norms if self.cfg.l2 else ranking_loss
        return {"loss": loss * share if part is not None else loss}


def fit_pairwise(
    model: nn.Module,
    kind: str,
    model_config,
    dataset: SequenceDataset,
    cfg: PairwiseTrainConfig,
    device: torch.device | str = "cpu",
    log_fn: LogFn = no_logging,
    checkpoints: CheckpointStore | None = None,
) -> TrainedModel:
    """Train a pairwise model with early stopping on validation NDCG@10; returns the best weights."""
    device = torch.device(device)
    model.to(device)
    generator = torch.Generator().manual_seed(cfg.seed)
    task = PairwiseTask(model, dataset, cfg, generator, device)
    score = user_score_fn(model, device)
    result = fit(
        kind, model, task,
        LoopSettings(cfg.epochs, cfg.batch_size, cfg.patience, rows_name="pairs", max_minutes=cfg.max_minutes),
        OPTIMIZERS[cfg.optimizer](model.parameters(), lr=cfg.lr), generator, device,
        validate=validator(score, dataset, cfg.eval_batch_size, device, cfg.validation_users),
        log_fn=log_fn, checkpoints=checkpoints,
    )  # fmt: skip
    return TrainedModel(
        kind=kind,
        config={"model": asdict(model_config), "train": cfg.as_dict()},
        state_dict=result.state_dict,
        history=result.history,
        summary={
            "best_epoch": result.best_epoch,
            "best_valid_ndcg_at_10": result.best_valid_ndcg_at_10,
            "epochs_run": len(result.history),
            "stop_reason": result.stop_reason,
            "train_pairs": task.num_rows,
            "train_seconds": sum(h["epoch_seconds"] for h in result.history),
        },
    )


def sized_config(dataset: SequenceDataset, given, hyperparameters_type):
    """A model config for ``dataset``: ``given`` as it is when it is one (sizes checked), else
    built from run-config hyperparameters (defaults when None)."""
    if given is None or isinstance(given, hyperparameters_type):
        return (given or hyperparameters_type()).sized(num_users=dataset.num_users, num_items=dataset.num_items)
    if (given.num_users, given.num_items) != (dataset.num_users, dataset.num_items):
        raise ValueError("model config sizes do not match the dataset")
    return given


def lrml_config(dataset: SequenceDataset, hyperparameters=None) -> LRMLConfig:
    return sized_config(dataset, hyperparameters, LRMLHyperparameters)


def train_lrml(
    dataset: SequenceDataset,
    model_config: LRMLConfig | LRMLHyperparameters | None = None,
    cfg: LRMLTrainConfig | None = None,
    device: torch.device | str = "cpu",
    log_fn: LogFn = no_logging,
    checkpoints: CheckpointStore | None = None,
    initial: TrainedModel | None = None,
) -> TrainedModel:
    """Train LRML; ``model_config`` is a full config or the hyperparameters (sized here).

    ``initial``: weights to start from (a warm start) instead of a fresh initialisation.
    """
    cfg = cfg or LRMLTrainConfig()
    model_config = lrml_config(dataset, model_config)
    seed_everything(cfg.seed)  # model initialisation uses the global generator
    model = LRML(model_config)
    if initial is not None:
        model.load_state_dict(initial.state_dict)
    return fit_pairwise(model, "lrml", model_config, dataset, cfg, device, log_fn, checkpoints)


def train_bpr(
    dataset: SequenceDataset,
    model_config: BPRConfig | BPRHyperparameters | None = None,
    cfg: BPRTrainConfig | None = None,
    device: torch.device | str = "cpu",
    log_fn: LogFn = no_logging,
    checkpoints: CheckpointStore | None = None,
    initial: TrainedModel | None = None,
) -> TrainedModel:
    """Train BPR-MF with the same sampler, loop, early stopping and checkpoints as LRML
    (``initial``: weights to start from, as for ``train_lrml``)."""
    cfg = cfg or BPRTrainConfig()
    model_config = sized_config(dataset, model_config, BPRHyperparameters)
    seed_everything(cfg.seed)
    model = BPRMF(model_config)
    if initial is not None:
        model.load_state_dict(initial.state_dict)
    return fit_pairwise(model, "bpr_mf", model_config, dataset, cfg, device, log_fn, checkpoints)

