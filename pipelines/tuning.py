"""Hyper-parameter search as a pipeline of its own:

  ingest_ratings → validate_data → build_dataset → (pretraining, for a model that has it) → tune

``tune`` runs an Optuna study of one registered model (``configs/tuning.yaml``: which model,
its search space, trials, budget) and writes a run config with the best parameters.
"""

from zenml import pipeline
from zenml.utils import source_utils

from movielens_pipeline.families import model_spec
from steps.build_dataset import build_dataset
from steps.ingest_ratings import ingest_ratings
from steps.tune import tune
from steps.validate_data import validate_data


@pipeline
def tuning_pipeline(model: str = "sasrec_no_pretraining"):
    interactions, items, item_attributes, _ = ingest_ratings()
    validate_data(interactions, items, item_attributes)
    sequence_dataset, _, _ = build_dataset(interactions, items, item_attributes, after="validate_data")
    spec = model_spec(model)
    pretrained = source_utils.load(spec.pretrain_step)(sequence_dataset) if spec.pretrain_step else None
    tune(sequence_dataset, pretrained, model=model)
