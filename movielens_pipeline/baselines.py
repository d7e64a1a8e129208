"""Reference recommenders to put LRML's figures in context: popularity, EASE and BPR-MF.

Each exposes a score function for metrics.full_ranking_ranks. Popularity and BPR-MF score from
what they learned on the training parts; EASE scores from the history it is handed, so at test
time it also sees the validation item, as a sequential model would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from movielens_pipeline.dataset import SequenceDataset
from movielens_pipeline.lrml_training import PairwiseTrainConfig, fit_pairwise, resolve_config
from movielens_pipeline.metrics import ScoreFn, seen_mask
from movielens_pipeline.training import CheckpointStore, LogFn, TrainedModel, no_logging, seed_everything


def popularity_score_fn(dataset: SequenceDataset) -> ScoreFn:
    """Every user gets the items' training-part interaction counts."""
    counts = torch.as_tensor(dataset.item_popularity(), dtype=torch.float32)

    def scores(user_indices: torch.Tensor, histories) -> torch.Tensor:
        return counts.to(user_indices.device).expand(len(user_indices), -1)

    return scores


# --- EASE (Steck, WWW 2019) -------------------------------------------------------------------


def interaction_matrix(histories, num_items: int) -> torch.Tensor:
    """Binary [len(histories), num_items + 1] float matrix of the items in each history."""
    return seen_mask(histories, num_items).float()


def fit_ease(dataset: SequenceDataset, l2: float = 300.0) -> torch.Tensor:
    """Item-item weights B [num_items + 1, num_items + 1] with a zero diagonal.

    Closed form: P = (X^T X + l2 I)^-1, B = I - P diag(1 / diag(P)). The dense inverse is
    fine up to some 20k items. Column 0 of X is always set by seen_mask; it is zeroed so
    padding takes no part.
    """
    interactions = interaction_matrix(dataset.train_sequences(), dataset.num_items).double()
    interactions[:, 0] = 0
    gram = interactions.T @ interactions
    gram.diagonal().add_(l2)
    precision = torch.linalg.inv(gram)
    weights = -precision / precision.diagonal()
    weights.diagonal().zero_()
    return weights.float()


def ease_score_fn(weights: torch.Tensor) -> ScoreFn:
    num_items = weights.shape[0] - 1

    def scores(user_indices: torch.Tensor, histories) -> torch.Tensor:
        history_rows = interaction_matrix(histories, num_items)
        history_rows[:, 0] = 0
        return history_rows @ weights

    return scores


# --- BPR matrix factorisation (Rendle et al., UAI 2009) ---------------------------------------


@dataclass
class BPRConfig:
    num_users: int
    num_items: int
    dim: int = 64
    init_std: float = 0.1


class BPRMF(nn.Module):
    """Dot-product matrix factorisation trained with the BPR loss -log sigmoid(s_pos - s_neg)."""

    def __init__(self, config: BPRConfig):
        super().__init__()
        self.config = config
        self.user_embedding = nn.Embedding(config.num_users + 1, config.dim, padding_idx=0)
        self.item_embedding = nn.Embedding(config.num_items + 1, config.dim, padding_idx=0)
        for table in (self.user_embedding.weight, self.item_embedding.weight):
            nn.init.normal_(table, std=config.init_std)
            with torch.no_grad():
                table[0].zero_()

    def forward(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Same contract as LRML.forward: (loss over B * n pairs, batch mean of squared norms)."""
        p = self.user_embedding(users)  # [B, d]
        q_pos = self.item_embedding(positives)  # [B, d]
        q_neg = self.item_embedding(negatives)  # [B, n, d]
        pos_score = (p * q_pos).sum(-1, keepdim=True)
        neg_score = (p.unsqueeze(1) * q_neg).sum(-1)
        loss = -F.logsigmoid(pos_score - neg_score).mean()
        squared_norms = (p.pow(2).sum(-1) + q_pos.pow(2).sum(-1) + q_neg.pow(2).sum((-2, -1))).mean()
        return loss, squared_norms

    @torch.no_grad()
    def score_all_items(self, users: torch.Tensor) -> torch.Tensor:
        scores = self.user_embedding(users) @ self.item_embedding.weight.T
        scores[:, 0] = float("-inf")
        return scores


@dataclass
class BPRTrainConfig(PairwiseTrainConfig):
    """BPR-MF keeps the shared defaults (Adam, lr 5e-3, no L2: best on MovieLens-100k validation)."""


def train_bpr(
    dataset: SequenceDataset,
    model_config: BPRConfig | dict | None = None,
    cfg: BPRTrainConfig | None = None,
    device: torch.device | str = "cpu",
    log_fn: LogFn = no_logging,
    checkpoints: CheckpointStore | None = None,
) -> TrainedModel:
    """Train BPR-MF with the same sampler, loop, early stopping and checkpoints as LRML."""
    cfg = cfg or BPRTrainConfig()
    model_config = resolve_config(BPRConfig, dataset, model_config)
    seed_everything(cfg.seed)
    return fit_pairwise(BPRMF(model_config), "bpr_mf", model_config, dataset, cfg, device, log_fn, checkpoints)


def trained_bpr(trained: TrainedModel) -> BPRMF:
    """The BPR-MF module holding a training run's best weights, in eval mode."""
    model = BPRMF(BPRConfig(**trained.config["model"]))
    model.load_state_dict(trained.state_dict)
    return model.eval()
