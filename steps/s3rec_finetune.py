from typing import Annotated, Optional

import mlflow
from zenml import step
from zenml.config import ResourceSettings
from zenml.config.cache_policy import CachePolicy

import models.s3rec
from movielens_pipeline import dataset, metrics, s3rec_training, training
from movielens_pipeline.dataset import SequenceDataset
from movielens_pipeline.materializers import TrainedModelMaterializer
from movielens_pipeline.tracking import experiment_tracker_name, flat_params, log_trained_model, mlflow_log_fn
from movielens_pipeline.warm_start import warm_start


@step(
    experiment_tracker=experiment_tracker_name(),
    output_materializers=TrainedModelMaterializer,
    settings={"resources": ResourceSettings(gpu_count=1)},
    cache_policy=CachePolicy(source_dependencies=[models.s3rec, s3rec_training, training, dataset, metrics]),
)
def s3rec_finetune(
    sequence_dataset: SequenceDataset,
    pretrained: Optional[training.TrainedModel] = None,
    model: dict | None = None,
    finetuning: dict | None = None,
    model_name: str = "s3rec",
    warm_start_from: Optional[str] = None,
    device: str = "auto",
) -> Annotated[training.TrainedModel, "s3rec_model"]:
    """Next-item finetuning with a causal mask, from the pretrained encoder when given one.

    ``warm_start_from``: a registered model name; when it holds a model of this architecture
    (the champion first), finetuning continues from its weights instead, tables grown for new
    users and items.
    """
    torch_device = training.pick_device(device)
    model_config = models.s3rec.S3RecConfig(
        num_items=sequence_dataset.num_items,
        num_attributes=sequence_dataset.num_attributes,
        **(model or {}),
    )
    cfg = s3rec_training.FinetuneConfig(**(finetuning or {}))
    mlflow.log_params(flat_params("model", model_config) | flat_params("finetune", cfg))
    mlflow.log_param("pretrained", pretrained is not None)
    checkpoints = training.CheckpointStore(
        training.checkpoint_root(),
        f"{model_name}_finetune",
        training.config_fingerprint(
            model_config, cfg, sequence_dataset.fingerprint(), pretrained.summary if pretrained else None,
            warm_start_from,
        ),
    )
    initial = pretrained
    if warm_start_from:
        fresh = models.s3rec.S3Rec(model_config)
        initial = warm_start(warm_start_from, model_name, fresh, sequence_dataset) or pretrained
    trained = s3rec_training.finetune(
        sequence_dataset, model_config, cfg, torch_device, mlflow_log_fn("finetune"), checkpoints, initial
    )
    trained.summary["name"] = model_name
    trained.summary["mlflow_run_id"] = mlflow.active_run().info.run_id
    log_trained_model(trained, model_name, str(torch_device), sequence_dataset.fingerprint())
    return trained
