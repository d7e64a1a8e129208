"""ZenML materializers: Parquet tables and safetensors weights, never pickles."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any, ClassVar

import pandas as pd
from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.materializers.pandas_materializer import PandasMaterializer

from movielens_pipeline.data.dataset import SequenceDataset, read_dataset, write_dataset
from movielens_pipeline.serving.batch import BatchSummary, RecommendationTable
from movielens_pipeline.serving.records import ChampionRecord, Record, RegistrationDecision, ServedModelRecord
from movielens_pipeline.training.trained_model import (
    META_FILE,
    WEIGHTS_FILE,
    TrainedModel,
    load_trained_model,
    save_trained_model,
)


class HashedDataFrameMaterializer(PandasMaterializer):
    """ZenML's pandas materializer plus a content hash.

    ZenML keys a step's cache on its inputs' content hashes where the materializer provides one,
    on artifact ids otherwise. ``ingest_ratings`` runs every time, so without a hash its fresh
    artifacts would make every later step retrain even when the data did not change.
    """

    def compute_content_hash(self, data: pd.DataFrame) -> str:
        digest = hashlib.sha256(json.dumps([[str(c), str(t)] for c, t in data.dtypes.items()]).encode())
        digest.update(pd.util.hash_pandas_object(data, index=True).to_numpy().tobytes())
        return digest.hexdigest()


class SequenceDatasetMaterializer(BaseMaterializer):
    """One Parquet file per table plus ``stats.json``."""

    ASSOCIATED_TYPES: ClassVar[tuple] = (SequenceDataset,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def _open(self, name: str, mode: str):
        return self.artifact_store.open(os.path.join(self.uri, name), mode)

    def load(self, data_type: type[Any]) -> SequenceDataset:
        return read_dataset(self._open)

    def save(self, data: SequenceDataset) -> None:
        write_dataset(data, self._open)

    def extract_metadata(self, data: SequenceDataset) -> dict[str, Any]:
        return {k: v for k, v in data.stats.items() if not isinstance(v, dict)} | {
            f"attributes_{k}": v for k, v in data.stats.get("attributes_per_type", {}).items()
        }


def save_trained_model_to(trained: TrainedModel, uri: str) -> None:
    """``save_trained_model`` at a local or artifact-store ``uri``; the JSON last, so a reader that
    finds it finds the weights too."""
    with tempfile.TemporaryDirectory() as tmp:
        save_trained_model(trained, tmp)
        for name in (WEIGHTS_FILE, META_FILE):
            fileio.copy(os.path.join(tmp, name), os.path.join(uri, name), overwrite=True)


def load_trained_model_from(uri: str) -> TrainedModel:
    with tempfile.TemporaryDirectory() as tmp:
        for name in (WEIGHTS_FILE, META_FILE):
            fileio.copy(os.path.join(uri, name), os.path.join(tmp, name))
        return load_trained_model(tmp)


class TrainedModelMaterializer(BaseMaterializer):
    """``weights.safetensors`` plus ``model.json`` (kind, config, history, summary)."""

    ASSOCIATED_TYPES: ClassVar[tuple] = (TrainedModel,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def load(self, data_type: type[Any]) -> TrainedModel:
        return load_trained_model_from(self.uri)

    def save(self, data: TrainedModel) -> None:
        save_trained_model_to(data, self.uri)

    def extract_metadata(self, data: TrainedModel) -> dict[str, Any]:
        scalars = {k: v for k, v in data.summary.items() if isinstance(v, (int, float, str))}
        parameters = sum(t.numel() for t in data.state_dict.values())
        return {"kind": data.kind, "parameters": parameters} | scalars


class RecordMaterializer(BaseMaterializer):
    """A registry record (``serving.records``) as ``record.json``, shown as a Markdown table."""

    ASSOCIATED_TYPES: ClassVar[tuple] = (ChampionRecord, RegistrationDecision, ServedModelRecord)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA
    FILE = "record.json"

    def load(self, data_type: type[Record]) -> Record:
        with self.artifact_store.open(os.path.join(self.uri, self.FILE), "r") as f:
            return data_type.model_validate_json(f.read())

    def save(self, data: Record) -> None:
        with self.artifact_store.open(os.path.join(self.uri, self.FILE), "w") as f:
            f.write(data.model_dump_json(indent=2))

    def save_visualizations(self, data: Record) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, "record.md")
        with self.artifact_store.open(path, "w") as f:
            f.write(data.as_markdown())
        return {path: VisualizationType.MARKDOWN}

    def extract_metadata(self, data: Record) -> dict[str, Any]:
        return {name: str(value) for name, value in data.model_dump().items() if value not in (None, {}, "")}


class RecommendationTableMaterializer(BaseMaterializer):
    """The batch's Parquet parts as they are, plus ``table.json`` (model, version, k, counts).
    Loading copies them to a local folder, part by part."""

    ASSOCIATED_TYPES: ClassVar[tuple] = (RecommendationTable,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA
    META = "table.json"

    def save(self, data: RecommendationTable) -> None:
        for part in sorted(os.listdir(data.folder)):
            fileio.copy(os.path.join(data.folder, part), os.path.join(self.uri, part), overwrite=True)
        meta = {k: v for k, v in vars(data).items() if k not in ("folder", "summary")} | {"summary": vars(data.summary)}
        with self.artifact_store.open(os.path.join(self.uri, self.META), "w") as f:
            json.dump(meta, f, indent=2)

    def load(self, data_type: type[Any]) -> RecommendationTable:
        with self.artifact_store.open(os.path.join(self.uri, self.META), "r") as f:
            meta = json.load(f)
        folder = tempfile.mkdtemp(prefix="recommendations-")
        for part in sorted(fileio.listdir(self.uri)):
            if str(part).endswith(".parquet"):
                fileio.copy(os.path.join(self.uri, str(part)), os.path.join(folder, str(part)))
        return RecommendationTable(folder=folder, summary=BatchSummary(**meta.pop("summary")), **meta)

    def extract_metadata(self, data: RecommendationTable) -> dict[str, Any]:
        return {"registered_model": data.registered_model, "model_version": data.version, "k": data.k,
                "data_fingerprint": data.data_fingerprint, "row_count": data.summary.rows,
                "users": data.summary.users, "fallback_users": data.summary.fallback_users}  # fmt: skip

