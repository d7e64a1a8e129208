"""Data-parallel training and sharded evaluation on 2 CPU processes (gloo): the same update as one
process on the same global batch, one process's logging and checkpoints, resume after the
launcher is killed, a dead worker failing the job at once, and sharded evaluation equal to one
process's."""

import re
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import torch
from test_lrml import planted_dataset
from test_s3rec import chain_dataset

from conftest import REPO_ROOT
from models.s3rec import S3RecConfig
from movielens_pipeline.evaluation import protocols, sharding
from movielens_pipeline.integrations import workers
from movielens_pipeline.training.loop import no_logging
from movielens_pipeline.training.pairwise import LRMLHyperparameters, LRMLTrainConfig, train_lrml
from movielens_pipeline.training.s3rec import FinetuneConfig, finetune

CPU = torch.device("cpu")


def one_update(function, dataset, processes: int, **kwargs):
    """One epoch of one batch holding every row: a single optimizer step."""
    return workers.train(function, dataset, processes, CPU, no_logging, None, **kwargs)


def assert_same_weights(first, second):
    for name, value in first.state_dict.items():
        torch.testing.assert_close(second.state_dict[name], value, atol=1e-6, rtol=0, msg=name)


def test_one_update_on_two_processes_equals_one_process_on_the_same_global_batch():
    dataset = chain_dataset()
    s3rec = dict(model_config=S3RecConfig(dataset.num_items, dataset.num_attributes, hidden_size=16, num_layers=1,
                                          max_len=12, hidden_dropout=0.0, attention_dropout=0.0),
                 cfg=FinetuneConfig(epochs=1, batch_size=100_000, patience=1, lr=1e-2))  # fmt: skip
    assert_same_weights(one_update(finetune, dataset, 1, **s3rec), one_update(finetune, dataset, 2, **s3rec))

    # LRML's defaults (bounded memory, the hinge on the hardest negative), with popularity-drawn
    # negatives so the weighted sampler's shard is checked too. SGD, because Adagrad's first
    # step is lr * sign(gradient): a coordinate whose gradient is zero up to rounding (summed in
    # another order over two processes) would move by +-lr either way.
    planted = planted_dataset()
    lrml = dict(model_config=LRMLHyperparameters(dim=8),
                cfg=LRMLTrainConfig(epochs=1, batch_size=100_000, patience=1, negatives_per_positive=3,
                                    negative_sampling="popularity", optimizer="sgd", lr=0.5))  # fmt: skip
    assert_same_weights(one_update(train_lrml, planted, 1, **lrml), one_update(train_lrml, planted, 2, **lrml))


DRIVER = """
import sys
sys.path[:0] = [{repo!r}, {tests!r}]
import mlflow, torch
from test_s3rec import chain_dataset
from models.s3rec import S3RecConfig
from movielens_pipeline.integrations import workers
from movielens_pipeline.integrations.tracking import mlflow_log_fn
from movielens_pipeline.training.checkpoints import CheckpointStore
from movielens_pipeline.training.s3rec import FinetuneConfig, finetune

if __name__ == "__main__":
    mlflow.set_tracking_uri({tracking!r})
    dataset = chain_dataset(num_users=300)
    config = S3RecConfig(dataset.num_items, dataset.num_attributes, hidden_size=16, num_layers=1, max_len=12)
    with mlflow.start_run(run_id={run_id!r}):
        trained = workers.train(finetune, dataset, 2, torch.device("cpu"), mlflow_log_fn("finetune"),
                                CheckpointStore({checkpoints!r}, "finetune", "key"), model_config=config,
                                cfg=FinetuneConfig(epochs={epochs}, batch_size=32, patience=50, lr=3e-3))
    print("EPOCHS", len(trained.history), "BEST", trained.summary["best_epoch"])
"""


@pytest.fixture
def driver(tmp_path):
    """Runs a 2-process finetuning job in a launcher process of its own, logging to an MLflow run."""
    import mlflow

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking)
    run_id = client.create_run(client.create_experiment("ddp", artifact_location=(tmp_path / "a").as_uri())).info.run_id

    def start(epochs: int) -> subprocess.Popen:
        script = tmp_path / "driver.py"
        script.write_text(DRIVER.format(repo=str(REPO_ROOT), tests=str(REPO_ROOT / "tests"), tracking=tracking,
                                        run_id=run_id, checkpoints=str(tmp_path / "checkpoints"), epochs=epochs))
        return subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip

    start.client, start.run_id, start.checkpoints = client, run_id, tmp_path / "checkpoints" / "finetune"
    return start


def workers_of(process: subprocess.Popen) -> list[psutil.Process]:
    """The job's worker processes, oldest first (started by multiprocessing's spawn)."""
    found = []
    for child in psutil.Process(process.pid).children(recursive=True):
        try:
            if any("spawn_main" in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return sorted(found, key=lambda child: child.create_time())


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_two_processes_log_once_keep_one_checkpoint_and_resume_after_the_launcher_is_killed(driver):
    job = driver(epochs=6)
    wait_for(lambda: any(driver.checkpoints.glob("*.pt")), 240, "the first checkpoint")
    assert [p.name for p in driver.checkpoints.iterdir()] == ["key.pt"]  # rank 0 alone writes it
    ranks = workers_of(job)
    job.send_signal(signal.SIGKILL)
    job.wait()
    psutil.wait_procs(ranks, timeout=20)  # the workers die with their launcher
    assert not any(rank.is_running() and rank.status() != psutil.STATUS_ZOMBIE for rank in ranks)
    stored = torch.load(driver.checkpoints / "key.pt", weights_only=True)["epoch"]
    assert stored < 6

    resumed = driver(epochs=6)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "EPOCHS 6" in output, output
    # Rank 0 alone logs, once per epoch; the second job starts after the checkpoint's epoch.
    epochs = [m.step for m in driver.client.get_metric_history(driver.run_id, "finetune_valid_ndcg_at_10")]
    assert sorted(set(epochs)) == list(range(1, 7))
    assert all(epochs.count(epoch) == 1 for epoch in range(1, stored + 1)), epochs
    assert not any(driver.checkpoints.glob("*.pt"))  # removed when the job ended


def test_a_worker_killed_mid_epoch_fails_the_job_within_seconds_naming_its_rank(driver):
    job = driver(epochs=50)
    wait_for(lambda: any(driver.checkpoints.glob("*.pt")), 240, "the first checkpoint")
    ranks = workers_of(job)
    assert len(ranks) == 2
    victim = ranks[-1]
    killed = time.monotonic()
    victim.send_signal(signal.SIGKILL)
    output, _ = job.communicate(timeout=60)
    assert job.returncode != 0 and time.monotonic() - killed < 30
    # The message names the dead worker's rank and cause (its PID is in the cause).
    assert re.search(rf"worker rank [01] of 2 failed: Signal 9 \(SIGKILL\) received by PID {victim.pid}", output), \
        output[-2000:]  # fmt: skip


def test_more_cuda_processes_than_gpus_are_refused_before_any_worker_starts():
    # One process per GPU (NCCL): on a machine with fewer GPUs the launch stops at once, saying so.
    gpus = torch.cuda.device_count()
    processes = max(2, gpus + 1)
    with pytest.raises(ValueError, match=rf"{processes} processes on cuda need a GPU each; this machine has {gpus}"):
        workers.train(finetune, chain_dataset(), processes, torch.device("cuda"), no_logging, None)


def test_sharded_evaluation_equals_one_process_under_both_protocols():
    dataset = planted_dataset(users_per_cluster=150)  # 1,200 users: three ranking batches of 512
    lrml = train_lrml(dataset, LRMLHyperparameters(dim=8), LRMLTrainConfig(epochs=1, patience=1))
    lrml.summary["name"] = "lrml"
    job = sharding.EvaluationJob([lrml], ease_l2=10.0, ease_memory_mb=64)
    users = protocols.evaluation_users(dataset, negatives_seed=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker: the same matrix products to the last bit
    try:
        alone, _, _ = sharding.evaluate(job, dataset, users, processes=1)
    finally:
        torch.set_num_threads(threads)
    sharded, notes, _ = sharding.evaluate(job, dataset, users, processes=2)
    assert [(e.model, e.split) for e in sharded] == [(e.model, e.split) for e in alone]
    for one, two in zip(alone, sharded):
        assert np.array_equal(one.users, two.users)
        for protocol in ("full", "sampled"):
            assert np.array_equal(one.ranks[protocol], two.ranks[protocol]), (one.model, one.split, protocol)
        assert one.coverage_at_10 == two.coverage_at_10
    assert "ease" in notes
    assert protocols.results_table(alone).equals(protocols.results_table(sharded))
