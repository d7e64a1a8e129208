from typing import Annotated

import mlflow

from models import s3rec as s3rec_model
from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.integrations import workers
from movielens_pipeline.integrations.tracking import (
    flat_params,
    log_trained_run,
    mlflow_log_fn,
    training_checkpoints,
)
from movielens_pipeline.training import s3rec, sequence_batches
from movielens_pipeline.training.runtime import pick_device
from movielens_pipeline.training.s3rec import PretrainConfig, S3RecHyperparameters
from movielens_pipeline.training.trained_model import TrainedModel
from steps.training_step import training_step


@training_step(s3rec_model, s3rec, sequence_batches)
def s3rec_pretrain(
    sequence_dataset: SequenceDataset,
    model: S3RecHyperparameters = S3RecHyperparameters(),
    pretraining: PretrainConfig = PretrainConfig(),
    device: str = "auto",
    processes: int = 1,
) -> Annotated[TrainedModel, "s3rec_pretrained"]:
    """Self-supervised pretraining of the S3Rec encoder (AAP, MIP, MAP, SP), on ``processes``
    data-parallel workers (one: this process)."""
    torch_device = pick_device(device)
    model_config = s3rec.s3rec_config(sequence_dataset, model)
    mlflow.log_params(flat_params("model", model_config) | flat_params("pretrain", pretraining) | {"processes": processes})
    checkpoints = training_checkpoints("s3rec_pretrain", model_config, pretraining, sequence_dataset.fingerprint())
    trained = workers.train(s3rec.pretrain, sequence_dataset, processes, torch_device, mlflow_log_fn("pretrain"),
                            checkpoints, model_config=model_config, cfg=pretraining)  # fmt: skip
    return log_trained_run(trained, "s3rec_pretrain", str(torch_device), sequence_dataset.fingerprint())
