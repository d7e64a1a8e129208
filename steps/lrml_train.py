from typing import Annotated, Optional

import mlflow
from zenml import step
from zenml.config import ResourceSettings
from zenml.config.cache_policy import CachePolicy

import models.lrml
from movielens_pipeline import dataset, lrml_training, metrics, training
from movielens_pipeline.dataset import SequenceDataset
from movielens_pipeline.materializers import TrainedModelMaterializer
from movielens_pipeline.tracking import experiment_tracker_name, flat_params, log_trained_model, mlflow_log_fn
from movielens_pipeline.warm_start import warm_start


@step(
    experiment_tracker=experiment_tracker_name(),
    output_materializers=TrainedModelMaterializer,
    settings={"resources": ResourceSettings(gpu_count=1)},
    cache_policy=CachePolicy(source_dependencies=[models.lrml, lrml_training, training, dataset, metrics]),
)
def lrml_train(
    sequence_dataset: SequenceDataset,
    model: dict | None = None,
    train: dict | None = None,
    warm_start_from: Optional[str] = None,
    device: str = "auto",
) -> Annotated[training.TrainedModel, "lrml_model"]:
    """LRML metric learning on the training part of each user's sequence (implicit feedback).

    ``warm_start_from``: a registered model name; when it holds an LRML model (the champion
    first), training continues from its weights, tables grown for new users and items.
    """
    torch_device = training.pick_device(device)
    model_config = models.lrml.LRMLConfig(
        num_users=sequence_dataset.num_users, num_items=sequence_dataset.num_items, **(model or {})
    )
    cfg = lrml_training.LRMLTrainConfig(**(train or {}))
    mlflow.log_params(flat_params("model", model_config) | flat_params("train", cfg))
    checkpoints = training.CheckpointStore(
        training.checkpoint_root(),
        "lrml_train",
        training.config_fingerprint(model_config, cfg, sequence_dataset.fingerprint(), warm_start_from),
    )
    initial = None
    if warm_start_from:
        training.seed_everything(cfg.seed)
        initial = warm_start(warm_start_from, "lrml", models.lrml.LRML(model_config), sequence_dataset)
    trained = lrml_training.train_lrml(
        sequence_dataset, model_config, cfg, torch_device, mlflow_log_fn("train"), checkpoints, initial
    )
    trained.summary["name"] = "lrml"
    trained.summary["mlflow_run_id"] = mlflow.active_run().info.run_id
    log_trained_model(trained, "lrml", str(torch_device), sequence_dataset.fingerprint())
    return trained
