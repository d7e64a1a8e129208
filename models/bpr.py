"""BPR-MF: dot-product matrix factorisation trained with the BPR loss (Rendle et al., UAI 2009).

A reference point for LRML: same pairs, same negatives, same training loop, plain dot products.
Index 0 of both embedding tables is padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class BPRConfig:
    num_users: int
    num_items: int
    dim: int = 64
    init_std: float = 0.1


class BPRMF(nn.Module):
    """Scores s(u, i) = p_u . q_i; loss -log sigmoid(s(u, pos) - s(u, neg))."""

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
