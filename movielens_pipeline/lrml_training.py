"""Training LRML (and other pairwise implicit-feedback models) on the training part of sequences.

Each user's training items become implicit-feedback (user, item) pairs; every epoch visits them
in a fresh random order, with negatives drawn uniformly from the items the user never
interacted with in training. All randomness after model initialisation comes from one
dedicated torch.Generator whose state is checkpointed, so a resumed job continues exactly as
an uninterrupted one would (on CPU).

A pairwise model is any nn.Module with
- ``forward(users [B], positives [B], negatives [B, n]) -> (ranking_loss, squared_norms)``,
  squared_norms being the batch's embedding norms that ``l2`` multiplies, and
- ``score_all_items(users [B]) -> [B, num_items + 1]``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn

from models.lrml import LRML, LRMLConfig
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

OPTIMIZERS = {"adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad, "sgd": torch.optim.SGD}


@dataclass
class PairwiseTrainConfig:
    """What every pairwise model shares: the budget (epochs, batch, negatives, patience) and
    the optimiser settings, whose defaults each model's subclass tunes."""

    epochs: int = 40
    batch_size: int = 1024
    lr: float = 5e-3
    optimizer: str = "adam"  # one of OPTIMIZERS
    negatives_per_positive: int = 5
    l2: float = 0.0  # weight of the squared norms of the embedding rows a batch uses
    patience: int = 8  # epochs without a better validation NDCG@10 before stopping
    seed: int = 42
    eval_batch_size: int = 512


@dataclass
class LRMLTrainConfig(PairwiseTrainConfig):
    """LRML's defaults: Adagrad 0.05 had the best MovieLens-100k validation NDCG@10 of the
    settings tried (notes in benchmarks/lrml_ml100k.py), if only by about one seed's noise."""

    lr: float = 0.05
    optimizer: str = "adagrad"


def training_pairs(dataset: SequenceDataset) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, item) pairs of the training parts, as two int64 arrays sorted by user, item."""
    sequences = dataset.train_sequences()
    users = np.repeat(dataset.user_indices, [len(s) for s in sequences])
    items = np.concatenate(sequences) if sequences else np.zeros(0, dtype=np.int64)
    pair_keys = np.unique(users * (dataset.num_items + 1) + items)
    return pair_keys // (dataset.num_items + 1), pair_keys % (dataset.num_items + 1)


class NegativeSampler:
    """Uniform item draws that avoid each user's training positives, vectorized.

    Positives are kept as sorted keys user * (num_items + 1) + item; a batch of draws is
    checked with one binary search and only the colliding draws are drawn again, so the
    Python loop runs once per round (a handful), never once per pair.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, num_items: int):
        self.num_items = num_items
        self.positive_keys = torch.from_numpy(np.unique(users * (num_items + 1) + items))
        positives_per_user = np.bincount(users)
        if positives_per_user.max(initial=0) >= num_items:
            raise ValueError("a user has interacted with every item: no negative exists")

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        keys = users * (self.num_items + 1) + items
        where = torch.searchsorted(self.positive_keys, keys).clamp(max=len(self.positive_keys) - 1)
        return self.positive_keys[where] == keys

    def sample(self, users: torch.Tensor, per_user: int, generator: torch.Generator) -> torch.Tensor:
        """[len(users), per_user] items none of which is a training positive of its row's user."""
        users = users.unsqueeze(1).expand(-1, per_user)
        items = torch.randint(1, self.num_items + 1, users.shape, generator=generator)
        clash = self.is_positive(users, items)
        while clash.any():
            items[clash] = torch.randint(1, self.num_items + 1, (int(clash.sum()),), generator=generator)
            clash = self.is_positive(users, items)
        return items


def score_fn(model: nn.Module, device: torch.device | str = "cpu") -> ScoreFn:
    """Scores for metrics.full_ranking_ranks: the model ignores histories (users are embedded)."""

    def scores(user_indices: torch.Tensor, histories) -> torch.Tensor:
        model.eval()
        return model.score_all_items(user_indices.to(device))

    return scores


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
    """Train a pairwise model with early stopping on validation NDCG@10; returns the best weights.

    A checkpoint (weights, optimizer, sampler generator, early-stopping state, history) is
    written after every epoch; when ``checkpoints`` holds one from a killed run of the same job,
    training resumes after its last completed epoch. The file is removed once training ends.
    """
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}")
    users, items = training_pairs(dataset)
    sampler = NegativeSampler(users, items, dataset.num_items)
    users, items = torch.from_numpy(users), torch.from_numpy(items)

    model.to(device)
    optimizer = OPTIMIZERS[cfg.optimizer](model.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    stopper = EarlyStopping(patience=cfg.patience)
    history: list[dict] = []
    first_epoch, finished = 1, False

    saved = checkpoints.load() if checkpoints else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        stopper.restore(saved["early_stopping"])
        history, first_epoch, finished = saved["history"], saved["epoch"] + 1, saved["finished"]
        logger.info("%s: resumed after epoch %d", kind, saved["epoch"])

    for epoch in range(first_epoch, cfg.epochs + 1):
        if finished:
            break
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(users), generator=generator)
        loss_sum = torch.zeros((), device=device)
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            negatives = sampler.sample(users[batch], cfg.negatives_per_positive, generator)
            ranking_loss, squared_norms = model(users[batch].to(device), items[batch].to(device), negatives.to(device))
            loss = ranking_loss + cfg.l2 * squared_norms if cfg.l2 else ranking_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(batch)
        epoch_seconds = time.perf_counter() - started

        started = time.perf_counter()
        valid = validation_metrics(score_fn(model, device), dataset, cfg.eval_batch_size, device)
        record = {
            "epoch": epoch,
            "loss": float(loss_sum) / len(users),
            "valid_hit_at_10": valid["hit_at_10"],
            "valid_ndcg_at_10": valid["ndcg_at_10"],
            "epoch_seconds": epoch_seconds,
            "pairs_per_second": len(users) / epoch_seconds,  # positive pairs, each with its negatives
            "valid_seconds": time.perf_counter() - started,
        }
        history.append(record)
        finished = stopper.update(valid["ndcg_at_10"], epoch, model) or epoch == cfg.epochs
        logger.info(
            "%s epoch %d: loss %.4f valid HR@10 %.4f NDCG@10 %.4f (%.1fs, %.0f pairs/s)",
            kind, epoch, record["loss"], record["valid_hit_at_10"], record["valid_ndcg_at_10"],
            epoch_seconds, record["pairs_per_second"],
        )  # fmt: skip
        log_fn({k: v for k, v in record.items() if k != "epoch"}, epoch)
        if checkpoints:
            checkpoints.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(),
                    "early_stopping": stopper.state(),
                    "history": history,
                    "epoch": epoch,
                    "finished": finished,
                }
            )

    if checkpoints:
        checkpoints.clear()
    return TrainedModel(
        kind=kind,
        config={"model": asdict(model_config), "train": asdict(cfg)},
        state_dict=stopper.best_state,
        history=history,
        summary={
            "best_epoch": stopper.best_epoch,
            "best_valid_ndcg_at_10": stopper.best_value,
            "epochs_run": len(history),
            "train_pairs": len(users),
            "train_seconds": sum(h["epoch_seconds"] for h in history),
        },
    )


def resolve_config(config_type: type, dataset: SequenceDataset, config_or_overrides):
    """A model config sized for the dataset, from a full config or a dict of overrides."""
    if isinstance(config_or_overrides, config_type):
        if (config_or_overrides.num_users, config_or_overrides.num_items) != (dataset.num_users, dataset.num_items):
            raise ValueError("model config sizes do not match the dataset")
        return config_or_overrides
    return config_type(num_users=dataset.num_users, num_items=dataset.num_items, **(config_or_overrides or {}))


def trained_lrml(trained: TrainedModel) -> LRML:
    """The LRML module holding a training run's best weights, in eval mode."""
    model = LRML(LRMLConfig(**trained.config["model"]))
    model.load_state_dict(trained.state_dict)
    return model.eval()


def train_lrml(
    dataset: SequenceDataset,
    model_config: LRMLConfig | dict | None = None,
    cfg: LRMLTrainConfig | None = None,
    device: torch.device | str = "cpu",
    log_fn: LogFn = no_logging,
    checkpoints: CheckpointStore | None = None,
    initial: TrainedModel | None = None,
) -> TrainedModel:
    """Train LRML; ``model_config`` is an LRMLConfig or a dict overriding its defaults.

    ``initial``: weights to start from (a warm start) instead of a fresh initialisation.
    """
    cfg = cfg or LRMLTrainConfig()
    model_config = resolve_config(LRMLConfig, dataset, model_config)
    seed_everything(cfg.seed)  # model initialisation uses the global generator
    model = LRML(model_config)
    if initial is not None:
        model.load_state_dict(initial.state_dict)
    return fit_pairwise(model, "lrml", model_config, dataset, cfg, device, log_fn, checkpoints)
