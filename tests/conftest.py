"""Hermetic test session: a throwaway ZenML store, repository and MLflow store.

The environment is set before anything imports ZenML, so no test reads or writes the user's
ZenML config, the checkout's .zen repository, or the checkout's MLflow store.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SESSION_DIR = Path(tempfile.mkdtemp(prefix="movielens-tests-"))
ZENML_REPOSITORY = SESSION_DIR / "zenml-repository"
MLFLOW_DIR = SESSION_DIR / "mlflow"

os.environ.update(
    ZENML_CONFIG_PATH=str(SESSION_DIR / "zenml-config"),
    ZENML_REPOSITORY_PATH=str(ZENML_REPOSITORY),
    ZENML_ANALYTICS_OPT_IN="false",
    ZENML_AUTO_OPEN_DASHBOARD="false",
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    MLFLOW_TRACKING_URI=f"sqlite:///{MLFLOW_DIR / 'mlflow.db'}",
    MOVIELENS_CHECKPOINT_DIR=str(SESSION_DIR / "checkpoints"),
)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def zenml_stack():
    """An initialised ZenML repository with the project's stack active; yields the MLflow dir."""
    from zenml.utils import source_utils

    ZENML_REPOSITORY.mkdir(parents=True, exist_ok=True)
    from zenml.client import Client

    Client.initialize(root=ZENML_REPOSITORY)
    # Steps are imported from the checkout, not from the throwaway repository folder.
    source_utils.set_custom_source_root(REPO_ROOT)
    from movielens_pipeline.integrations.stack import (
        ensure_experiments,
        ensure_stack,
        experiment_names,
    )

    MLFLOW_DIR.mkdir(parents=True, exist_ok=True)
    ensure_stack(MLFLOW_DIR)
    # Created up front so their artifacts live in the session folder, not in ./mlruns.
    configs = [REPO_ROOT / "zenml_config.yaml", *(REPO_ROOT / "configs").glob("*.yaml")]
    ensure_experiments(MLFLOW_DIR, experiment_names(configs))
    yield MLFLOW_DIR


@pytest.fixture
def mlflow_client(zenml_stack):
    """A client on the session's MLflow store (ZenML resets the global tracking URI after steps)."""
    import mlflow

    uri = f"sqlite:///{MLFLOW_DIR / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(uri, uri)


class SmokeRun:
    def __init__(self, run):
        self.run = run


@pytest.fixture(scope="session")
def smoke_run(zenml_stack):
    """One run of the whole pipeline with configs/smoke.yaml, shared by the tests that read it."""
    from zenml.client import Client

    from pipelines.training import training_pipeline

    run = training_pipeline.with_options(config_path=str(REPO_ROOT / "configs" / "smoke.yaml"))()
    return SmokeRun(Client().get_pipeline_run(run.id))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: a second thread only adds synchronisation, which stalls badly when the
    machine's cores are busy with other jobs. Modules of small-model tests use it for all tests."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

