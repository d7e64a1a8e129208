"""Training and evaluation steps on several processes: the glue between a step and
``training.distributed``'s workers.

A training step with ``processes`` > 1 writes what its workers need to a folder (the built
dataset as Parquet, initial weights as safetensors), starts them with torch's elastic launcher,
and reads rank 0's weights back (safetensors). Rank 0 logs every epoch to the step's MLflow run
and writes the checkpoints, so a killed step resumes as a one-process one does.

Why torch's launcher in a step, rather than ZenML's ``run_with_accelerate``: the training loop
is this project's own (``training.loop``), not Accelerate's, and the launcher is what torchrun
runs (the same rendezvous, the same environment per rank, the same failure reports), with no
new dependency; on Kubernetes the step operator runs the step, and the step starts its workers
the same way inside its pod. Several pods of one job (``integrations.pod_training``) start theirs
the same way too, each as one node of the job (``distributed.Nodes``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import tempfile
from pathlib import Path
from typing import Callable

import mlflow
import torch

from movielens_pipeline.data.dataset import SequenceDataset, read_dataset, write_dataset
from movielens_pipeline.training import distributed
from movielens_pipeline.training.loop import LogFn, no_logging
from movielens_pipeline.training.trained_model import TrainedModel, load_trained_model, save_trained_model

DATASET = "dataset"
RESULT = "result"


def write_dataset_to(folder: Path, dataset: SequenceDataset) -> None:
    (folder / DATASET).mkdir(parents=True, exist_ok=True)
    write_dataset(dataset, lambda name, mode: open(folder / DATASET / name, mode))


def read_dataset_from(folder: Path) -> SequenceDataset:
    return read_dataset(lambda name, mode: open(Path(folder) / DATASET / name, mode))


def train(function: Callable[..., TrainedModel], dataset: SequenceDataset, processes: int, device: torch.device,
          log_fn: LogFn, checkpoints=None, nodes: distributed.Nodes | None = None, **kwargs) -> TrainedModel | None:  # fmt: skip
    """``function(dataset, device=, log_fn=, checkpoints=, **kwargs)`` (a training function of
    ``movielens_pipeline.training``) in this process, or in ``processes`` workers, on this machine
    or on each of ``nodes``. Returns the trained model where global rank 0 ran (None on the other
    nodes)."""
    if processes <= 1 and nodes is None:
        return function(dataset, device=device, log_fn=log_fn, checkpoints=checkpoints, **kwargs)
    run = mlflow.active_run()
    target = (mlflow.get_tracking_uri(), run.info.run_id) if run is not None else None
    with tempfile.TemporaryDirectory(prefix="training-job-") as tmp:
        folder = Path(tmp)
        write_dataset_to(folder, dataset)
        weights = {}
        for name, value in list(kwargs.items()):
            if isinstance(value, TrainedModel):  # initial weights travel as safetensors
                save_trained_model(value, folder / name)
                weights[name] = str(folder / name)
                kwargs[name] = None
        distributed.launch(_train_worker, (function, str(folder), weights, device.type, target,
                                           _prefix_of(log_fn), checkpoints, kwargs), processes, device.type, nodes)  # fmt: skip
        return load_trained_model(folder / RESULT) if nodes is None or nodes.rank == 0 else None


def _prefix_of(log_fn: LogFn) -> str | None:
    return getattr(log_fn, "prefix", None)


def _train_worker(function, folder: str, weights: dict[str, str], device_type: str, target, prefix: str | None,
                  checkpoints, kwargs: dict):  # fmt: skip
    _die_with_parent()
    rank, _ = distributed.rank_and_world()
    device = torch.device(f"cuda:{os.environ['LOCAL_RANK']}" if device_type == "cuda" else device_type)
    kwargs |= {name: load_trained_model(path) for name, path in weights.items()}
    log_fn = _client_log_fn(*target, prefix) if rank == 0 and target is not None and prefix else no_logging
    trained = function(read_dataset_from(Path(folder)), device=device, log_fn=log_fn, checkpoints=checkpoints,
                       **kwargs)  # fmt: skip
    if rank == 0:
        save_trained_model(trained, Path(folder) / RESULT)


def _client_log_fn(tracking_uri: str, run_id: str, prefix: str) -> LogFn:
    """Per-epoch metrics into the step's MLflow run, from a worker (no active run there)."""
    client = mlflow.MlflowClient(tracking_uri)

    def log(metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            client.log_metric(run_id, f"{prefix}_{name}", float(value), step=step)

    return log


def _die_with_parent() -> None:
    """A worker whose launcher is killed dies too (Linux), so a restarted step never shares its
    checkpoint with orphans of the killed one."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# --- sharded evaluation -------------------------------------------------------------------------


def evaluate_in_workers(evaluate_shard: Callable, users, batch_rows: int, processes: int,
                        dataset: SequenceDataset, job) -> list:  # fmt: skip
    """``evaluate_shard(dataset, shard_of_users, job)`` on contiguous shards of ``users``
    (``protocols.EvaluationUsers``), one per worker, split where ``sharding.shard_edges`` says.
    Returns the shards' results in user order."""
    from movielens_pipeline.evaluation.sharding import shard_edges

    edges = shard_edges(len(users.positions), batch_rows, processes)
    with tempfile.TemporaryDirectory(prefix="evaluation-job-") as tmp:
        write_dataset_to(Path(tmp), dataset)
        device = "cuda" if str(job.device).startswith("cuda") else "cpu"
        results = distributed.launch(_evaluate_worker, (evaluate_shard, tmp, users, edges, job), processes, device)
    return [results[rank] for rank in range(processes)]


def _evaluate_worker(evaluate_shard: Callable, folder: str, users, edges: list[int], job):
    _die_with_parent()
    rank, _ = distributed.rank_and_world()
    return evaluate_shard(read_dataset_from(Path(folder)), users.rows(edges[rank], edges[rank + 1]), job)
