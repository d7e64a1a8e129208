"""S3-Rec: self-supervised pretraining for sequential recommendation (Zhou et al., CIKM 2020).

One transformer encoder is shared by two phases:
- pretraining, with bidirectional attention, on four mutual-information objectives: associated
  attribute prediction (AAP), masked item prediction (MIP), masked attribute prediction (MAP)
  and segment prediction (SP);
- finetuning, with causal attention (SASRec-style): every position predicts the next item by a
  dot product with the item embedding table.

Sequences are padded on the left, so the last position always holds the most recent item.
Item index 0 is padding and ``num_items + 1`` is the [MASK] token; attribute index 0 is padding.

As in the paper, MIP and SP score a candidate with a sigmoid and feed the difference of the
positive's and the negative's probabilities to a second sigmoid (a pairwise BCE). The
pretraining losses are sums over their terms, like the reference, so the objective weights act
on the same scale as there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

FINETUNE_LOSSES = ("ce", "bce", "sampled_softmax")


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout, 0 <= p < 1. On CPU the keep mask comes from 16 random bits per element,
    cut from 64-bit draws (p rounded to 1/65536): the bernoulli sampler behind ``F.dropout``
    costs about 4x as much there and took 40% of a pretraining step on 2 cores. Other devices
    keep the fused kernel."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    dropped = round(p * 65536)
    words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
    bits = words.view(torch.int16)[: x.numel()].view(x.shape)
    return x * ((bits >= dropped - 32768).to(x.dtype) * (65536 / (65536 - dropped)))


class Dropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


@dataclass
class S3RecConfig:
    num_items: int
    num_attributes: int
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    max_len: int = 50
    hidden_dropout: float = 0.5
    attention_dropout: float = 0.5
    init_std: float = 0.02
    layer_norm_eps: float = 1e-12

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be a multiple of num_heads")
        for name in ("hidden_dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


class SelfAttention(nn.Module):
    """Multi-head self-attention with a residual connection and post-LayerNorm (BERT-style)."""

    def __init__(self, config: S3RecConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.attention_dropout = config.attention_dropout
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = Dropout(config.hidden_dropout)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """[B, L, H] -> [B, L, H], or [B, 1, H] for the last position alone with ``last_only``."""
        batch, length, hidden = x.shape
        heads = self.qkv(x).view(batch, length, 3, self.num_heads, hidden // self.num_heads)
        query, key, value = heads.permute(2, 0, 3, 1, 4)  # each [B, heads, L, head_dim]
        if last_only:
            query, allowed, x = query[:, :, -1:], allowed[..., -1:, :], x[:, -1:]
        attended = self._attend(query, key, value, allowed).transpose(1, 2).reshape(batch, x.size(1), hidden)
        return self.norm(x + self.dropout(self.out(attended)))

    def _attend(self, query, key, value, allowed: torch.Tensor) -> torch.Tensor:
        dropping = self.training and self.attention_dropout > 0
        if not dropping or query.device.type != "cpu":
            return F.scaled_dot_product_attention(
                query, key, value, attn_mask=allowed, dropout_p=self.attention_dropout if dropping else 0.0
            )
        # On CPU the attention weights are dropped here, with the cheaper mask of ``dropout``.
        scores = (query @ key.transpose(-2, -1)) * query.size(-1) ** -0.5
        weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        return dropout(weights, self.attention_dropout, training=True) @ value


class FeedForward(nn.Module):
    def __init__(self, config: S3RecConfig):
        super().__init__()
        self.expand = nn.Linear(config.hidden_size, 4 * config.hidden_size)
        self.contract = nn.Linear(4 * config.hidden_size, config.hidden_size)
        self.dropout = Dropout(config.hidden_dropout)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout(self.contract(F.gelu(self.expand(x)))))


class Block(nn.Module):
    def __init__(self, config: S3RecConfig):
        super().__init__()
        self.attention = SelfAttention(config)
        self.feed_forward = FeedForward(config)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        return self.feed_forward(self.attention(x, allowed, last_only))


class S3Rec(nn.Module):
    def __init__(self, config: S3RecConfig):
        super().__init__()
        self.config = config
        hidden = config.hidden_size
        self.item_embedding = nn.Embedding(config.num_items + 2, hidden, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_len, hidden)
        self.attribute_embedding = nn.Embedding(config.num_attributes + 1, hidden, padding_idx=0)
        self.embedding_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.embedding_dropout = Dropout(config.hidden_dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.aap_head = nn.Linear(hidden, hidden)
        self.mip_head = nn.Linear(hidden, hidden)
        self.map_head = nn.Linear(hidden, hidden)
        self.sp_head = nn.Linear(hidden, hidden)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.init_std)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    # --- encoder -------------------------------------------------------------------------------

    def encode(self, items: torch.Tensor, causal: bool, last_only: bool = False) -> torch.Tensor:
        """Hidden states [B, L, H] of left-padded item sequences [B, L], L <= max_len; with
        ``last_only`` [B, 1, H] of the last position (its last block skips the other positions).

        Positions count back from the end (the last item is always at max_len - 1), so a batch
        padded only to its longest row encodes exactly as one padded to max_len.
        """
        length = items.size(1)
        positions = torch.arange(self.config.max_len - length, self.config.max_len, device=items.device)
        x = self.item_embedding(items) + self.position_embedding(positions)
        x = self.embedding_dropout(self.embedding_norm(x))
        allowed = (items != 0)[:, None, None, :]  # padding is never attended to
        if causal:
            allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=items.device).tril()
        # A padding query would otherwise have no key at all (a NaN row); its output is never read.
        allowed = allowed | torch.eye(length, dtype=torch.bool, device=items.device)
        for depth, block in enumerate(self.blocks, start=1):
            x = block(x, allowed, last_only=last_only and depth == len(self.blocks))
        return x

    # --- pretraining objectives (bidirectional encoder outputs) -------------------------------

    def associated_attribute_loss(
        self, hidden: torch.Tensor, attribute_targets: torch.Tensor, attribute_ids: torch.Tensor
    ) -> torch.Tensor:
        """AAP: summed multi-label BCE of each unmasked position's item attributes.

        ``hidden`` [N, H] at unmasked real positions, ``attribute_targets`` [N, A] multi-hot of
        their items over the candidate attributes ``attribute_ids`` [A].
        """
        return self._attribute_loss(self.aap_head, hidden, attribute_targets, attribute_ids)

    def masked_attribute_loss(
        self, hidden: torch.Tensor, attribute_targets: torch.Tensor, attribute_ids: torch.Tensor
    ) -> torch.Tensor:
        """MAP: as AAP, with its own head, for the attributes of the items at masked positions."""
        return self._attribute_loss(self.map_head, hidden, attribute_targets, attribute_ids)

    def masked_item_loss(
        self, hidden: torch.Tensor, positive_items: torch.Tensor, negative_items: torch.Tensor
    ) -> torch.Tensor:
        """MIP: summed pairwise loss of the masked item [N] against one negative item [N]."""
        projected = self.mip_head(hidden)
        return self._pairwise_loss(
            projected, self.item_embedding(positive_items), self.item_embedding(negative_items)
        )

    def segment_loss(
        self, context: torch.Tensor, positive_segment: torch.Tensor, negative_segment: torch.Tensor
    ) -> torch.Tensor:
        """SP: summed pairwise loss of the held-out segment against another sequence's segment.

        All three inputs are [N, L]: the sequence with its segment replaced by [MASK], the
        segment alone in place (everything else [MASK]), and the same with a foreign segment.
        Each is represented by its last position's hidden state.
        """
        summaries = self.encode(torch.cat([context, positive_segment, negative_segment]), causal=False)[:, -1]
        context_summary, positive_summary, negative_summary = summaries.chunk(3)
        return self._pairwise_loss(self.sp_head(context_summary), positive_summary, negative_summary)

    def _attribute_loss(
        self, head: nn.Linear, hidden: torch.Tensor, targets: torch.Tensor, attribute_ids: torch.Tensor
    ) -> torch.Tensor:
        logits = head(hidden) @ self.attribute_embedding(attribute_ids).T
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="sum")

    @staticmethod
    def _pairwise_loss(projected: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        positive_probability = torch.sigmoid((projected * positive).sum(-1).float())
        negative_probability = torch.sigmoid((projected * negative).sum(-1).float())
        return F.softplus(negative_probability - positive_probability).sum()  # BCE(sigmoid(diff), 1)

    # --- finetuning and inference (causal encoder) --------------------------------------------

    def next_item_loss(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        loss: str = "ce",
        negatives: torch.Tensor | None = None,
        log_q: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean next-item loss over the real positions of left-padded ``inputs`` [B, L].

        ``targets`` [B, L] holds the item following each input position.
        - ``"ce"``: softmax cross-entropy over every real item;
        - ``"bce"``: target against ``negatives`` [B, L], one sampled item per position;
        - ``"sampled_softmax"``: softmax over the target and ``negatives`` [K], drawn once for the
          whole batch from a proposal whose log-probabilities per item are ``log_q``
          [num_items + 1]; every logit is corrected by -log q (the logQ correction, so the loss
          estimates the full softmax's), and a negative equal to a position's target is left out.
        """
        hidden = self.encode(inputs, causal=True)
        real = inputs != 0
        hidden, targets = hidden[real], targets[real]
        if loss == "ce":
            logits = hidden @ self.item_embedding.weight[1 : self.config.num_items + 1].T
            return F.cross_entropy(logits.float(), targets - 1)
        if negatives is None:
            raise ValueError(f"the {loss!r} loss needs sampled negatives")
        if loss == "bce":
            positive_logits = (hidden * self.item_embedding(targets)).sum(-1).float()
            negative_logits = (hidden * self.item_embedding(negatives[real])).sum(-1).float()
            return (F.softplus(-positive_logits) + F.softplus(negative_logits)).mean()
        if loss == "sampled_softmax":
            if log_q is None:
                raise ValueError("the 'sampled_softmax' loss needs the proposal's log_q")
            positive = (hidden * self.item_embedding(targets)).sum(-1).float() - log_q[targets]
            negative = (hidden @ self.item_embedding(negatives).T).float() - log_q[negatives]
            negative = negative.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
            logits = torch.cat([positive[:, None], negative], dim=1)
            return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))
        raise ValueError(f"loss must be one of {FINETUNE_LOSSES}")

    def next_item_query(self, histories: torch.Tensor) -> torch.Tensor:
        """The vector [B, hidden] that each item's embedding is scored against: the causal
        encoding of the last position of left-padded histories [B, L]."""
        return self.encode(histories, causal=True, last_only=True)[:, -1]

    def item_vectors(self) -> torch.Tensor:
        """Embeddings [num_items + 1, hidden] of padding and the real items ([MASK] dropped)."""
        return self.item_embedding.weight[: self.config.num_items + 1]

    def score_items(self, histories: torch.Tensor) -> torch.Tensor:
        """Next-item scores [B, num_items + 1] for left-padded histories [B, L] ([MASK] dropped)."""
        return self.next_item_query(histories) @ self.item_vectors().T
