"""Warm start: initialise a model for today's data from a registered model trained on older data.

Tensors indexed by user or item id are copied row by row for the ids both datasets know; new
users and items keep their fresh initialisation (the tables grow). Every other tensor is copied
when its shape matches (attribute tables, whose vocabulary may have changed, are left fresh).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.families import family_of
from movielens_pipeline.serving.registry import RegisteredRecommender
from movielens_pipeline.training.trained_model import TrainedModel

logger = logging.getLogger(__name__)


def shared_rows(old_map: pd.DataFrame, new_map: pd.DataFrame, id_column: str, idx_column: str):
    """(old indices, new indices) of the ids present in both maps."""
    joined = old_map[[id_column, idx_column]].merge(
        new_map[[id_column, idx_column]], on=id_column, suffixes=("_old", "_new")
    )
    return (
        torch.as_tensor(joined[f"{idx_column}_old"].to_numpy(dtype=np.int64)),
        torch.as_tensor(joined[f"{idx_column}_new"].to_numpy(dtype=np.int64)),
    )


def warm_state_dict(
    fresh: dict[str, torch.Tensor], previous: RegisteredRecommender, dataset: SequenceDataset
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """``fresh`` (a new model's state, sized for ``dataset``) with everything ``previous`` can give.

    Returns the state and counts of what was carried over, for the logs.
    """
    old = previous.trained.state_dict
    rows = {
        "item": shared_rows(previous.items, dataset.item_map, "item_id", "item_idx"),
        "user": shared_rows(previous.users, dataset.user_map, "user_id", "user_idx"),
    }
    special_rows = {"item": len(previous.items) + 1, "user": len(previous.users) + 1}
    state = {name: tensor.clone() for name, tensor in fresh.items()}
    carried = {"tensors_copied": 0, "users_carried": len(rows["user"][0]), "items_carried": len(rows["item"][0])}
    for name, tensor in state.items():
        if name not in old or old[name].shape[1:] != tensor.shape[1:]:
            continue
        # Tables with one row per user or item (row 0 = padding; S3Rec's item table ends with one
        # extra [MASK] row), as the model's family declares them.
        table = family_of(previous.trained.kind).id_tables.get(name)
        if table is not None:
            old_rows, new_rows = rows[table]
            tensor[new_rows] = old[name][old_rows].to(tensor.dtype)
            extra = old[name].shape[0] - special_rows[table]  # trailing special tokens, e.g. [MASK]
            if extra > 0:
                tensor[-extra:] = old[name][-extra:]
            carried["tensors_copied"] += 1
        elif old[name].shape == tensor.shape:
            state[name] = old[name].clone()
            carried["tensors_copied"] += 1
    return state, carried


def warm_start(
    previous: RegisteredRecommender | None, model: torch.nn.Module, dataset: SequenceDataset
) -> tuple[TrainedModel | None, dict[str, int]]:
    """Initial weights for ``model`` from a registered model (None: a cold start), and counts of
    what was carried over."""
    if previous is None:
        return None, {}
    state, carried = warm_state_dict(model.state_dict(), previous, dataset)
    logger.info("warm start (%s): %s", previous.trained.kind, carried)
    return TrainedModel(kind=previous.trained.kind, config=previous.trained.config, state_dict=state), carried
