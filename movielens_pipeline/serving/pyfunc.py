"""The MLflow pyfunc every registered model is served through, logged from code (not pickled).

Request rows: ``user_id`` (MovieLens id, optional integer) and ``history`` (MovieLens item ids,
oldest first). Params: ``k`` (default 10) and ``exclude_seen`` (default true). Each answer row
holds the top-k item ids, titles and scores, best first, and ``fallback``: "popularity" when the
model had nothing to go on (no usable history for a sequential model, unknown user for a
user-based one), else "". Unknown item ids are ignored. A known user who sends no history is
answered from the history stored with the model, and every item a known user rated is excluded
(with ``exclude_seen``), whatever the architecture.

Rows are scored in batches, one forward pass per batch; a dot-product model's best items are
found block by block over the catalogue (``top_items``), never as a full score matrix. A
request holds at most ``MAX_ROWS`` rows of at most ``MAX_HISTORY`` items each; anything over a
limit, a non-integral or out-of-range id and a bad param get a 400 answer that names the row
and the value.
"""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from movielens_pipeline.data.ragged import Ragged, join_rows
from movielens_pipeline.evaluation.metrics import DotProductScorer
from movielens_pipeline.evaluation.top_items import top_items_by_dot_product, top_k_of_scores
from movielens_pipeline.families import import_family, load_recommender
from movielens_pipeline.training.trained_model import load_trained_model

MAX_K = 1000
MAX_ROWS = 10_000
MAX_HISTORY = 10_000
BATCH_ROWS = 256
LARGEST_ID = 2**63 - 1


def _invalid(message: str) -> MlflowException:
    # INVALID_PARAMETER_VALUE makes the scoring server answer 400 with this message.
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def parse_user_id(value, row: int) -> int | None:
    """A request's user id as an int (None when absent); anything else is a 400."""
    if _is_missing(value):
        return None
    if not isinstance(value, (bool, np.bool_, str)):
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            number = math.nan
        if math.isfinite(number) and number.is_integer() and 0 <= number <= LARGEST_ID:
            return int(value) if isinstance(value, (int, np.integer)) else int(number)
    raise _invalid(f"row {row}: user_id must be an integer id between 0 and {LARGEST_ID}, got {value!r}")


def parse_history(value, row: int) -> np.ndarray:
    """A request's history as int64 item ids; anything else is a 400."""
    history = np.asarray([] if value is None else value)
    if history.ndim != 1:
        raise _invalid(f"row {row}: history must be a list of integer item ids, got {value!r}")
    if len(history) > MAX_HISTORY:
        raise _invalid(f"row {row}: history holds {len(history)} items; the limit is MAX_HISTORY = {MAX_HISTORY}")
    if history.dtype.kind in "iu" or len(history) == 0:
        return history.astype(np.int64)
    if history.dtype.kind == "f" and np.isfinite(history).all() and (history == np.floor(history)).all():
        return history.astype(np.int64)
    bad = next((item for item in value if isinstance(item, (bool, np.bool_, str)) or not float(item).is_integer()),
               value)  # fmt: skip
    raise _invalid(f"row {row}: history must hold integer item ids, got {bad!r}")


class RecommenderModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        import_family((context.model_config or {}).get("family_module", "movielens_pipeline.families"))
        self.recommender = load_recommender(load_trained_model(context.artifacts["model"]))
        items = pd.read_parquet(context.artifacts["item_map"]).sort_values("item_idx")
        users = pd.read_parquet(context.artifacts["user_map"])
        by_id = items.sort_values("item_id")
        self.sorted_item_ids = by_id["item_id"].to_numpy(dtype=np.int64)
        self.sorted_item_idx = by_id["item_idx"].to_numpy(dtype=np.int64)
        self.user_index = dict(zip(users["user_id"].tolist(), users["user_idx"].tolist()))
        self.num_items = len(items)
        # Position i holds item index i; index 0 is padding.
        self.item_ids = np.concatenate([[0], items["item_id"].to_numpy()])
        self.titles = np.concatenate([[""], items["title"].astype(str).to_numpy()])
        self.popularity = torch.as_tensor(
            np.concatenate([[0.0], items["popularity"].to_numpy(dtype=float)]), dtype=torch.float32
        )
        # Row u holds every item user index u rated, in sequence order; row 0 (no user) is empty.
        rated = pd.read_parquet(context.artifacts["user_items"])
        self.rated = Ragged.from_pairs(rated["user_idx"].to_numpy(), rated["item_idx"].to_numpy(), len(users) + 1)

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
        if len(model_input) > MAX_ROWS:
            raise _invalid(f"the request holds {len(model_input)} rows; the limit is MAX_ROWS = {MAX_ROWS}")
        raw_users = model_input["user_id"] if "user_id" in model_input.columns else [None] * len(model_input)
        user_ids = [parse_user_id(value, row) for row, value in enumerate(raw_users)]
        users = np.array([self.user_index.get(u, 0) if u is not None else 0 for u in user_ids], dtype=np.int64)
        sent = self._known_items([parse_history(h, row) for row, h in enumerate(model_input["history"])])
        stored = self.rated[users]
        # A known user who sends nothing is answered from what the model knows of them.
        use_stored = (sent.lengths == 0) & (users > 0)
        histories = join_rows([sent, Ragged(stored.values, stored.starts, np.where(use_stored, stored.ends, stored.starts))])
        usable = histories.lengths > 0 if self.recommender.uses_history else users > 0
        seen = join_rows([sent, stored]) if exclude_seen else None
        ids, titles, values = [], [], []
        for start in range(0, len(users), BATCH_ROWS):
            rows = slice(start, start + BATCH_ROWS)
            top_values, top_items = self._top_items(users[rows], histories[rows], usable[rows],
                                                    None if seen is None else seen[rows], k)  # fmt: skip
            ids.append(self.item_ids[top_items.numpy()])
            titles.append(self.titles[top_items.numpy()])
            values.append(top_values.numpy().astype(float))
        answers = pd.DataFrame({
            "user_id": user_ids,
            "item_ids": np.concatenate(ids).astype(np.int64).tolist() if ids else [],
            "titles": np.concatenate(titles).tolist() if titles else [],
            "scores": np.concatenate(values).tolist() if values else [],
            "fallback": np.where(usable, "", "popularity"),
        })  # fmt: skip
        # Fewer than k unseen items are left for a user who has rated nearly everything.
        short = np.flatnonzero(~np.isfinite(np.concatenate(values)).all(axis=1)) if values else []
        for row in short:
            keep = np.isfinite(answers.at[row, "scores"])
            for column in ("item_ids", "titles", "scores"):
                answers.at[row, column] = [v for v, kept in zip(answers.at[row, column], keep) if kept]
        return answers

    def _known_items(self, histories: list[np.ndarray]) -> Ragged:
        """Each history's item ids as item indices, unknown ids left out (one lookup for all rows)."""
        sent = Ragged.from_rows(histories)
        rows, flat = sent.flat()
        where = np.searchsorted(self.sorted_item_ids, flat).clip(max=max(len(self.sorted_item_ids) - 1, 0))
        indices = np.where(self.sorted_item_ids[where] == flat, self.sorted_item_idx[where], 0)
        known = indices > 0
        return Ragged.from_pairs(rows[known], indices[known], len(histories))

    def _top_items(self, users: np.ndarray, histories: Ragged, usable: np.ndarray, seen: Ragged | None,
                   k: int) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Scores and item indices [rows, k] of each row's k best items, ``seen`` excluded: the
        model's, one forward pass for the usable rows; popularity's for the others."""
        values = torch.empty((len(users), k))
        items = torch.empty((len(users), k), dtype=torch.long)
        model_rows, fallback_rows = np.flatnonzero(usable), np.flatnonzero(~usable)
        recommender = self.recommender
        if len(model_rows):
            excluded = None if seen is None else seen[model_rows]
            scorer = recommender.score_fn
            if isinstance(scorer, DotProductScorer):
                queries = scorer.query_fn(torch.as_tensor(users[model_rows]), histories[model_rows])
                found = top_items_by_dot_product(queries, scorer.item_vectors, k, excluded)
            else:
                scores = scorer(torch.as_tensor(users[model_rows]), histories[model_rows])
                found = top_k_of_scores(scores[:, : self.num_items + 1].float(), k, excluded)
            values[model_rows], items[model_rows] = found
        if len(fallback_rows):
            scores = self.popularity.expand(len(fallback_rows), -1).clone()
            excluded = None if seen is None else seen[fallback_rows]
            values[fallback_rows], items[fallback_rows] = top_k_of_scores(scores, k, excluded)
        return values, items


mlflow.models.set_model(RecommenderModel())
