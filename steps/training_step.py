"""The decorator every training step shares: MLflow run, safetensors output, a GPU when the
orchestrator has one, and a cache key over the training library (plus the step's own code)."""

from zenml import step
from zenml.config import ResourceSettings
from zenml.config.cache_policy import CachePolicy

from movielens_pipeline.data import dataset
from movielens_pipeline.evaluation import metrics, scorers
from movielens_pipeline.integrations.materializers import TrainedModelMaterializer
from movielens_pipeline.integrations.tracking import experiment_tracker_name, tracking_store_identity
from movielens_pipeline.training import (
    checkpoints,
    loop,
    runtime,
    trained_model,
    warm_start,
)

TRAINING_CODE = (dataset, metrics, scorers, loop, checkpoints, runtime, trained_model, warm_start)


def training_step(*model_code):
    """``@training_step(models.lrml, training.pairwise)``: the step decorator for a trainer."""
    return step(
        experiment_tracker=experiment_tracker_name(),
        output_materializers=TrainedModelMaterializer,
        settings={"resources": ResourceSettings(gpu_count=1)},
        cache_policy=CachePolicy(source_dependencies=[*TRAINING_CODE, *model_code], cache_func=tracking_store_identity),
    )
