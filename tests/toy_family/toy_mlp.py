"""A model added the way the README says: its torch module and one ``register`` call (here), its
training step (``toy_mlp_step``), and no step, scorer or serving code of the project touched.
Used by test_model_families.

A two-layer MLP from a user embedding to a score per item, trained with the pairwise loop (BPR
loss against sampled negatives) that LRML and BPR-MF use. The served model imports this module
(``family_module``) from its copy of this folder (``code_paths``), so serving needs no ZenML.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from movielens_pipeline.families import ModelFamily, ModelSpec, register, user_recommender
from movielens_pipeline.training.loop import no_logging
from movielens_pipeline.training.pairwise import PairwiseTrainConfig, fit_pairwise
from movielens_pipeline.training.runtime import seed_everything


@dataclass
class TwoLayerConfig:
    num_users: int
    num_items: int
    dim: int = 16
    hidden: int = 32


class TwoLayerMLP(nn.Module):
    def __init__(self, config: TwoLayerConfig):
        super().__init__()
        self.user_embedding = nn.Embedding(config.num_users + 1, config.dim)
        self.hidden = nn.Linear(config.dim, config.hidden)
        self.scores = nn.Linear(config.hidden, config.num_items + 1)

    def item_scores(self, users: torch.Tensor) -> torch.Tensor:
        return self.scores(F.relu(self.hidden(self.user_embedding(users))))

    def forward(self, users, positives, negatives):
        scores = self.item_scores(users)
        positive = scores.gather(1, positives[:, None])
        loss = -F.logsigmoid(positive - scores.gather(1, negatives)).mean()
        return loss, self.user_embedding(users).pow(2).sum(-1).mean()

    @torch.no_grad()
    def score_all_items(self, users: torch.Tensor) -> torch.Tensor:
        scores = self.item_scores(users)
        scores[:, 0] = float("-inf")
        return scores


def train(dataset, parameters: dict, log_fn=no_logging, pretrained=None):
    seed_everything(0)
    config = TwoLayerConfig(dataset.num_users, dataset.num_items, **parameters.get("model", {}))
    train_config = PairwiseTrainConfig(**{"epochs": 3, "patience": 3} | parameters.get("train", {}))
    return fit_pairwise(TwoLayerMLP(config), "toy_mlp", config, dataset, train_config, log_fn=log_fn)


register(
    ModelFamily("toy_mlp", lambda config: TwoLayerMLP(TwoLayerConfig(**config["model"])), user_recommender,
                {"user_embedding.weight": "user"}, family_module=__name__, code_paths=(str(Path(__file__).parent),)),
    ModelSpec("toy_mlp", "toy_mlp", train, "toy_family.toy_mlp_step.toy_mlp_train"),
)  # fmt: skip
