"""The S3Rec authors' pretrained checkpoints (RUCAIBox/CIKM2020-S3Rec, ``reproduce/*.pt``) as
weights of this project's S3Rec, so finetuning can start from exactly what the paper finetuned.

Their encoder is the same network under other names (separate query/key/value projections
where this model has one fused ``qkv``). Their tables are indexed by the ids in the data files:
item ``i`` is row ``i``, the [MASK] item is ``max item + 1``, attribute ``a`` is row ``a``; this
project's rows follow its own id maps, so rows are looked up by id. The file is a plain state
dict and is read with ``weights_only=True``: nothing in it is executed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.s3rec import S3Rec
from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.training.trained_model import TrainedModel

# Their name -> ours, for every tensor that is not an id table or a split projection.
RENAMED = {
    "position_embeddings.weight": "position_embedding.weight",
    "LayerNorm.weight": "embedding_norm.weight",
    "LayerNorm.bias": "embedding_norm.bias",
    **{f"{objective}_norm.{part}": f"{objective}_head.{part}" for objective in ("aap", "mip", "map", "sp")
       for part in ("weight", "bias")},
}
LAYER_RENAMED = {
    "attention.dense": "attention.out",
    "attention.LayerNorm": "attention.norm",
    "intermediate.dense_1": "feed_forward.expand",
    "intermediate.dense_2": "feed_forward.contract",
    "intermediate.LayerNorm": "feed_forward.norm",
}


def official_state_dict(official: dict[str, torch.Tensor], dataset: SequenceDataset, model: S3Rec) -> dict:
    """``official`` (their state dict) mapped onto ``model``'s parameters for ``dataset``'s id maps."""
    state = {}
    for name, value in official.items():
        if name in RENAMED:
            state[RENAMED[name]] = value
    for layer in range(model.config.num_layers):
        theirs, ours = f"item_encoder.layer.{layer}.", f"blocks.{layer}."
        for part in ("weight", "bias"):
            state[f"{ours}attention.qkv.{part}"] = torch.cat(
                [official[f"{theirs}attention.{projection}.{part}"] for projection in ("query", "key", "value")]
            )
            for their_module, our_module in LAYER_RENAMED.items():
                state[f"{ours}{our_module}.{part}"] = official[f"{theirs}{their_module}.{part}"]

    items = official["item_embeddings.weight"]
    item_ids = dataset.item_map.sort_values("item_idx")["item_id"].to_numpy(dtype=np.int64)
    mask_row = items.shape[0] - 1  # their [MASK] id is the largest item id + 1, the table's last row
    if item_ids.max(initial=0) >= mask_row:
        raise ValueError(f"the checkpoint knows items up to {mask_row - 1}; the data has item {item_ids.max()}")
    rows = np.concatenate([[0], item_ids, [mask_row]])
    state["item_embedding.weight"] = items[torch.as_tensor(rows)].clone()
    state["item_embedding.weight"][0].zero_()  # padding: their code leaves it at its random init

    attributes = official["attribute_embeddings.weight"]
    values = dataset.attribute_vocab.sort_values("attr_idx")["value"].astype(int).to_numpy()
    if values.max(initial=0) >= attributes.shape[0]:
        raise ValueError(f"the checkpoint knows attributes up to {attributes.shape[0] - 1}; "
                         f"the data has attribute {values.max()}")  # fmt: skip
    state["attribute_embedding.weight"] = attributes[torch.as_tensor(np.concatenate([[0], values]))].clone()
    state["attribute_embedding.weight"][0].zero_()
    return state


def load_official_checkpoint(path: str | Path, dataset: SequenceDataset, model: S3Rec) -> TrainedModel:
    """The checkpoint at ``path`` as a pretrained TrainedModel for ``dataset`` (strictly loaded
    into ``model``, which it leaves holding the weights)."""
    official = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(official_state_dict(official, dataset, model), strict=True)
    return TrainedModel(
        kind="s3rec",
        config={"training": {"source": f"official checkpoint {Path(path).name}"}},
        state_dict={name: value.detach().clone() for name, value in model.state_dict().items()},
        summary={"official_checkpoint": str(path)},
    )
