"""Training one model on several pods: the command every pod of a Kubernetes step operator's
multi-pod job runs, and the paths its result travels by.

ZenML 0.98's step operator starts several pods (``pod_count``) only for a command step, which has
no inputs or outputs. So a model trained on pods takes two steps of the DAG:

  ``<step>_pods`` (command step, ``pod_count`` pods): every pod loads the built dataset (and the
      pretrained weights) from this run's artifacts, starts its workers as one node of the job
      (torch's static rendezvous at pod 0, whose address ZenML puts in the pods' environment),
      and trains; global rank 0, on pod 0, writes the weights (safetensors + JSON) to
      ``<artifact store>/pod-training/<run id>/<step>``;
  ``<step>`` (``steps.collect_pod_training``): reads them back, logs the MLflow run, and hands
      the model to evaluate like any other training step.

The pods learn their run's id from their own ``run_id`` label (the Kubernetes downward API,
``POD_ENVIRONMENT``), the rendezvous from ZenML's multi-pod environment and their rank from the
Indexed Job's ``JOB_COMPLETION_INDEX``.
"""

from __future__ import annotations

import argparse
import json
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from movielens_pipeline.training.distributed import Nodes
from movielens_pipeline.training.trained_model import META_FILE, TrainedModel

RUN_ID = "ZENML_RUN_ID"
# Environment every pod of the job gets (ZenML's pod settings, ``env``): its run's id, read from
# the label ZenML puts on the pod.
POD_ENVIRONMENT = [{"name": RUN_ID, "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['run_id']"}}}]
# ZenML's multi-pod environment (zenml.integrations.kubernetes.constants) and Kubernetes' Indexed Job.
POD_COUNT, MAIN_ADDRESS, MAIN_PORT = "ZENML_KUBERNETES_POD_COUNT", "ZENML_KUBERNETES_MAIN_ADDRESS", "ZENML_KUBERNETES_MAIN_PORT"
POD_INDEX = "JOB_COMPLETION_INDEX"


@dataclass(frozen=True)
class PodTraining:
    """How one model of the run trains on pods (the training pipeline's ``pod_training``).

    ``pods``: pods of the job; ``processes_per_pod``: workers in each (one per GPU of a pod);
    ``parameters``: the training parameters, shaped like the model's training step's
    (``{"finetuning": {"epochs": 50}}``, ``{"train": {...}}``), the step's defaults otherwise.
    """

    pods: int
    processes_per_pod: int = 1
    parameters: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.pods < 1 or self.processes_per_pod < 1:
            raise ValueError(f"pod_training: pods and processes_per_pod must be >= 1, got {self}")


def pod_trainings(config: Mapping[str, Mapping], models: list[str]) -> dict[str, PodTraining]:
    """The pipeline parameter (model name -> its settings) as ``PodTraining``s; a model the run
    does not train, or an unknown key, fails when the run compiles."""
    unknown = sorted(set(config) - set(models))
    if unknown:
        raise ValueError(f"pod_training names {unknown}, which are not in models: {models}")
    trainings = {}
    for model, settings in config.items():
        extra = sorted(set(settings) - {field.name for field in fields(PodTraining)})
        if extra:
            raise ValueError(f"pod_training.{model}: unknown keys {extra}; known: pods, processes_per_pod, parameters")
        trainings[model] = PodTraining(**settings)
    return trainings


def checked_parameters(train_step, parameters: dict) -> dict:
    """``parameters`` validated against the typed parameter groups of the model's training step
    (``model``, ``finetuning``, ``train``), so a misspelled key fails when the run compiles, not
    in the pods."""
    from movielens_pipeline.parameters import StepParameters

    groups = {name: kind for name, kind in typing.get_type_hints(train_step.entrypoint).items()
              if isinstance(kind, type) and issubclass(kind, StepParameters)}  # fmt: skip
    for name, value in parameters.items():
        if name not in groups:
            raise ValueError(f"pod_training parameters: {name!r} is not one of {sorted(groups)} of {train_step.name}")
        groups[name].model_validate(value)
    return parameters


def nodes_from_environment(environ: Mapping[str, str], step: str) -> Nodes:
    """This pod's place in the job, from what ZenML and Kubernetes put in its environment."""
    missing = [name for name in (RUN_ID, POD_COUNT, MAIN_ADDRESS, MAIN_PORT, POD_INDEX) if not environ.get(name)]
    if missing:
        raise RuntimeError(f"not a pod of a multi-pod job: {', '.join(missing)} not set")
    return Nodes(count=int(environ[POD_COUNT]), rank=int(environ[POD_INDEX]), main_address=environ[MAIN_ADDRESS],
                 main_port=int(environ[MAIN_PORT]), job_id=f"{environ[RUN_ID]}-{step}")  # fmt: skip


def result_uri(artifact_store_path: str, run_id: str, step: str) -> str:
    return f"{artifact_store_path.rstrip('/')}/pod-training/{run_id}/{step}"


def write_result(trained: TrainedModel, uri: str) -> None:
    """The weights (safetensors) and the rest (JSON) at ``uri``, local or in the artifact store."""
    from zenml.io import fileio

    from movielens_pipeline.integrations.materializers import save_trained_model_to

    fileio.makedirs(uri)
    save_trained_model_to(trained, uri)


def read_result(uri: str) -> TrainedModel:
    from zenml.io import fileio

    from movielens_pipeline.integrations.materializers import load_trained_model_from

    if not fileio.exists(f"{uri}/{META_FILE}"):
        raise FileNotFoundError(f"no trained model at {uri}: the pods did not finish their training")
    return load_trained_model_from(uri)


def pod_command(model: str, step: str, dataset: str, pretrained: str | None, training: PodTraining) -> list[str]:
    """What the command step runs in every pod; ``dataset`` and ``pretrained`` name this run's
    artifacts as ``<step>:<output>``."""
    command = ["python", "-m", __name__, "--model", model, "--step", step, "--dataset", dataset,
               "--processes", str(training.processes_per_pod), "--parameters", json.dumps(training.parameters)]  # fmt: skip
    return command + (["--pretrained", pretrained] if pretrained else [])


def train_on_nodes(model: str, parameters: dict, dataset, pretrained: TrainedModel | None, processes: int,
                   nodes: Nodes) -> TrainedModel | None:  # fmt: skip
    """This node's share of the job: ``processes`` workers running the model's trainer (the
    function the tuning pipeline's trials use), no MLflow (the collecting step logs the run)."""
    from movielens_pipeline.integrations import workers
    from movielens_pipeline.training.loop import no_logging
    from movielens_pipeline.training.runtime import pick_device

    return workers.train(_run_trainer, dataset, processes, pick_device("auto"), no_logging, None, nodes=nodes,
                         model=model, parameters=parameters, pretrained=pretrained)  # fmt: skip


def _run_trainer(dataset, device, log_fn, checkpoints, model: str, parameters: dict, pretrained):
    from movielens_pipeline.families import model_spec

    return model_spec(model).trainer(dataset, parameters, log_fn, pretrained)


def _load_output(run, step_and_output: str):
    step, output = step_and_output.split(":")
    return run.steps[step].outputs[output][0].load()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--step", required=True)
    parser.add_argument("--dataset", required=True, help="<step>:<output> of this run")
    parser.add_argument("--pretrained", help="<step>:<output> of this run")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--parameters", type=json.loads, default={})
    args = parser.parse_args(argv)

    from zenml.client import Client

    nodes = nodes_from_environment(os.environ, args.step)
    client = Client()
    run = client.get_pipeline_run(os.environ[RUN_ID])
    dataset = _load_output(run, args.dataset)
    pretrained = _load_output(run, args.pretrained) if args.pretrained else None
    trained = train_on_nodes(args.model, args.parameters, dataset, pretrained, args.processes, nodes)
    if trained is not None:
        write_result(trained, result_uri(client.active_stack.artifact_store.path, str(run.id), args.step))


if __name__ == "__main__":
    main()
