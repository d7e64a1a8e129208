"""Idempotent set-up of the ZenML stack and the MLflow store the pipeline writes to.

    python -m movielens_pipeline.integrations.stack [--mlflow-dir DIR] [--config zenml_config.yaml ...]
    python -m movielens_pipeline.integrations.stack --dashboard-args   # for `make dashboard`
    python -m movielens_pipeline.integrations.stack --delete-runs      # for `make clean`

Registers (or updates) an MLflow experiment tracker and an MLflow model registry that point at
one SQLite tracking store, a stack ``movielens`` with the local orchestrator and artifact store,
and activates it. MLflow experiments named in the run configs are created with their artifact
root beside the SQLite file, so artifacts never land in whatever folder a command ran from.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from movielens_pipeline.integrations.logs import plain_output_unless_terminal

STACK_NAME = "movielens"
TRACKER_NAME = "movielens_mlflow_tracker"
REGISTRY_NAME = "movielens_mlflow_registry"
DEFAULT_EXPERIMENT = "movielens"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MLFLOW_DIR = REPO_ROOT / ".mlflow"


def tracking_uri(mlflow_dir: Path = DEFAULT_MLFLOW_DIR) -> str:
    return f"sqlite:///{Path(mlflow_dir).resolve() / 'mlflow.db'}"


def experiment_names(config_paths: list[Path]) -> set[str]:
    """MLflow experiment names set in run configs (pipeline or step settings)."""
    names = {DEFAULT_EXPERIMENT}
    for path in config_paths:
        config = yaml.safe_load(Path(path).read_text()) or {}
        sections = [config] + list((config.get("steps") or {}).values())
        for section in sections:
            tracker = (section.get("settings") or {}).get("experiment_tracker.mlflow") or {}
            if tracker.get("experiment_name"):
                names.add(tracker["experiment_name"])
    return names


def ensure_experiments(mlflow_dir: Path, names: set[str]) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri(mlflow_dir))
    artifact_root = (Path(mlflow_dir).resolve() / "artifacts").as_uri()
    for name in sorted(names):
        if client.get_experiment_by_name(name) is None:
            client.create_experiment(name, artifact_location=f"{artifact_root}/{name}")


def ensure_stack(mlflow_dir: Path = DEFAULT_MLFLOW_DIR) -> None:
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    uri = tracking_uri(mlflow_dir)
    components = {
        StackComponentType.EXPERIMENT_TRACKER: (TRACKER_NAME, {"tracking_uri": uri}),
        StackComponentType.MODEL_REGISTRY: (REGISTRY_NAME, {}),
    }
    for component_type, (name, configuration) in components.items():
        try:
            component = client.get_stack_component(component_type, name)
            if any(component.configuration.get(key) != value for key, value in configuration.items()):
                client.update_stack_component(name, component_type, configuration=configuration)
        except KeyError:
            client.create_stack_component(name, "mlflow", component_type, configuration)
    try:
        client.get_stack(STACK_NAME)
    except KeyError:
        client.create_stack(
            STACK_NAME,
            components={
                StackComponentType.ORCHESTRATOR: "default",
                StackComponentType.ARTIFACT_STORE: "default",
                StackComponentType.EXPERIMENT_TRACKER: TRACKER_NAME,
                StackComponentType.MODEL_REGISTRY: REGISTRY_NAME,
            },
        )
    if not _is_active(client, STACK_NAME):
        client.activate_stack(STACK_NAME)


def ensure_local_stack(mlflow_dir: Path, config_paths: list[Path]) -> str:
    """The stack and the MLflow experiments the run configs name (``make stack``, or `make run`'s
    own process); returns the line saying so."""
    Path(mlflow_dir).mkdir(parents=True, exist_ok=True)
    ensure_stack(mlflow_dir)
    ensure_experiments(mlflow_dir, experiment_names(config_paths))
    return f"ZenML stack '{STACK_NAME}' active; MLflow tracking URI {tracking_uri(mlflow_dir)}"


PIPELINE_NAME = "training_pipeline"


def dashboard_args() -> str:
    """Where the pipeline's ZenML store is, as arguments of scripts/zenml_dashboard.py."""
    from zenml.config.global_config import GlobalConfiguration

    config = GlobalConfiguration()
    return f"--store-url {config.store_configuration.url} --local-stores {config.local_stores_path}"


def delete_runs() -> None:
    """Delete this project's pipeline, its runs and the artifacts only they used (ZenML's store
    stays, with its stacks and whatever other projects put there)."""
    from zenml.client import Client

    client = Client()
    runs = client.list_pipeline_runs(pipeline_name=PIPELINE_NAME, size=1000)
    while runs.items:
        for run in runs.items:
            client.delete_pipeline_run(run.id)
        runs = client.list_pipeline_runs(pipeline_name=PIPELINE_NAME, size=1000)
    try:
        client.delete_pipeline(PIPELINE_NAME)
    except KeyError:
        pass
    client.prune_artifacts(only_versions=False, delete_from_artifact_store=True)
    print(f"deleted ZenML pipeline {PIPELINE_NAME}, its runs and their artifacts")


def _is_active(client, stack: str) -> bool:
    try:
        return client.active_stack_model.name == stack
    except KeyError:  # the checkout's active stack is one of another ZenML store (the local one)
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow-dir", type=Path, default=DEFAULT_MLFLOW_DIR)
    parser.add_argument("--config", type=Path, action="append", default=[])
    parser.add_argument("--dashboard-args", action="store_true", help="print the dashboard's store arguments")
    parser.add_argument("--delete-runs", action="store_true", help="delete this project's ZenML runs and artifacts")
    parser.add_argument("--team", action="store_true", help="activate the team stack (run as a team client)")
    args = parser.parse_args()
    plain_output_unless_terminal()  # before zenml is imported
    if args.team:
        from zenml.client import Client

        from movielens_pipeline.integrations.team_stack import STACK

        client = Client()
        # Activating rewrites the checkout's .zen/config.yaml, which other clients of the same
        # checkout read at the same moment: write only when something changes.
        if not _is_active(client, STACK):
            client.activate_stack(STACK)
        print(f"ZenML stack '{STACK}' active on the team's ZenML server {Client().zen_store.url}; run commands as its "
              "client: .venv/bin/python -m movielens_pipeline.integrations.team_stack exec -- <command>")
        return
    if args.dashboard_args:
        print(dashboard_args())
        return
    if args.delete_runs:
        delete_runs()
        return
    print(ensure_local_stack(args.mlflow_dir, args.config))


if __name__ == "__main__":
    main()
