"""A training step SIGKILLed mid-epoch resumes at its next epoch when the pipeline is started
again with caching off (so every step upstream re-executes), and the run ends with exactly the
metrics of a run never interrupted; a finished step leaves no checkpoint behind."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import torch
import yaml
from conftest import REPO_ROOT

EPOCHS = 3
# (checkpoint folder, the name the training loop logs) of each training step, in the order
# they are killed.
TRAINING_STEPS = (("s3rec_pretrain", "s3rec pretrain"), ("s3rec_finetune", "s3rec finetune"), ("lrml_train", "lrml"))


def resume_config(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    config["parameters"] |= {"registered_model_name": "movielens-resume", "models": ["s3rec", "lrml"]}
    steps = config["steps"]
    steps.pop("sasrec_finetune")
    steps["s3rec_pretrain"]["parameters"]["pretraining"] = {"epochs": EPOCHS}
    steps["s3rec_finetune"]["parameters"]["finetuning"] = {"epochs": EPOCHS, "patience": EPOCHS}
    steps["lrml_train"]["parameters"]["train"] = {"epochs": EPOCHS, "patience": EPOCHS}
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_run(config, log):
    """The pipeline as `make run` starts it, in its own process group."""
    return subprocess.Popen(
        [sys.executable, "-m", "movielens_pipeline.integrations.run_pipeline", "--config", str(config)],
        cwd=REPO_ROOT, env=os.environ | {"PYTHONPATH": str(REPO_ROOT)}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def run_to_the_end(config, log_path, timeout=900):
    """Run the pipeline to its end; its exit status (the process group is killed on a timeout)."""
    with log_path.open("wb") as log:
        process = start_run(config, log)
        try:
            return process.wait(timeout=timeout)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)


def kill_after_first_checkpoint(process, folder, timeout=600):
    """SIGKILL the run as soon as ``folder`` holds a checkpoint (an epoch done, the next under
    way); returns the epoch that checkpoint holds."""
    deadline = time.monotonic() + timeout
    try:
        while not (folder.exists() and list(folder.glob("*.pt"))):
            assert process.poll() is None, "the run ended before the step wrote a checkpoint"
            assert time.monotonic() < deadline, f"no checkpoint in {folder} after {timeout} s"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    (checkpoint,) = folder.glob("*.pt")
    return torch.load(checkpoint, weights_only=True)["epoch"]


def evaluation_metrics_of_last_run():
    from zenml.client import Client

    run = Client().get_pipeline("training_pipeline").last_run
    assert str(run.status) == "completed", run.status
    metrics = run.steps["evaluate"].outputs["evaluation_metrics"][0].load()
    return metrics.drop(columns=[c for c in metrics.columns if "seconds" in c]).reset_index(drop=True)


def test_each_killed_training_step_resumes_at_its_next_epoch_and_ends_as_uninterrupted(
    zenml_stack, tmp_path, monkeypatch
):
    config = resume_config(tmp_path)
    checkpoints = tmp_path / "checkpoints"
    monkeypatch.setenv("MOVIELENS_CHECKPOINT_DIR", str(checkpoints))
    killed_at, logs = {}, []
    for folder, _ in TRAINING_STEPS:
        logs.append(tmp_path / f"killed-in-{folder}.log")
        with logs[-1].open("wb") as log:
            killed_at[folder] = kill_after_first_checkpoint(start_run(config, log), checkpoints / folder)
        assert 1 <= killed_at[folder] < EPOCHS, killed_at
    logs.append(tmp_path / "resumed.log")
    assert run_to_the_end(config, logs[-1]) == 0, logs[-1].read_text()[-3000:]
    resumed = evaluation_metrics_of_last_run()
    output = "\n".join(path.read_text() for path in logs)

    # Every step continued after the epoch its checkpoint held, and removed it when done.
    for folder, name in TRAINING_STEPS:
        assert f"{name}: resumed after epoch {killed_at[folder]}" in output, (folder, output[-3000:])
        assert f"{name} epoch {killed_at[folder] + 1}/{EPOCHS}" in output
        assert not (checkpoints / folder).exists()
    assert "Marked run" in output  # the next start marked each killed run failed

    assert run_to_the_end(config, tmp_path / "uninterrupted.log") == 0
    assert "resumed after" not in (tmp_path / "uninterrupted.log").read_text()
    pd.testing.assert_frame_equal(resumed, evaluation_metrics_of_last_run())
