"""LRML: Latent Relational Metric Learning (Tay, Tuan, Hui, WWW 2018).

Users and items live in one metric space. For a pair (user p, item q) a relation vector r is
read from a small memory: attention a = softmax((p * q) K) over N memory keys, r = a M with
M the N memory slots. The pair is scored by how well the relation translates the user onto the
item, s(p, q) = -sqrt(||p + r - q||^2 + eps), and trained with a pairwise hinge loss
relu(margin - s(p, q_pos) + s(p, q_neg)).

Relation used for a negative pair (``relation_for_negative``):
- ``"shared"``: the negative pair reuses the positive pair's relation, as in the authors' code.
  Cheaper, but training then never scores an item with the relation it gets at inference, where
  every (user, item) pair computes its own.
- ``"own"`` (default): the negative pair attends over the memory itself, exactly as at
  inference. On MovieLens-100k it reached validation NDCG@10 .066 against .049 for "shared".

Norm clipping follows the paper's projected updates: embedding rows are projected back into
the ball of radius ``clip_norm`` when a training batch uses them (before the forward pass, so
every step starts from a projected point), and scoring applies the same projection without
modifying the weights, so inference sees what training would see. ``memory_clip_norm`` (default
1.0) bounds the memory slots the same way (every step): a relation is a convex combination of the
slots, so it then stays on the embeddings' scale. Left unbounded (None), as in the authors' code,
the slots grow to norms near 11 against unit-ball embeddings while attention stays nearly
uniform: the relation becomes one large translation shared by every pair, and every user gets
the same ranking (an item's projection on it), which is popularity's.

``distance``: ``"l2"`` (the paper) or ``"l1"`` (an option of the authors' code).

``negative_reduction`` with n sampled negatives per positive: ``"mean"`` averages the hinge over
all n (the authors' code draws one), ``"hardest"`` (default) keeps only the highest-scored of the
n, the one closest to violating the margin, as CML approximates WARP: once most random negatives
are already beyond the margin, the mean's gradient fades while the hardest still carries one.

Index 0 of both embedding tables is padding and never trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

RELATION_OPTIONS = ("shared", "own")
DISTANCES = ("l2", "l1")
NEGATIVE_REDUCTIONS = ("mean", "hardest")


@dataclass
class LRMLConfig:
    num_users: int
    num_items: int
    dim: int = 64
    memory_slots: int = 20
    margin: float = 1.0
    clip_norm: float | None = 1.0  # None disables clipping
    eps: float = 1e-6  # keeps the gradient of sqrt finite when p + r == q
    relation_for_negative: str = "own"  # "shared" (authors' code) or "own"; see module docstring
    init_std: float = 0.1
    memory_clip_norm: float | None = 1.0  # radius of the memory slots' ball; None: unbounded
    distance: str = "l2"  # "l2" or "l1"
    negative_reduction: str = "hardest"  # or "mean", over a positive's sampled negatives

    def __post_init__(self):
        if self.relation_for_negative not in RELATION_OPTIONS:
            raise ValueError(f"relation_for_negative must be one of {RELATION_OPTIONS}")
        if self.distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}")
        if self.negative_reduction not in NEGATIVE_REDUCTIONS:
            raise ValueError(f"negative_reduction must be one of {NEGATIVE_REDUCTIONS}")


def _project_to_ball(vectors: torch.Tensor, radius: float | None) -> torch.Tensor:
    """Rows scaled down to norm ``radius`` where longer; shorter rows are unchanged."""
    if radius is None:
        return vectors
    norms = vectors.norm(dim=-1, keepdim=True)
    return vectors * (radius / norms.clamp_min(radius))


class LRML(nn.Module):
    def __init__(self, config: LRMLConfig):
        super().__init__()
        self.config = config
        d, n = config.dim, config.memory_slots
        self.user_embedding = nn.Embedding(config.num_users + 1, d, padding_idx=0)
        self.item_embedding = nn.Embedding(config.num_items + 1, d, padding_idx=0)
        self.memory_keys = nn.Parameter(torch.empty(d, n))  # K
        self.memory_slots = nn.Parameter(torch.empty(n, d))  # M
        for weight in (self.user_embedding.weight, self.item_embedding.weight, self.memory_keys, self.memory_slots):
            nn.init.normal_(weight, std=config.init_std)
        with torch.no_grad():
            self.user_embedding.weight[0].zero_()
            self.item_embedding.weight[0].zero_()
            for table in (self.user_embedding.weight, self.item_embedding.weight):
                table.copy_(_project_to_ball(table, config.clip_norm))

    # --- the model, pair by pair -------------------------------------------------------------

    def relation(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """r = softmax((p * q) K) M for broadcastable user and item vectors [..., d]."""
        attention = torch.softmax((users * items) @ self.memory_keys, dim=-1)
        return attention @ self.memory_slots

    def distance_score(self, users: torch.Tensor, relations: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """s = -sqrt(||p + r - q||^2 + eps) (or -||p + r - q||_1) over the last dimension."""
        gap = users + relations - items
        if self.config.distance == "l1":
            return -gap.abs().sum(dim=-1)
        return -torch.sqrt(gap.pow(2).sum(dim=-1) + self.config.eps)

    @torch.no_grad()
    def clip_rows_(self, users: torch.Tensor, items: torch.Tensor) -> None:
        """Project the given user and item rows (and the memory slots) into their balls, in place."""
        if self.config.memory_clip_norm is not None:
            self.memory_slots.copy_(_project_to_ball(self.memory_slots, self.config.memory_clip_norm))
        if self.config.clip_norm is None:
            return
        for table, rows in ((self.user_embedding.weight, users), (self.item_embedding.weight, items)):
            rows = rows.unique()
            table[rows] = _project_to_ball(table[rows], self.config.clip_norm)

    def forward(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pairwise loss of a batch.

        users [B], positives [B], negatives [B, n] (n sampled negatives per positive).
        Returns (hinge loss averaged over the B * n (positive, negative) pairs, or over the B
        hardest ones with ``negative_reduction: hardest``,
        mean over the batch of the squared norms of the embedding rows it used), the second
        term for optional L2 regularisation restricted to the batch's rows.
        """
        if self.training:
            self.clip_rows_(users, torch.cat([positives, negatives.flatten()]))
        p = self.user_embedding(users)  # [B, d]
        q_pos = self.item_embedding(positives)  # [B, d]
        q_neg = self.item_embedding(negatives)  # [B, n, d]

        r_pos = self.relation(p, q_pos)
        pos_score = self.distance_score(p, r_pos, q_pos)  # [B]
        p_wide = p.unsqueeze(1)
        scored = q_neg
        if self.config.negative_reduction == "hardest":
            # Only the hardest negative gets a gradient, so the n candidates are scored without
            # building a graph and only the chosen one is scored again with it.
            with torch.no_grad():
                pick = self._negative_scores(p_wide, r_pos, q_neg).argmax(dim=1, keepdim=True)  # [B, 1]
            scored = q_neg.gather(1, pick.unsqueeze(-1).expand(-1, -1, q_neg.shape[-1]))  # [B, 1, d]
        neg_score = self._negative_scores(p_wide, r_pos, scored)  # [B, n] or [B, 1]
        hinge = F.relu(self.config.margin - pos_score.unsqueeze(1) + neg_score).mean()
        squared_norms = (p.pow(2).sum(-1) + q_pos.pow(2).sum(-1) + q_neg.pow(2).sum((-2, -1))).mean()
        return hinge, squared_norms

    def _negative_scores(self, p_wide: torch.Tensor, r_pos: torch.Tensor, q_neg: torch.Tensor) -> torch.Tensor:
        """Scores [B, n] of the negatives q_neg [B, n, d] for users p_wide [B, 1, d]."""
        if self.config.relation_for_negative == "shared":
            r_neg = r_pos.unsqueeze(1)
        else:
            r_neg = self.relation(p_wide, q_neg)
        return self.distance_score(p_wide, r_neg, q_neg)

    # --- ranking every item --------------------------------------------------------------------

    @torch.no_grad()
    def score_all_items(self, users: torch.Tensor, max_chunk_elements: int = 1 << 20) -> torch.Tensor:
        """Scores [B, num_items + 1] of every item for each user; column 0 (padding) is -inf.

        Items are processed in chunks so no intermediate exceeds about ``max_chunk_elements``
        values (4 MB: each chunk's half-dozen elementwise passes then mostly hit the cache; 4x
        that ran 23% slower on 2 cores), whatever the catalogue size. Within a chunk nothing of size B x items x d is
        formed: with r = a M the squared distance expands to
            ||p||^2 + ||q||^2 - 2 p.q + a (M M^T) a^T + 2 a . (M p - M q),
        where only the attention a is per pair ([B, C, N], N memory slots), and the attention
        logits (p * q) K are one matrix product of p with the item-specific matrix q * K.
        """
        cfg = self.config
        p = _project_to_ball(self.user_embedding(users), cfg.clip_norm)  # [B, d]
        items = _project_to_ball(self.item_embedding.weight, cfg.clip_norm)  # [I, d]
        keys, slots = self.memory_keys, _project_to_ball(self.memory_slots, cfg.memory_clip_norm)  # [d, N], [N, d]
        if cfg.distance == "l1":
            return self._score_all_items_l1(p, items, slots, max_chunk_elements)
        num_users, dim, num_slots = p.shape[0], cfg.dim, cfg.memory_slots

        slot_gram = slots @ slots.T  # [N, N]
        user_slot = (p @ slots.T).unsqueeze(1)  # [B, 1, N]: M p
        user_sq = p.pow(2).sum(-1, keepdim=True)  # [B, 1]
        chunk = max(1, max_chunk_elements // (num_users * num_slots))
        scores = torch.empty(num_users, items.shape[0], device=p.device)
        for start in range(0, items.shape[0], chunk):
            q = items[start : start + chunk]  # [C, d]
            keyed = (q.unsqueeze(2) * keys).permute(1, 0, 2).reshape(dim, -1)  # [d, C*N]
            attention = torch.softmax((p @ keyed).view(num_users, -1, num_slots), dim=-1)  # [B, C, N]
            # ||r||^2 + 2 r.(p - q) = a . (a M M^T + 2 (M p - M q))
            relation_terms = ((attention @ slot_gram + 2 * (user_slot - q @ slots.T)) * attention).sum(-1)
            squared = user_sq + q.pow(2).sum(-1) - 2 * (p @ q.T) + relation_terms
            # The expansion can round slightly below zero where the true distance is ~0.
            scores[:, start : start + chunk] = -torch.sqrt(squared.clamp_min(0) + cfg.eps)
        scores[:, 0] = float("-inf")
        return scores

    def _score_all_items_l1(self, p: torch.Tensor, items: torch.Tensor, slots: torch.Tensor,
                            max_chunk_elements: int) -> torch.Tensor:  # fmt: skip
        """The L1 distance has no expansion: each pair's relation is formed, in item chunks of
        about ``max_chunk_elements`` values of [B, C, d]."""
        num_users = p.shape[0]
        chunk = max(1, max_chunk_elements // (num_users * self.config.dim))
        scores = torch.empty(num_users, items.shape[0], device=p.device)
        for start in range(0, items.shape[0], chunk):
            q = items[start : start + chunk].unsqueeze(0)  # [1, C, d]
            users = p.unsqueeze(1)  # [B, 1, d]
            relation = torch.softmax((users * q) @ self.memory_keys, dim=-1) @ slots  # [B, C, d]
            scores[:, start : start + chunk] = -(users + relation - q).abs().sum(-1)
        scores[:, 0] = float("-inf")
        return scores
