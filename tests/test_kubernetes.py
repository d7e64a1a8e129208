"""The Kubernetes recipe, checked without a cluster: ZenML's own pod builders, given
configs/kubernetes.yaml, make pods that request GPUs for the training and evaluation steps and
none for the data steps; the image installs exactly the pins of requirements.txt."""

import pytest
import yaml

from conftest import REPO_ROOT

pytest.importorskip("kubernetes")

CONFIG = REPO_ROOT / "configs" / "kubernetes.yaml"
GPU_STEPS = {"s3rec_pretrain", "s3rec_finetune", "sasrec_finetune", "lrml_train", "evaluate"}


def pod_of(step: str, config: dict):
    """The pod ZenML's Kubernetes orchestrator would start for ``step`` (its own builders)."""
    from zenml.integrations.kubernetes.flavors.kubernetes_orchestrator_flavor import KubernetesOrchestratorSettings
    from zenml.integrations.kubernetes.kube_utils import apply_default_resource_requests
    from zenml.integrations.kubernetes.manifest_utils import build_pod_manifest

    step_settings = (config["steps"].get(step) or {}).get("settings", {}).get("orchestrator.kubernetes", {})
    settings = KubernetesOrchestratorSettings.model_validate(step_settings)
    pod_settings = apply_default_resource_requests(memory="400Mi", pod_settings=settings.pod_settings)
    return build_pod_manifest(pod_name=f"{step}-pod", image_name="registry.example.com/movielens:latest",
                              command=["python", "-m", "zenml.entrypoints.step_entrypoint"], args=[],
                              privileged=False, pod_settings=pod_settings)  # fmt: skip


def test_only_the_training_and_evaluation_pods_request_gpus(zenml_stack):
    from movielens_pipeline.integrations.run_pipeline import pipeline_for_config

    config = yaml.safe_load(CONFIG.read_text())
    pipeline = pipeline_for_config(CONFIG).with_options(config_path=str(CONFIG))
    pipeline.prepare()
    steps = set(pipeline.invocations)
    assert GPU_STEPS <= steps and {"ingest_ratings", "validate_data", "build_dataset", "register"} <= steps
    for step in steps:
        resources = pod_of(step, config).spec.containers[0].resources  # a dict, as ZenML sets it
        gpus = tuple((resources.get(kind) or {}).get("nvidia.com/gpu") for kind in ("requests", "limits"))
        assert gpus == (("1", "1") if step in GPU_STEPS else (None, None)), (step, resources)
        if step in GPU_STEPS:
            assert config["steps"][step]["parameters"]["device"] == "cuda"


def test_the_image_installs_the_pins_of_requirements_txt(zenml_stack):
    from zenml.client import Client
    from zenml.config import DockerSettings
    from zenml.utils.pipeline_docker_image_builder import PipelineDockerImageBuilder

    docker = DockerSettings.model_validate(yaml.safe_load(CONFIG.read_text())["settings"]["docker"])
    assert "cuda" in docker.parent_image
    files = PipelineDockerImageBuilder.gather_requirements_files(docker, Client().active_stack, log=False)
    installed = {line.strip() for _, content, _ in files for line in content.splitlines()
                 if line.strip() and not line.startswith("#")}  # fmt: skip
    pinned = {line.strip() for line in (REPO_ROOT / "requirements.txt").read_text().splitlines() if line.strip()}
    assert pinned <= installed, pinned - installed
    assert all("==" in line for line in pinned)
