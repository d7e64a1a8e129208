from typing import Annotated

import mlflow
from zenml import step
from zenml.config import ResourceSettings
from zenml.config.cache_policy import CachePolicy

import models.s3rec
from movielens_pipeline import dataset, metrics, s3rec_training, training
from movielens_pipeline.dataset import SequenceDataset
from movielens_pipeline.materializers import TrainedModelMaterializer
from movielens_pipeline.tracking import experiment_tracker_name, flat_params, log_trained_model, mlflow_log_fn


@step(
    experiment_tracker=experiment_tracker_name(),
    output_materializers=TrainedModelMaterializer,
    settings={"resources": ResourceSettings(gpu_count=1)},
    cache_policy=CachePolicy(source_dependencies=[models.s3rec, s3rec_training, training, dataset, metrics]),
)
def s3rec_pretrain(
    sequence_dataset: SequenceDataset,
    model: dict | None = None,
    pretraining: dict | None = None,
    device: str = "auto",
) -> Annotated[training.TrainedModel, "s3rec_pretrained"]:
    """Self-supervised pretraining of the S3Rec encoder (AAP, MIP, MAP, SP)."""
    torch_device = training.pick_device(device)
    model_config = models.s3rec.S3RecConfig(
        num_items=sequence_dataset.num_items,
        num_attributes=sequence_dataset.num_attributes,
        **(model or {}),
    )
    cfg = s3rec_training.PretrainConfig(**(pretraining or {}))
    mlflow.log_params(flat_params("model", model_config) | flat_params("pretrain", cfg))
    checkpoints = training.CheckpointStore(
        training.checkpoint_root(),
        "s3rec_pretrain",
        training.config_fingerprint(model_config, cfg, sequence_dataset.fingerprint()),
    )
    trained = s3rec_training.pretrain(
        sequence_dataset, model_config, cfg, torch_device, mlflow_log_fn("pretrain"), checkpoints
    )
    log_trained_model(trained, "s3rec_pretrain", str(torch_device), sequence_dataset.fingerprint())
    return trained
