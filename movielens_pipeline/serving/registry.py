"""The MLflow registry client: log recommenders as pyfunc models, register them, move the
champion alias, and load registered models back (for the gate and for warm starts)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array

from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.evaluation.metrics import ScoreFn, full_ranking, per_user_metric
from movielens_pipeline.evaluation.protocols import flat_metrics, split_inputs
from movielens_pipeline.evaluation.scorers import load_recommender
from movielens_pipeline.serving.promotion import (
    PromotionRule,
    choose_candidate,
    per_user_from_table,
    promotion_decision,
)
from movielens_pipeline.training.trained_model import (
    TrainedModel,
    load_trained_model,
    save_trained_model,
)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
SERVING_CODE = Path(__file__).resolve().parent / "pyfunc.py"
# The whole library travels with the model; serving imports only data, evaluation, models,
# training.trained_model and serving (nothing that needs ZenML).
CODE_PATHS = [str(PACKAGE_DIR)]

SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            # double, not long: JSON rows without a user come in as NaN, which long refuses.
            ColSpec(DataType.double, "user_id", required=False),
            ColSpec(Array(DataType.long), "history"),
        ]
    ),
    outputs=Schema(
        [
            ColSpec(DataType.double, "user_id", required=False),
            ColSpec(Array(DataType.long), "item_ids"),
            ColSpec(Array(DataType.string), "titles"),
            ColSpec(Array(DataType.double), "scores"),
            ColSpec(DataType.string, "fallback"),
        ]
    ),
    params=ParamSchema([ParamSpec("k", DataType.long, 10), ParamSpec("exclude_seen", DataType.boolean, True)]),
)


def serving_tables(dataset: SequenceDataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Id maps as serving needs them: items with titles and popularity, users with their items."""
    items = dataset.item_map.assign(popularity=dataset.item_popularity()[dataset.item_map["item_idx"]])
    histories = dict(zip(dataset.user_indices, dataset.train_sequences()))
    users = dataset.user_map.assign(history=[histories[u].tolist() for u in dataset.user_map["user_idx"]])
    return items, users


def serving_requirements() -> list[str]:
    """The serving code's dependencies at the versions this environment runs (no +cpu labels)."""
    from importlib.metadata import version

    packages = ["torch", "mlflow", "pandas", "pyarrow", "numpy", "safetensors"]
    return [f"{name}=={version(name).split('+')[0]}" for name in packages]


def log_pyfunc(trained: TrainedModel, dataset: SequenceDataset, name: str) -> str:
    """Log one model as a pyfunc from code (no pickled Python objects); returns its model URI."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_trained_model(trained, tmp / "model")
        items, users = serving_tables(dataset)
        items.to_parquet(tmp / "item_map.parquet", index=False)
        users.to_parquet(tmp / "user_map.parquet", index=False)
        example_history = dataset.item_map["item_id"].head(3).astype(int).tolist()
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(SERVING_CODE),
            artifacts={
                "model": str(tmp / "model"),
                "item_map": str(tmp / "item_map.parquet"),
                "user_map": str(tmp / "user_map.parquet"),
            },
            code_paths=CODE_PATHS,
            pip_requirements=serving_requirements(),
            signature=SIGNATURE,
            input_example=pd.DataFrame(
                {"user_id": [float(dataset.user_map["user_id"].iloc[0])], "history": [example_history]}
            ),
        )
    return info.model_uri


@dataclass
class RegisteredRecommender:
    """A registered model loaded back from its artifacts (weights via safetensors only)."""

    trained: TrainedModel
    items: pd.DataFrame
    users: pd.DataFrame

    @classmethod
    def download(cls, model_uri: str) -> "RegisteredRecommender":
        local = Path(mlflow.artifacts.download_artifacts(model_uri)) / "artifacts"
        return cls(
            load_trained_model(local / "model"),
            pd.read_parquet(local / "item_map.parquet"),
            pd.read_parquet(local / "user_map.parquet"),
        )

    def score_fn_for(self, dataset: SequenceDataset) -> ScoreFn:
        """Scores in ``dataset``'s index space, whatever index space the model was trained in.

        Items the model never saw score -inf (they can only rank last); users it never saw
        get its popularity scores.
        """
        recommender = load_recommender(self.trained)
        own_item = dict(zip(self.items["item_id"], self.items["item_idx"]))
        own_user = dict(zip(self.users["user_id"], self.users["user_idx"]))
        to_own_item = np.array([0] + [own_item.get(i, 0) for i in dataset.item_map["item_id"]])
        to_own_user = np.array([0] + [own_user.get(u, 0) for u in dataset.user_map["user_id"]])
        column = torch.as_tensor(to_own_item)
        popularity = torch.zeros(len(self.items) + 1)
        popularity[torch.as_tensor(self.items["item_idx"].to_numpy())] = torch.as_tensor(
            self.items["popularity"].to_numpy(dtype=np.float32)
        )

        def scores(user_indices: torch.Tensor, histories) -> torch.Tensor:
            own_users = torch.as_tensor(to_own_user[user_indices.cpu().numpy()])
            own_histories = [to_own_item[h][to_own_item[h] > 0] for h in histories]
            own_scores = recommender.score_fn(own_users, own_histories).float().cpu()
            if not recommender.uses_history:
                cold = own_users == 0
                own_scores[cold] = popularity[: own_scores.shape[1]].expand(int(cold.sum()), -1)
            out = own_scores[:, column]
            out[:, column == 0] = float("-inf")
            return out

        return scores


def per_user_test_metric(score_fn: ScoreFn, dataset: SequenceDataset, metric: str) -> np.ndarray:
    inputs = split_inputs(dataset, "test")
    ranks, _ = full_ranking(score_fn, inputs.users, inputs.histories, inputs.targets, dataset.num_items)
    return per_user_metric(ranks, metric)


def register_and_promote(
    name: str,
    model_uris: dict[str, str],
    metrics: dict[str, dict[str, float]],
    tags: dict[str, str],
    candidate: str,
    candidate_scores: np.ndarray,
    dataset: SequenceDataset,
    rule: PromotionRule,
) -> dict:
    """Register one version per model, then move ``champion`` or ``challenger`` to the candidate.

    All or nothing: if anything fails, the versions created here are deleted again and the
    aliases are left as they were.
    """
    client = mlflow.MlflowClient()
    created: dict[str, str] = {}
    try:
        champion_scores = None
        try:
            client.get_model_version_by_alias(name, "champion")
            champion = RegisteredRecommender.download(f"models:/{name}@champion")
            champion_scores = per_user_test_metric(champion.score_fn_for(dataset), dataset, rule.metric)
        except mlflow.exceptions.MlflowException:
            pass  # no registered model or no champion yet
        promote, reason, stats = promotion_decision(candidate_scores, champion_scores, rule)
        for model, uri in model_uris.items():
            version = mlflow.register_model(uri, name, tags=tags | {"architecture": model}).version
            created[model] = version
            for key, value in metrics[model].items():
                client.set_model_version_tag(name, version, key, f"{value:.6f}")
        alias = "champion" if promote else "challenger"
        client.set_registered_model_alias(name, alias, created[candidate])
        for key, value in {"promotion": alias, "promotion_reason": reason}.items():
            client.set_model_version_tag(name, created[candidate], key, value)
    except Exception:
        for version in created.values():
            client.delete_model_version(name, version)
        raise
    return {
        "registered_model": name,
        "versions": created,
        "candidate": candidate,
        "version": created[candidate],
        "alias": alias,
        "reason": reason,
        "bootstrap": stats,
    }


def register_run(
    name: str,
    trained: dict[str, TrainedModel],
    dataset: SequenceDataset,
    evaluation_metrics: pd.DataFrame,
    per_user_ranks: pd.DataFrame,
    tags: dict[str, str],
    rule: PromotionRule,
) -> dict:
    """Log and register every trained model of a run; its best one is the promotion candidate."""
    candidate = choose_candidate(evaluation_metrics, list(trained), rule.metric)
    return register_and_promote(
        name,
        {model: log_pyfunc(weights, dataset, model) for model, weights in trained.items()},
        {model: flat_metrics(evaluation_metrics, model) for model in trained},
        tags,
        candidate,
        per_user_from_table(per_user_ranks, candidate, rule.metric),
        dataset,
        rule,
    )


def previous_model(name: str, architecture: str) -> RegisteredRecommender | None:
    """The model a warm start continues from: the champion when it has this architecture, else
    the newest registered version that does; None when the registry has none."""
    client = mlflow.MlflowClient()
    try:
        champion = client.get_model_version_by_alias(name, "champion")
        if champion.tags.get("architecture") == architecture:
            return RegisteredRecommender.download(f"models:/{name}/{champion.version}")
        versions = client.search_model_versions(f"name = '{name}'")
    except mlflow.exceptions.MlflowException:
        return None
    same = [v for v in versions if v.tags.get("architecture") == architecture]
    if not same:
        return None
    newest = max(same, key=lambda v: int(v.version))
    return RegisteredRecommender.download(f"models:/{name}/{newest.version}")
