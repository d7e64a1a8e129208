from typing import Annotated, Optional

import mlflow

from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.integrations.tracking import (
    flat_params,
    log_trained_run,
    mlflow_log_fn,
    training_checkpoints,
    warm_start_from_registry,
)
from models import lrml as lrml_model
from movielens_pipeline.training import pairwise
from movielens_pipeline.training.pairwise import LRMLHyperparameters, LRMLTrainConfig
from movielens_pipeline.training.runtime import pick_device, seed_everything
from movielens_pipeline.training.trained_model import TrainedModel
from steps.training_step import training_step


@training_step(lrml_model, pairwise)
def lrml_train(
    sequence_dataset: SequenceDataset,
    model: LRMLHyperparameters = LRMLHyperparameters(),
    train: LRMLTrainConfig = LRMLTrainConfig(),
    warm_start_champion: Optional[dict] = None,
    device: str = "auto",
) -> Annotated[TrainedModel, "lrml_model"]:
    """LRML metric learning on the training part of each user's sequence (implicit feedback).

    ``warm_start_champion`` (load_champion's record, passed when the run warm-starts): training
    continues from the registry's LRML model, the champion first; tables grown for new users
    and items.
    """
    torch_device = pick_device(device)
    model_config = pairwise.lrml_config(sequence_dataset, model)
    mlflow.log_params(flat_params("model", model_config) | flat_params("train", train))
    initial = None
    if warm_start_champion is not None:
        seed_everything(train.seed)
        fresh = lrml_model.LRML(model_config)
        initial = warm_start_from_registry(warm_start_champion, "lrml", fresh, sequence_dataset)
    checkpoints = training_checkpoints(
        "lrml_train", model_config, train, sequence_dataset.fingerprint(),
        initial.weights_fingerprint() if initial else None,
    )  # fmt: skip
    trained = pairwise.train_lrml(
        sequence_dataset, model_config, train, torch_device, mlflow_log_fn("train"), checkpoints, initial
    )
    return log_trained_run(trained, "lrml", str(torch_device), sequence_dataset.fingerprint())
