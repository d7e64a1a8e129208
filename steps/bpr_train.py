from typing import Annotated, Optional

from models import bpr as bpr_model
from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.integrations.tracking import tracked_pairwise_training
from movielens_pipeline.serving.records import ChampionRecord
from movielens_pipeline.training import pairwise
from movielens_pipeline.training.pairwise import BPRHyperparameters, BPRTrainConfig
from movielens_pipeline.training.trained_model import TrainedModel
from steps.training_step import training_step


@training_step(bpr_model, pairwise)
def bpr_train(
    sequence_dataset: SequenceDataset,
    model: BPRHyperparameters = BPRHyperparameters(),
    train: BPRTrainConfig = BPRTrainConfig(),
    warm_start_champion: Optional[ChampionRecord] = None,
    device: str = "auto",
    processes: int = 1,
) -> Annotated[TrainedModel, "bpr_model"]:
    """BPR matrix factorisation on the training part of each user's sequence: LRML's dot-product
    reference point (same pairs, negatives and loop). ``warm_start_champion`` as for lrml_train."""
    model_config = pairwise.sized_config(sequence_dataset, model, BPRHyperparameters)
    return tracked_pairwise_training("bpr", sequence_dataset, model_config, train, device, bpr_model.BPRMF,
                                     pairwise.train_bpr, warm_start_champion, processes)  # fmt: skip
