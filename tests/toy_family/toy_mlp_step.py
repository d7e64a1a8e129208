"""The toy model's training step (see toy_mlp.py): the same shape as every training step."""

from typing import Annotated, Optional

from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.integrations.tracking import log_trained_run
from movielens_pipeline.serving.records import ChampionRecord
from movielens_pipeline.training.trained_model import TrainedModel
from steps.training_step import training_step
from toy_family import toy_mlp


# No cache dependency on toy_mlp: ZenML would name it by its path under the repository
# (tests.toy_family.toy_mlp), another module than the one the test imports. A model in models/
# lists its module here, as the project's training steps do.
@training_step()
def toy_mlp_train(
    sequence_dataset: SequenceDataset,
    warm_start_champion: Optional[ChampionRecord] = None,
    epochs: int = 3,
) -> Annotated[TrainedModel, "toy_mlp_model"]:
    trained = toy_mlp.train(sequence_dataset, {"train": {"epochs": epochs, "patience": epochs}})
    return log_trained_run(trained, "toy_mlp", "cpu", sequence_dataset.fingerprint())
