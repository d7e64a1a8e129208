from typing import Annotated, Optional

import mlflow

from models import s3rec as s3rec_model
from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.integrations import workers
from movielens_pipeline.integrations.tracking import (
    flat_params,
    log_trained_run,
    mlflow_log_fn,
    training_checkpoints,
    warm_start_from_registry,
)
from movielens_pipeline.serving.records import ChampionRecord
from movielens_pipeline.training import s3rec, sequence_batches
from movielens_pipeline.training.runtime import pick_device
from movielens_pipeline.training.s3rec import FinetuneConfig, S3RecHyperparameters
from movielens_pipeline.training.trained_model import TrainedModel
from steps.training_step import training_step


@training_step(s3rec_model, s3rec, sequence_batches)
def s3rec_finetune(
    sequence_dataset: SequenceDataset,
    pretrained: Optional[TrainedModel] = None,
    model: S3RecHyperparameters = S3RecHyperparameters(),
    finetuning: FinetuneConfig = FinetuneConfig(),
    model_name: str = "s3rec",
    warm_start_champion: Optional[ChampionRecord] = None,
    device: str = "auto",
    processes: int = 1,
) -> Annotated[TrainedModel, "s3rec_model"]:
    """Next-item finetuning with a causal mask, from the pretrained encoder when given one.

    ``warm_start_champion`` (load_champion's record, passed when the run warm-starts): training
    continues from the registry's model of this architecture, the champion first, instead;
    tables grown for new users and items. ``processes``: data-parallel workers (one: this process).
    """
    torch_device = pick_device(device)
    model_config = s3rec.s3rec_config(sequence_dataset, model)
    mlflow.log_params(flat_params("model", model_config) | flat_params("finetune", finetuning))
    mlflow.log_params({"pretrained": pretrained is not None, "processes": processes})
    initial = pretrained
    if warm_start_champion is not None:
        fresh = s3rec_model.S3Rec(model_config)
        initial = warm_start_from_registry(warm_start_champion, model_name, fresh, sequence_dataset) or pretrained
    checkpoints = training_checkpoints(
        f"{model_name}_finetune", model_config, finetuning, sequence_dataset.fingerprint(),
        initial.weights_fingerprint() if initial else None,
    )  # fmt: skip
    trained = workers.train(s3rec.finetune, sequence_dataset, processes, torch_device, mlflow_log_fn("finetune"),
                            checkpoints, model_config=model_config, cfg=finetuning, pretrained=initial,
                            name=model_name)  # fmt: skip
    return log_trained_run(trained, model_name, str(torch_device), sequence_dataset.fingerprint())
