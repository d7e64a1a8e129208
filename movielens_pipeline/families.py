"""The models a run can train, each declared once: adding a model is adding its files and one
``register`` call, and no step, scorer or serving code changes.

- A ``ModelFamily`` is a kind of trained weights (``TrainedModel.kind``): how its config becomes
  the torch module, how that module becomes a ``Recommender`` (the score function evaluation,
  per-epoch validation, the registry gate and serving all use), which tensors are tables with
  a row per user or item (a warm start carries those rows over by id), and where its code is
  (the served model carries it, so ``mlflow models serve`` can rebuild it).
- A ``ModelSpec`` is a name the run config's ``models:`` list can hold: a family, how to train it
  as a plain function (``trainer``, for the tuning pipeline's trials), the ZenML step that trains
  it in the training pipeline (an import path, so this module and serving never import ZenML),
  the step's id in the DAG and fixed parameters, and the step that pretrains it, if any.
  ``s3rec`` and ``sasrec_no_pretraining`` are two specs of one family: the second is the first
  without pretraining.

This module registers the project's own families at the bottom; a family defined elsewhere
registers itself when its module is imported (the served model imports ``family_module``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

import torch
import torch.nn as nn

from models.bpr import BPRMF, BPRConfig
from models.lrml import LRML, LRMLConfig
from models.s3rec import S3Rec, S3RecConfig
from movielens_pipeline.evaluation.metrics import DotProductScorer
from movielens_pipeline.evaluation.scorers import Recommender, s3rec_query_fn, user_score_fn
from movielens_pipeline.training.loop import no_logging
from movielens_pipeline.training.pairwise import (
    BPRHyperparameters,
    BPRTrainConfig,
    LRMLHyperparameters,
    LRMLTrainConfig,
    train_bpr,
    train_lrml,
)
from movielens_pipeline.training.runtime import pick_device
from movielens_pipeline.training.s3rec import FinetuneConfig, S3RecHyperparameters, finetune, s3rec_config
from movielens_pipeline.training.trained_model import TrainedModel


@dataclass(frozen=True)
class ModelFamily:
    kind: str  # TrainedModel.kind of its weights
    build: Callable[[dict], nn.Module]  # TrainedModel.config -> the untrained module
    recommender: Callable[[nn.Module, torch.device], Recommender]  # the module, weights loaded -> scorer
    id_tables: Mapping[str, str] = field(default_factory=dict)  # tensor name -> "user" or "item"
    # The module that registers this family (imported by the served model before it loads), and
    # files or folders it needs beyond this library and models/ (copied into the served model).
    family_module: str = __name__
    code_paths: tuple[str, ...] = ()


# trainer(dataset, parameters, log_fn, pretrained) -> TrainedModel: the training step's work without
# ZenML or MLflow, ``parameters`` shaped like the step's (e.g. {"finetuning": {"lr": 1e-3}}); the
# tuning pipeline trains its trials through it.
Trainer = Callable[..., TrainedModel]


@dataclass(frozen=True)
class ModelSpec:
    name: str  # what ``models:`` lists; the registered version's architecture tag
    family: str  # a ModelFamily.kind
    trainer: Trainer
    # "module.function" of the ZenML step that trains it: it takes the built dataset first and
    # ``warm_start_champion`` (load_champion's record when the run warm-starts, else None).
    train_step: str
    step_id: str | None = None  # its id in the DAG (default: the step's name)
    parameters: Mapping[str, object] = field(default_factory=dict)  # fixed step parameters
    pretrain_step: str | None = None  # a step on the dataset whose output is the train step's ``pretrained``
    # The model this one is the same training of, without its pretraining: trained side by side,
    # the two tell on validation whether pretraining pays (``pretrain: auto`` acts on it).
    without_pretraining_of: str | None = None


_FAMILIES: dict[str, ModelFamily] = {}
_MODELS: dict[str, ModelSpec] = {}
FAMILIES = MappingProxyType(_FAMILIES)
MODELS = MappingProxyType(_MODELS)


def register(family: ModelFamily, *specs: ModelSpec) -> ModelFamily:
    """Add a family and the model names that train it (registering the same again is a no-op)."""
    _FAMILIES[family.kind] = family
    for spec in specs:
        if spec.family != family.kind:
            raise ValueError(f"model {spec.name!r} is of family {spec.family!r}, registered with {family.kind!r}")
        _MODELS[spec.name] = spec
    return family


def family_of(kind: str) -> ModelFamily:
    if kind not in _FAMILIES:
        raise ValueError(f"no model family {kind!r}; known: {sorted(_FAMILIES)}")
    return _FAMILIES[kind]


def model_spec(name: str) -> ModelSpec:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r} in models:; known: {sorted(_MODELS)}")
    return _MODELS[name]


def pretraining_pairs(names) -> list[tuple[str, str]]:
    """(pretrained model, the same without pretraining) for every such pair among ``names``."""
    return [(spec.without_pretraining_of, name) for name in names
            if (spec := model_spec(name)).without_pretraining_of in names]  # fmt: skip


def without_pretraining(name: str) -> str | None:
    """The model that is ``name`` trained without its pretraining, if one is registered."""
    return next((spec.name for spec in _MODELS.values() if spec.without_pretraining_of == name), None)


def import_family(module: str) -> None:
    """Import the module that registers a family (the served model's first step)."""
    importlib.import_module(module)


def trained_module(trained: TrainedModel) -> nn.Module:
    """The torch module of a training run's best weights, in eval mode."""
    model = family_of(trained.kind).build(trained.config)
    model.load_state_dict(trained.state_dict)
    return model.eval()


def load_recommender(trained: TrainedModel, device: torch.device | str = "cpu") -> Recommender:
    device = torch.device(device)
    return family_of(trained.kind).recommender(trained_module(trained).to(device), device)


def family_code_paths(kind: str) -> list[str]:
    """What a served model of this family needs on its path beyond the library and models/."""
    return [str(Path(path).resolve()) for path in family_of(kind).code_paths]


# --- the project's families -------------------------------------------------------------------


def _s3rec_trainer(name: str) -> Trainer:
    def train(dataset, parameters: dict, log_fn=no_logging, pretrained: TrainedModel | None = None) -> TrainedModel:
        model_config = s3rec_config(dataset, S3RecHyperparameters(**parameters.get("model", {})))
        cfg = FinetuneConfig(**parameters.get("finetuning", {}))
        return finetune(dataset, model_config, cfg, pick_device("auto"), log_fn, pretrained=pretrained, name=name)

    return train


def _pairwise_trainer(train_fn, hyperparameters, train_config) -> Trainer:
    def train(dataset, parameters: dict, log_fn=no_logging, pretrained: TrainedModel | None = None) -> TrainedModel:
        return train_fn(dataset, hyperparameters(**parameters.get("model", {})), train_config(**parameters.get("train", {})),
                        pick_device("auto"), log_fn)  # fmt: skip

    return train


def sequence_recommender(model: nn.Module, device: torch.device) -> Recommender:
    """A model that encodes the history into a query scored against item vectors (dot products)."""
    scorer = DotProductScorer(s3rec_query_fn(model, device), model.item_vectors().detach())
    return Recommender(scorer, uses_history=True)


def user_recommender(model: nn.Module, device: torch.device) -> Recommender:
    """A model that embeds users and scores every item for them (``score_all_items``)."""
    return Recommender(user_score_fn(model, device), uses_history=False)


def _s3rec(config: dict) -> S3Rec:
    names = {f.name for f in fields(S3RecConfig)}
    return S3Rec(S3RecConfig(**{key: value for key, value in config.items() if key in names}))


register(
    ModelFamily("s3rec", _s3rec, sequence_recommender, {"item_embedding.weight": "item"}),
    ModelSpec("s3rec", "s3rec", _s3rec_trainer("s3rec"), "steps.s3rec_finetune.s3rec_finetune",
              pretrain_step="steps.s3rec_pretrain.s3rec_pretrain"),
    ModelSpec("sasrec_no_pretraining", "s3rec", _s3rec_trainer("sasrec_no_pretraining"),
              "steps.s3rec_finetune.s3rec_finetune", step_id="sasrec_finetune",
              parameters={"model_name": "sasrec_no_pretraining"}, without_pretraining_of="s3rec"),
)  # fmt: skip
register(
    ModelFamily("lrml", lambda config: LRML(LRMLConfig(**config["model"])), user_recommender,
                {"user_embedding.weight": "user", "item_embedding.weight": "item"}),
    ModelSpec("lrml", "lrml", _pairwise_trainer(train_lrml, LRMLHyperparameters, LRMLTrainConfig),
              "steps.lrml_train.lrml_train"),
)  # fmt: skip
register(
    ModelFamily("bpr_mf", lambda config: BPRMF(BPRConfig(**config["model"])), user_recommender,
                {"user_embedding.weight": "user", "item_embedding.weight": "item"}),
    ModelSpec("bpr", "bpr_mf", _pairwise_trainer(train_bpr, BPRHyperparameters, BPRTrainConfig),
              "steps.bpr_train.bpr_train"),
)  # fmt: skip
