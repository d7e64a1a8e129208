"""The MLflow pyfunc every registered model is served through, logged from code (not pickled).

Request rows: ``user_id`` (MovieLens id, optional) and ``history`` (MovieLens item ids, oldest
first). Params: ``k`` (default 10) and ``exclude_seen`` (default true). Each answer row holds
the top-k item ids, titles and scores, best first, and ``fallback``: "popularity" when the model
had nothing to go on (no usable history for a sequential model, unknown user for a user-based
one), else "". Unknown ids are ignored.
"""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from movielens_pipeline.evaluation.scorers import load_recommender
from movielens_pipeline.training.trained_model import load_trained_model

MAX_K = 1000


def _invalid(message: str) -> MlflowException:
    # INVALID_PARAMETER_VALUE makes the scoring server answer 400 with this message.
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


class RecommenderModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.recommender = load_recommender(load_trained_model(context.artifacts["model"]))
        items = pd.read_parquet(context.artifacts["item_map"]).sort_values("item_idx")
        users = pd.read_parquet(context.artifacts["user_map"])
        self.item_index = dict(zip(items["item_id"].tolist(), items["item_idx"].tolist()))
        self.user_index = dict(zip(users["user_id"].tolist(), users["user_idx"].tolist()))
        self.num_items = len(items)
        # Position i holds item index i; index 0 is padding.
        self.item_ids = np.concatenate([[0], items["item_id"].to_numpy()])
        self.titles = np.concatenate([[""], items["title"].astype(str).to_numpy()])
        self.popularity = torch.as_tensor(
            np.concatenate([[0.0], items["popularity"].to_numpy(dtype=float)]), dtype=torch.float32
        )
        self.known_items = {
            int(u): np.asarray(h, dtype=np.int64) for u, h in zip(users["user_idx"], users["history"])
        }

    def _params(self, params: dict | None) -> tuple[int, bool]:
        params = params or {}
        k = params.get("k", 10)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise _invalid(f"param k must be an integer, got {k!r}")
        if not 1 <= k <= min(MAX_K, self.num_items):
            raise _invalid(f"param k must be between 1 and {min(MAX_K, self.num_items)}, got {k}")
        exclude_seen = params.get("exclude_seen", True)
        if not isinstance(exclude_seen, (bool, np.bool_)):
            raise _invalid(f"param exclude_seen must be true or false, got {exclude_seen!r}")
        return int(k), bool(exclude_seen)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        k, exclude_seen = self._params(params)
        if "history" not in model_input.columns:
            raise _invalid("input must have a 'history' column (a list of MovieLens item ids)")
        user_ids = model_input["user_id"] if "user_id" in model_input.columns else [None] * len(model_input)
        rows = []
        for user_id, history in zip(user_ids, model_input["history"]):
            history = [] if history is None else list(history)
            if any(isinstance(i, (bool, str)) or not float(i).is_integer() for i in history):
                raise _invalid(f"history must hold integer item ids, got {history!r}")
            known_history = np.array(
                [self.item_index[int(i)] for i in history if int(i) in self.item_index], dtype=np.int64
            )
            user_idx = self.user_index.get(int(user_id)) if _present(user_id) else None
            rows.append((user_id, user_idx, known_history))

        answers = []
        for user_id, user_idx, known_history in rows:
            usable = len(known_history) > 0 if self.recommender.uses_history else user_idx is not None
            if usable:
                scores = self.recommender.score_fn(
                    torch.tensor([user_idx or 0]), [known_history]
                )[0, : self.num_items + 1].float()
            else:
                scores = self.popularity.clone()
            scores[0] = float("-inf")
            if exclude_seen:
                seen = known_history
                if user_idx is not None and not self.recommender.uses_history:
                    seen = np.concatenate([seen, self.known_items.get(user_idx, [])]).astype(np.int64)
                scores[torch.as_tensor(seen, dtype=torch.long)] = float("-inf")
            top = scores.topk(k)
            finite = torch.isfinite(top.values)  # fewer than k unseen items are left
            idx = top.indices[finite].numpy()
            answers.append(
                {
                    "user_id": user_id if _present(user_id) else None,
                    "item_ids": self.item_ids[idx].astype(np.int64).tolist(),
                    "titles": self.titles[idx].tolist(),
                    "scores": top.values[finite].numpy().astype(float).tolist(),
                    "fallback": "" if usable else "popularity",
                }
            )
        return pd.DataFrame(answers)


mlflow.models.set_model(RecommenderModel())
