from zenml.steps import CommandStep

from movielens_pipeline.integrations.pod_training import POD_ENVIRONMENT, PodTraining, pod_command


def train_on_pods(model: str, step: str, dataset: str, pretrained: str | None, training: PodTraining) -> CommandStep:
    """The command step that trains ``model`` on ``training.pods`` pods of the stack's Kubernetes
    step operator (``integrations.pod_training``); ``step`` (collect_pod_training) reads its result.
    ``dataset``, ``pretrained``: ``<step>:<output>`` of the run. GPUs and memory per pod: the run config's ``settings: step_operator.kubernetes: pod_settings``
    of ``<step>_pods``."""
    return CommandStep(
        command=pod_command(model, step, dataset, pretrained, training),
        name=f"{step}_pods",
        step_operator=True,
        settings={"step_operator.kubernetes": {"pod_count": training.pods, "pod_settings": {"env": POD_ENVIRONMENT}}},
    )
