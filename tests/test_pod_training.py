"""Training on several Kubernetes pods, checked without a cluster.

- The DAG: a model listed in ``pod_training`` compiles to a command step for ZenML's Kubernetes
  step operator (``pod_count`` pods, the run id in every pod's environment, the run config's GPU
  requests) followed by the step that collects its result.
- The job: ZenML's own manifest builders make of that step an Indexed Job of GPU pods with a
  headless service, and the environment ZenML gives each pod is what the pod's command reads.
- The pods' command: run as two local "pods" (two processes, each with the environment ZenML and
  Kubernetes set, one worker each) against a real pipeline run's artifacts, it trains what one
  process trains (within 1e-5) and writes it where the collecting step reads it; the collecting
  step, run in a pipeline, hands those weights on and logs the run.
- Failure: a worker killed on one pod fails both pods within seconds, naming its rank; none hangs.
"""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import torch
import yaml
from zenml import get_step_context, pipeline, step
from zenml.client import Client

from conftest import REPO_ROOT
from movielens_pipeline.integrations import pod_training

pytest.importorskip("kubernetes")

POD_CONFIG = {
    "parameters": {
        "models": ["s3rec", "lrml"],
        "pod_training": {"s3rec": {"pods": 2, "processes_per_pod": 4, "parameters": {"finetuning": {"epochs": 3}}}},
    },
    "steps": {
        "s3rec_finetune_pods": {
            "settings": {
                "step_operator.kubernetes": {
                    "pod_settings": {"resources": {"requests": {"nvidia.com/gpu": "4"}, "limits": {"nvidia.com/gpu": "4"}}}
                }
            }
        }
    },
}


@pytest.fixture
def pod_snapshot(zenml_stack, tmp_path):
    """The pipeline compiled by ZenML with POD_CONFIG on a stack that has a Kubernetes step
    operator (registered, never reached), as ``zenml pipeline run`` compiles it."""
    from zenml.enums import StackComponentType

    from pipelines.training import training_pipeline

    client = Client()
    previous = client.active_stack_model
    try:
        stack = client.get_stack("with-k8s-step-operator")
    except KeyError:
        operator = client.create_stack_component(name="k8s_gpu", flavor="kubernetes",
                                                 component_type=StackComponentType.STEP_OPERATOR,
                                                 configuration={"kubernetes_context": "offline"})  # fmt: skip
        components = {kind: [component.id for component in found] for kind, found in previous.components.items()}
        stack = client.create_stack(name="with-k8s-step-operator",
                                    components=components | {StackComponentType.STEP_OPERATOR: [operator.id]})  # fmt: skip
    config = tmp_path / "pods.yaml"
    config.write_text(yaml.safe_dump(POD_CONFIG))
    client.activate_stack(stack.id)
    try:
        pipeline = training_pipeline.with_options(config_path=str(config))
        pipeline.prepare()
        snapshot, _, _ = pipeline._compile(config_path=str(config))
    finally:
        client.activate_stack(previous.id)
    return snapshot.step_configurations


def step_operator_settings(steps, name: str) -> dict:
    return steps[name].config.settings["step_operator:k8s_gpu"].model_dump()


def test_a_model_on_pods_is_a_command_step_for_the_step_operator_then_its_collector(pod_snapshot):
    pods, collect = pod_snapshot["s3rec_finetune_pods"], pod_snapshot["s3rec_finetune"]
    assert "lrml_train" in pod_snapshot and "lrml_train_pods" not in pod_snapshot  # other models as before
    config = pods.config
    assert config.step_operator is True and config.enable_cache is False
    command = config.command
    assert command[:3] == ["python", "-m", "movielens_pipeline.integrations.pod_training"]
    arguments = dict(zip(command[3::2], command[4::2]))
    assert arguments == {"--model": "s3rec", "--step": "s3rec_finetune", "--dataset": "build_dataset:sequence_dataset",
                         "--processes": "4", "--parameters": json.dumps({"finetuning": {"epochs": 3}}),
                         "--pretrained": "s3rec_pretrain:s3rec_pretrained"}  # fmt: skip
    assert set(pods.spec.upstream_steps) == {"build_dataset", "s3rec_pretrain"}
    assert set(collect.spec.upstream_steps) == {"build_dataset", "s3rec_finetune_pods"}
    assert collect.config.enable_cache is False and collect.config.step_operator is None
    settings = step_operator_settings(pod_snapshot, "s3rec_finetune_pods")
    assert settings["pod_count"] == 2
    assert settings["pod_settings"]["env"] == pod_training.POD_ENVIRONMENT
    assert settings["pod_settings"]["resources"]["limits"] == {"nvidia.com/gpu": "4"}  # the run config's, merged in


def test_the_step_operator_starts_an_indexed_job_of_gpu_pods_whose_environment_the_command_reads(pod_snapshot):
    from zenml.integrations.kubernetes import kube_utils
    from zenml.integrations.kubernetes.flavors.kubernetes_step_operator_flavor import KubernetesStepOperatorSettings
    from zenml.integrations.kubernetes.manifest_utils import (
        build_headless_service_manifest,
        build_job_manifest,
        build_pod_manifest,
        pod_template_manifest_from_pod,
    )

    settings = KubernetesStepOperatorSettings.model_validate(step_operator_settings(pod_snapshot, "s3rec_finetune_pods"))
    command = pod_snapshot["s3rec_finetune_pods"].config.command
    # What KubernetesStepOperator.submit_with_allocation builds, with ZenML's own functions.
    name = kube_utils.multi_pod_job_name("a1b2c3d4-s3rec_finetune_pods-training_pipeline-step-operator", 2)
    environment = kube_utils.multi_pod_environment(job_name=name, namespace="movielens", pod_count=settings.pod_count)
    pod = build_pod_manifest(pod_name=None, image_name="registry.example.com/movielens:latest", command=command[:3],
                             args=command[3:], env=environment, privileged=False, pod_settings=settings.pod_settings,
                             labels={"run_id": "8f14e45f-ceea-467f-a0e6-0e4b4b4b4b4b"})  # fmt: skip
    job = build_job_manifest(job_name=name, pod_template=pod_template_manifest_from_pod(pod), backoff_limit=0,
                             pod_count=settings.pod_count)  # fmt: skip
    assert (job.spec.completion_mode, job.spec.completions, job.spec.parallelism) == ("Indexed", 2, 2)
    container = job.spec.template.spec.containers[0]
    assert container.resources["limits"]["nvidia.com/gpu"] == "4"
    env = {variable.name if hasattr(variable, "name") else variable["name"]: variable for variable in container.env}
    assert pod_training.RUN_ID in env and pod_training.MAIN_ADDRESS in env
    assert build_headless_service_manifest(
        job.__class__(metadata=job.metadata.__class__(name=name, uid="u"), spec=job.spec)
    ).spec.cluster_ip == "None"
    # The pod's command reads exactly that environment (plus Kubernetes' index and the label).
    pod_environment = environment | {pod_training.POD_INDEX: "1", pod_training.RUN_ID: "run-7"}
    nodes = pod_training.nodes_from_environment(pod_environment, "s3rec_finetune")
    assert (nodes.count, nodes.rank, nodes.main_port) == (2, 1, 29500)
    assert nodes.main_address == f"{name}-0.{name}.movielens.svc" and nodes.job_id == "run-7-s3rec_finetune"
    with pytest.raises(RuntimeError, match="JOB_COMPLETION_INDEX not set"):
        pod_training.nodes_from_environment(environment | {pod_training.RUN_ID: "run-7"}, "s3rec_finetune")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_pods_train_on_a_runs_artifacts_what_one_process_trains(smoke_run, zenml_stack):
    from movielens_pipeline.families import model_spec

    run = smoke_run.run
    # One optimizer step over every training row, dropout off. Adam's first step moves a coordinate
    # by lr * g / (|g| + 1e-8): where a summed gradient is near 1e-8, the other summation order of
    # two ranks moves it by up to a few 1e-6 (one coordinate of 43k here), hence 1e-5.
    parameters = {"model": {"hidden_size": 32, "max_len": 20, "hidden_dropout": 0.0, "attention_dropout": 0.0},
                  "finetuning": {"epochs": 1, "batch_size": 100_000, "patience": 1}}  # fmt: skip
    command = pod_training.pod_command("s3rec", "s3rec_finetune", "build_dataset:sequence_dataset", "s3rec_pretrain:s3rec_pretrained",
                                       pod_training.PodTraining(pods=2, parameters=parameters))  # fmt: skip
    environment = os.environ | {pod_training.RUN_ID: str(run.id), pod_training.POD_COUNT: "2",
                                pod_training.MAIN_ADDRESS: "127.0.0.1", pod_training.MAIN_PORT: str(free_port()),
                                "PYTHONPATH": str(REPO_ROOT)}  # fmt: skip
    pods = [subprocess.Popen([sys.executable, *command[1:]], env=environment | {pod_training.POD_INDEX: str(index)},
                             cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for index in range(2)]  # fmt: skip
    try:
        outputs = [pod.communicate(timeout=600)[0] for pod in pods]
    finally:
        for pod in pods:
            pod.kill()
    for pod, output in zip(pods, outputs):
        assert pod.returncode == 0, output[-3000:]

    store = Client().active_stack.artifact_store.path
    on_pods = pod_training.read_result(pod_training.result_uri(store, str(run.id), "s3rec_finetune"))
    dataset = run.steps["build_dataset"].outputs["sequence_dataset"][0].load()
    pretrained = run.steps["s3rec_pretrain"].outputs["s3rec_pretrained"][0].load()
    alone = model_spec("s3rec").trainer(dataset, parameters, pretrained=pretrained)
    assert on_pods.kind == "s3rec" and len(on_pods.history) == 1
    for name, value in alone.state_dict.items():
        torch.testing.assert_close(on_pods.state_dict[name], value, atol=1e-5, rtol=0, msg=name)
    with pytest.raises(FileNotFoundError, match="the pods did not finish"):
        pod_training.read_result(pod_training.result_uri(store, str(run.id), "lrml_train"))


@step
def pods_stand_in(source_run: str) -> None:
    """Writes what pod 0 of ``lrml_train_pods`` would write: here, ``source_run``'s LRML."""
    trained = Client().get_pipeline_run(source_run).steps["lrml_train"].outputs["lrml_model"][0].load()
    run_id = str(get_step_context().pipeline_run.id)
    pod_training.write_result(trained, pod_training.result_uri(Client().active_stack.artifact_store.path,
                                                               run_id, "lrml_train"))  # fmt: skip


@pipeline(enable_cache=False)
def collect_only(source_run: str):
    from steps.collect_pod_training import collect_pod_training

    dataset = Client().get_pipeline_run(source_run).steps["build_dataset"].outputs["sequence_dataset"][0]
    pods_stand_in(source_run, id="lrml_train_pods")
    collect_pod_training(dataset, model_name="lrml", pods=2, processes_per_pod=1, parameters={"train": {"epochs": 2}},
                         id="lrml_train", after="lrml_train_pods")  # fmt: skip


def test_the_collecting_step_hands_on_the_pods_model_and_logs_its_run(smoke_run, mlflow_client):
    trained = smoke_run.run.steps["lrml_train"].outputs["lrml_model"][0].load()
    run = Client().get_pipeline_run(collect_only(str(smoke_run.run.id)).id)
    collected = run.steps["lrml_train"].outputs["pod_trained_model"][0].load()
    assert collected.weights_fingerprint() == trained.weights_fingerprint()
    assert collected.summary["name"] == "lrml"
    mlflow_run = mlflow_client.get_run(collected.summary["mlflow_run_id"])
    assert mlflow_run.data.params["pods"] == "2" and mlflow_run.data.tags["model"] == "lrml"
    curve = mlflow_client.get_metric_history(mlflow_run.info.run_id, "train_loss")
    assert [point.step for point in curve] == [record["epoch"] for record in trained.history]


POD = """
import sys
import time
sys.path[:0] = [{repo!r}, {tests!r}]
import torch
from test_lrml import planted_dataset
from movielens_pipeline.integrations import workers
from movielens_pipeline.training.checkpoints import CheckpointStore
from movielens_pipeline.training.distributed import Nodes
from movielens_pipeline.training.loop import no_logging
from movielens_pipeline.training.pairwise import LRMLHyperparameters, LRMLTrainConfig, train_lrml

if __name__ == "__main__":
    workers.train(train_lrml, planted_dataset(), 1, torch.device("cpu"), no_logging,
                  CheckpointStore({checkpoints!r}, "job", "key"), Nodes(2, {rank}, "127.0.0.1", {port}, "job"),
                  model_config=LRMLHyperparameters(dim=8), cfg=LRMLTrainConfig(epochs=500, patience=500))
"""


def test_a_worker_killed_on_one_pod_fails_both_pods_within_seconds_naming_its_rank(tmp_path):
    from test_distributed import wait_for, workers_of

    port = free_port()
    pods = []
    for rank in range(2):
        script = tmp_path / f"pod{rank}.py"
        script.write_text(POD.format(repo=str(REPO_ROOT), tests=str(REPO_ROOT / "tests"), rank=rank, port=port,
                                     checkpoints=str(tmp_path / "checkpoints")))  # fmt: skip
        pods.append(subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True))  # fmt: skip
    try:
        # Rank 0 (pod 0) writes a checkpoint after each epoch: both pods are past the rendezvous.
        wait_for(lambda: any((tmp_path / "checkpoints").glob("*/*.pt")), 240, "the first epoch")
        victim = workers_of(pods[1])[0]
        killed = time.monotonic()
        victim.kill()
        outputs = [pod.communicate(timeout=60)[0] for pod in pods]
    finally:
        for pod in pods:
            pod.kill()  # their workers die with them
    assert all(pod.returncode != 0 for pod in pods) and time.monotonic() - killed < 30
    assert f"worker rank 1 of 2 failed: Signal 9 (SIGKILL) received by PID {victim.pid}" in outputs[1], outputs[1][-2000:]
    assert "worker rank 0 of 2 failed" in outputs[0], outputs[0][-2000:]  # its peer gone, not hanging


@pytest.mark.parametrize(
    "pod_config, complaint",
    [
        ({"bpr": {"pods": 2}}, r"pod_training names \['bpr'\], which are not in models"),
        ({"s3rec": {"pods": 2, "gpus": 4}}, r"pod_training.s3rec: unknown keys \['gpus'\]"),
        ({"s3rec": {"pods": 0}}, "pods and processes_per_pod must be >= 1"),
        ({"s3rec": {"pods": 2, "parameters": {"train": {}}}}, r"'train' is not one of \['finetuning', 'model'\]"),
        ({"lrml": {"pods": 2, "parameters": {"train": {"epoks": 3}}}}, "epoks"),
    ],
)
def test_a_wrong_pod_training_fails_when_the_run_compiles(zenml_stack, pod_config, complaint):
    from pipelines.training import training_pipeline

    pipeline = training_pipeline.with_options(parameters={"models": ["s3rec", "lrml"], "pod_training": pod_config})
    with pytest.raises(Exception, match=complaint):
        pipeline.prepare()


def test_a_model_without_pretraining_on_pods_starts_from_the_built_dataset_alone(zenml_stack):
    from pipelines.training import training_pipeline

    pipeline = training_pipeline.with_options(parameters={"models": ["lrml"], "pod_training": {"lrml": {"pods": 3}}})
    pipeline.prepare()
    pods = pipeline.invocations["lrml_train_pods"]
    command = pods.step.configuration.command
    assert "--pretrained" not in command and command[command.index("--dataset") + 1] == "build_dataset:sequence_dataset"
    assert set(pods.upstream_steps) == {"build_dataset"} and "lrml_train_pods" in pipeline.invocations["lrml_train"].upstream_steps
    assert pods.step.configuration.settings["step_operator.kubernetes"].model_dump()["pod_count"] == 3
