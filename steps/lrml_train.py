from typing import Annotated, Optional

from models import lrml as lrml_model
from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.integrations.tracking import tracked_pairwise_training
from movielens_pipeline.serving.records import ChampionRecord
from movielens_pipeline.training import pairwise
from movielens_pipeline.training.pairwise import LRMLHyperparameters, LRMLTrainConfig
from movielens_pipeline.training.trained_model import TrainedModel
from steps.training_step import training_step


@training_step(lrml_model, pairwise)
def lrml_train(
    sequence_dataset: SequenceDataset,
    model: LRMLHyperparameters = LRMLHyperparameters(),
    train: LRMLTrainConfig = LRMLTrainConfig(),
    warm_start_champion: Optional[ChampionRecord] = None,
    device: str = "auto",
    processes: int = 1,
) -> Annotated[TrainedModel, "lrml_model"]:
    """LRML metric learning on the training part of each user's sequence (implicit feedback).

    ``warm_start_champion`` (load_champion's record, passed when the run warm-starts): training
    continues from the registry's LRML model, the champion first; tables grown for new users
    and items.
    """
    model_config = pairwise.lrml_config(sequence_dataset, model)
    return tracked_pairwise_training("lrml", sequence_dataset, model_config, train, device, lrml_model.LRML,
                                     pairwise.train_lrml, warm_start_champion, processes)  # fmt: skip
