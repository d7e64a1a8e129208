from typing import Annotated

import mlflow
from zenml import get_step_context
from zenml.client import Client

from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.integrations import pod_training
from movielens_pipeline.integrations.tracking import log_trained_run
from movielens_pipeline.training.trained_model import TrainedModel
from steps.training_step import training_step


@training_step(pod_training)
def collect_pod_training(
    sequence_dataset: SequenceDataset,
    model_name: str,
    pods: int,
    processes_per_pod: int,
    parameters: dict,
) -> Annotated[TrainedModel, "pod_trained_model"]:
    """The model the ``<this step>_pods`` command step trained on ``pods`` pods: its weights read
    from the artifact store, its configuration and per-epoch history logged to this step's MLflow
    run (the pods log nothing), handed on like any training step's model."""
    context = get_step_context()
    uri = pod_training.result_uri(Client().active_stack.artifact_store.path, str(context.pipeline_run.id),
                                  context.step_run.name)  # fmt: skip
    trained = pod_training.read_result(uri)
    mlflow.log_params({"pods": pods, "processes_per_pod": processes_per_pod, "parameters": parameters})
    for record in trained.history:
        mlflow.log_metrics({f"train_{k}": float(v) for k, v in record.items() if k != "epoch"}, step=record["epoch"])
    return log_trained_run(trained, model_name, f"{pods} pods", sequence_dataset.fingerprint())
