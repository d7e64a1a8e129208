"""Run a pipeline the way `make run` (and `make recommend`, `make tune`) does: one run at a time
per client, the run a killed process of this client left behind marked failed first, and on
failure a short account of the cause as the last lines.

    python -m movielens_pipeline.integrations.run_pipeline --config zenml_config.yaml
        [--local-stack .mlflow --experiments-from zenml_config.yaml ...] [--report]

What `make run` passes: ``--local-stack`` first sets up the local stack and MLflow store (as
`make stack` does), and ``--report`` ends a successful run with its results and the MLflow
tracking URI, both in this process rather than in processes of their own (each of which spent
7-14 s starting ZenML and MLflow again).

The pipeline is the training pipeline, or the one a config is for (``PIPELINES``);
`zenml pipeline run <pipeline> -c CONFIG` runs the same pipeline without these extras.
"""

from __future__ import annotations

import argparse
import fcntl
import secrets
import sys
from contextlib import contextmanager
from pathlib import Path

import yaml

from movielens_pipeline.integrations.logs import plain_output_unless_terminal

plain_output_unless_terminal()  # before anything imports zenml

ABANDONED = "the process running it ended without reporting (killed?); marked failed by the next run"

# Run configs of the pipelines other than training, by file name.
PIPELINES = {
    "recommend.yaml": "pipelines.batch_inference.batch_inference_pipeline",
    "tuning.yaml": "pipelines.tuning.tuning_pipeline",
}
TRAINING = "pipelines.training.training_pipeline"


def pipeline_for_config(path: str | Path):
    """The pipeline a run config is for."""
    from zenml.utils import source_utils

    return source_utils.load(PIPELINES.get(Path(path).name, TRAINING))


@contextmanager
def exclusive_run_lock():
    """Held for the whole run: while another run of this client holds it, this one refuses to
    start. Yields the client's folder, where the lock and the record of its last run live."""
    from zenml.config.global_config import GlobalConfiguration

    folder = Path(GlobalConfiguration().config_directory)
    path = folder / "movielens-pipeline-run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another run of the pipeline is in progress (lock {path}); wait for it to end") from None
        yield folder


def run_name_with_marker(config_path: str | Path, pipeline_name: str, marker: str) -> str:
    """The run's name template (the config's ``run_name`` or ZenML's default) with ``marker``
    appended, so that this client can find the run again after its process died."""
    from zenml.pipelines.run_utils import get_default_run_name

    with open(config_path) as handle:  # read from the file, a YAML error names it
        configured = (yaml.safe_load(handle) or {}).get("run_name")
    return f"{configured or get_default_run_name(pipeline_name)}-{marker}"


def runs_with_marker(client, marker: str, **filters) -> list:
    """The runs whose names carry ``marker``: the ones this client started, never another's."""
    return client.list_pipeline_runs(name=f"contains:{marker}", size=1000, **filters).items


def mark_abandoned_runs(marker: str) -> list[str]:
    """The runs this client started last (their names carry ``marker``) that are still "running"
    while this client holds the lock belong to a process that died: mark them failed, in ZenML
    and their MLflow runs (with their nested step and trial runs). Runs other clients of a shared
    server started are left alone, since they may well be alive. Returns the ZenML run names."""
    import mlflow
    from zenml.client import Client
    from zenml.enums import ExecutionStatus
    from zenml.models import PipelineRunUpdate, StepRunUpdate

    client = Client()
    unfinished = (ExecutionStatus.RUNNING, ExecutionStatus.INITIALIZING)
    marked = []
    for status in unfinished:
        for run in runs_with_marker(client, marker, status=status):
            for step in run.steps.values():
                if step.status in unfinished:
                    client.zen_store.update_run_step(step.id, StepRunUpdate(status=ExecutionStatus.FAILED))
            client.zen_store.update_run(run.id, PipelineRunUpdate(status=ExecutionStatus.FAILED, status_reason=ABANDONED))
            marked.append(run.name)
    tracker = client.active_stack.experiment_tracker
    if tracker is not None:
        mlflow_client = mlflow.MlflowClient(tracker.get_tracking_uri())
        experiments = [e.experiment_id for e in mlflow_client.search_experiments()]
        running = mlflow_client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'")
        stale = {run.info.run_id for run in running if marker in (run.info.run_name or "")}
        grown = True
        while grown:  # the nested runs of the stale ones, at any depth
            children = {run.info.run_id for run in running if run.data.tags.get("mlflow.parentRunId") in stale}
            grown = not children <= stale
            stale |= children
        for run_id in stale:
            mlflow_client.set_tag(run_id, "failure", ABANDONED)
            mlflow_client.set_terminated(run_id, status="FAILED")
    return marked


def exception_text(traceback: str) -> str:
    """The exception's own message at the end of a traceback (without the stack frames)."""
    lines = traceback.rstrip().splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
    start = frames[-1] + 1 if frames else 0
    while start < len(lines) and lines[start].startswith("    "):
        start += 1
    return "\n".join(lines[start:]).strip()


def exception_chain(error: BaseException) -> str:
    """``error`` and the exceptions that caused it, one per line, outermost first: ZenML wraps a
    refused configuration (``Input validation failed for input 'finetuning'``) around the
    validation error that names the key."""
    lines, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        line = f"{type(error).__name__}: {error}"
        if line not in lines:
            lines.append(line)
        error = error.__cause__ or error.__context__
    return "\n".join(lines)


def failure_report(marker: str, config_path: str, error: BaseException) -> str:
    """What a person reads first when ``run_pipeline`` fails: the run this client started (found
    by its marker: on a shared server the pipeline's last run may be another client's) with its
    failed steps, or, where no run was created (a configuration ZenML refused, a file that cannot
    be read), the error itself. Where the ZenML store cannot be asked (its server went away during
    the run), the error itself and why the run could not be looked up, never a second traceback."""
    from zenml.client import Client

    try:
        runs = runs_with_marker(Client(), marker)
        if runs:
            return failure_summary(runs[0], error)
    except Exception as lookup_error:
        return (f"\nFAILED: {exception_chain(error)}\nThe run could not be looked up in the ZenML store, so "
                f"which step failed is not known here: {type(lookup_error).__name__}: {lookup_error}")  # fmt: skip
    return f"\nNot started: no run could be created from {config_path}:\n{exception_chain(error)}"


def failure_summary(run, error: BaseException | None = None) -> str:
    """Which step failed, why, and where its report is: what a person reads first. ``error``, the
    exception the run raised, is shown where no step failed (the run itself did)."""
    lines = [f"\nRun {run.name} FAILED."]
    failed = {name: step for name, step in run.steps.items() if str(step.status) == "failed"}
    if not failed and error is not None:
        lines.append(f"Error: {exception_chain(error)}")
    for name, step in failed.items():
        info = step.exception_info
        lines.append(f"Step {name} failed: {exception_text(info.traceback) if info else 'no exception recorded'}")
        if name == "validate_data":
            lines.append("Report: the ZenML artifact 'failed_validation_report' of this run (HTML, also in the "
                         "MLflow run of validate_data under data_validation/report.html).")
    nothing = "Nothing was registered. " if run.pipeline.name == "training_pipeline" else ""
    lines.append(f"{nothing}Full logs: zenml pipeline runs logs {run.id}")
    return "\n".join(lines)


def closing_report(marker: str, browse_command: str) -> str:
    """What a successful run ends with: a training run's results (``run_report``) and where MLflow is."""
    import mlflow
    from zenml.client import Client

    from movielens_pipeline.integrations.run_report import report_text

    client = Client()
    run = runs_with_marker(client, marker)[0]
    text = report_text(run) + "\n" if run.pipeline.name == "training_pipeline" else ""
    tracker = client.active_stack.experiment_tracker
    uri = tracker.get_tracking_uri() if tracker is not None else mlflow.get_tracking_uri()
    return f"{text}MLflow tracking URI: {uri}  (browse it with: {browse_command})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="zenml_config.yaml")
    parser.add_argument("--local-stack", type=Path, metavar="MLFLOW_DIR",
                        help="set up the local stack with its MLflow store in MLFLOW_DIR first")
    parser.add_argument("--experiments-from", type=Path, action="append", default=[], metavar="CONFIG",
                        help="with --local-stack: create the MLflow experiments this run config names")
    parser.add_argument("--report", action="store_true", help="end with the run's results and the MLflow URI")
    parser.add_argument("--browse-command", default="make mlflow-ui", help="how the report says to open MLflow")
    args = parser.parse_args()
    from movielens_pipeline.integrations.preflight import ServiceUnavailable, check_services, check_zenml_server

    if args.local_stack is not None:
        from movielens_pipeline.integrations.stack import ensure_local_stack

        print(ensure_local_stack(args.local_stack, args.experiments_from))
    try:  # before anything trains: one line naming the service that is down and where
        check_zenml_server()
        pipeline = pipeline_for_config(args.config)
        check_services()
    except ServiceUnavailable as error:
        print(f"Not started: {error}", file=sys.stderr)
        return 1
    with exclusive_run_lock() as client_folder:
        record = client_folder / "movielens-pipeline-last-run"
        if record.exists():
            for name in mark_abandoned_runs(record.read_text().strip()):
                print(f"Marked run {name} failed: {ABANDONED}")
        marker = secrets.token_hex(4)
        record.write_text(marker)
        try:
            pipeline.with_options(config_path=args.config,
                                  run_name=run_name_with_marker(args.config, pipeline.name, marker))()  # fmt: skip
        except Exception as error:
            print(failure_report(marker, args.config, error), file=sys.stderr)
            return 1
    if args.report:
        print(closing_report(marker, args.browse_command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
