"""Data parallelism with torch.distributed: the process group the shared training loop reads, the
launcher that starts its workers, and the pieces the loop needs to stay one loop.

How a step trains on several processes (``processes`` > 1): ``launch`` starts that many workers
with torch's elastic launcher (what ``torchrun`` runs), on this machine or on every pod of a
multi-pod job (``Nodes``), gloo on the CPU and NCCL on GPUs; each worker joins the process group, rebuilds the run from files, and runs the same
``fit``. A worker that dies makes the launcher stop the others and raise, naming its rank and
cause, so the step fails within seconds and nothing hangs.

Inside ``fit``, every rank draws every global batch (the same seeded order and draws on every
rank) and trains on its contiguous share of the rows; each share's loss is its part of the
global batch's loss, and gradients are summed across ranks after every backward, so an update
equals the one-process update on the same global batch. Decisions that must agree (stop on the
time budget, validation, early stopping) are rank 0's, broadcast to the others.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from movielens_pipeline.training.runtime import reuse_freed_memory


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, number of processes): (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return rank_and_world()[0] == 0


def shard(rows: int, rank: int, world: int) -> torch.Tensor:
    """This rank's positions among ``rows`` batch rows: contiguous, sizes differing by at most one."""
    return torch.tensor_split(torch.arange(rows), world)[rank]


def sum_gradients_(parameters: list[torch.nn.Parameter]) -> None:
    """Every parameter's gradient summed over the ranks, in one collective (each rank's loss is
    already its share of the global batch's mean)."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for parameter, grad in zip(parameters, grads):
        size = grad.numel()
        parameter.grad = flat[offset : offset + size].view_as(grad).clone()
        offset += size


def sum_over_ranks(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each value summed over the ranks (the epoch's loss totals)."""
    if not values:
        return values
    names = sorted(values)
    stacked = torch.stack([torch.as_tensor(values[name], dtype=torch.float64).reshape(()) for name in names])
    dist.all_reduce(stacked)
    return dict(zip(names, stacked))


def from_main(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (the others pass anything)."""
    if rank_and_world()[1] == 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


# --- starting workers ---------------------------------------------------------------------------


class WorkerFailed(RuntimeError):
    """A training or evaluation worker died; the message names its rank and cause."""


@dataclass(frozen=True)
class Nodes:
    """Several machines (the pods of one multi-pod job), each starting ``processes`` workers.

    Node ``rank`` 0 hosts the rendezvous at ``main_address:main_port`` (torchrun's static
    rendezvous: the node ranks are fixed, so global rank 0, which logs and returns the weights,
    is a worker of node 0). ``job_id`` is the same on every node and unique to the job.
    """

    count: int
    rank: int
    main_address: str
    main_port: int
    job_id: str


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker process knows when it starts."""

    backend: str  # "gloo" or "nccl"
    threads: int  # torch CPU threads per worker


def launch(entrypoint: Callable, args: tuple, processes: int, device: str = "cpu",
           nodes: Nodes | None = None) -> dict[int, Any]:  # fmt: skip
    """Run ``entrypoint(setup, *args)`` in ``processes`` workers (torch's elastic launcher, as
    torchrun does), each a member of one process group, on this machine or, given ``nodes``, as
    one node of several; returns this node's ranks' return values, by global rank.

    Raises ``WorkerFailed`` naming the first worker that failed and why; the launcher has then
    stopped every other worker.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if device == "cuda" and processes > (gpus := torch.cuda.device_count()):
        # NCCL refuses two ranks on one GPU, and a rank without one would fail only after its start.
        raise ValueError(f"{processes} processes on cuda need a GPU each; this machine has {gpus}: "
                         "set processes to at most that, or train on one")
    backend = "nccl" if device == "cuda" else "gloo"
    setup = WorkerSetup(backend, max(1, (os.cpu_count() or 1) // processes))
    if nodes is None:
        rendezvous = dict(min_nodes=1, max_nodes=1, run_id=uuid.uuid4().hex, rdzv_backend="c10d",
                          rdzv_endpoint=f"127.0.0.1:{_free_port()}")  # fmt: skip
    else:
        rendezvous = dict(min_nodes=nodes.count, max_nodes=nodes.count, run_id=nodes.job_id, rdzv_backend="static",
                          rdzv_endpoint=f"{nodes.main_address}:{nodes.main_port}",
                          rdzv_configs={"rank": nodes.rank})  # fmt: skip
    config = LaunchConfig(**rendezvous, nproc_per_node=processes, max_restarts=0, monitor_interval=0.2,
                          start_method="spawn")  # fmt: skip
    try:
        return elastic_launch(config, _worker)(entrypoint, setup, *args)
    except ChildFailedError as error:
        rank, failure = min(error.failures.items())
        cause = failure.message if isinstance(failure.message, str) else failure.message.get("message", "")
        if not cause or cause == "<N/A>":
            cause = f"exit code {failure.exitcode}" + (f" (signal {-failure.exitcode})" if failure.exitcode < 0 else "")
        world = processes * (nodes.count if nodes else 1)
        raise WorkerFailed(f"worker rank {rank} of {world} failed: {cause}") from None


@record
def _worker(entrypoint: Callable, setup: WorkerSetup, *args):
    """One worker: join the process group, run ``entrypoint``, leave (an exception is recorded for
    the launcher, which reports it with the rank)."""
    torch.set_num_threads(setup.threads)
    reuse_freed_memory()
    dist.init_process_group(setup.backend)
    try:
        if setup.backend == "nccl":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        return entrypoint(*args)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
