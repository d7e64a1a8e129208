"""Data-parallel training and sharded evaluation, 1 process against N, on a built dataset of
benchmarks/scale.py (``--work``, e.g. the 32M-rating one):

    .venv/bin/python benchmarks/scale.py --sizes 32000000 --stages data --work .cache/scale
    .venv/bin/python benchmarks/distributed.py --work .cache/scale/32000000 --processes 1 2

- training: S3Rec finetuning as configs/large.yaml sets it (sampled softmax, 1,024 negatives,
  batch 128), one epoch cut at ``--train-minutes``: windows/s over the global batch, as the loop
  reports it, through the same ``workers.train`` a training step uses;
- evaluation: the evaluate step's work (``evaluation.sharding``: the model, popularity and EASE,
  both protocols, both splits) for every user, untrained S3Rec (weights do not change the cost).

Each measurement runs in a fresh process, one after the other (never two at once). Results:
benchmarks/results/distributed.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.scale import _open_in, _untrained, in_fresh_process  # noqa: E402

RESULTS = common.RESULTS_DIR / "distributed.json"


def stage_train(work: Path, processes: int, minutes: float) -> dict:
    import torch

    from movielens_pipeline.data.dataset import read_dataset
    from movielens_pipeline.integrations import workers
    from movielens_pipeline.training.loop import no_logging
    from movielens_pipeline.training.s3rec import FinetuneConfig, finetune, s3rec_config

    dataset = read_dataset(_open_in(work / "dataset"))
    cfg = FinetuneConfig(loss="sampled_softmax", sampled_negatives=1024, epochs=1, max_minutes=minutes,
                         validation_users=500)  # fmt: skip
    trained = workers.train(finetune, dataset, processes, torch.device("cpu"), no_logging,
                            model_config=s3rec_config(dataset), cfg=cfg)  # fmt: skip
    epoch = trained.history[0]
    return {"windows_per_second": epoch["sequences_per_second"], "epoch_seconds": epoch["epoch_seconds"],
            "torch_threads_per_process": torch.get_num_threads() if processes == 1 else None}  # fmt: skip


def stage_evaluate(work: Path, processes: int) -> dict:
    from movielens_pipeline.data.dataset import read_dataset
    from movielens_pipeline.evaluation import protocols, sharding

    dataset = read_dataset(_open_in(work / "dataset"))
    job = sharding.EvaluationJob([_untrained("s3rec", dataset)], ease_l2=300.0, ease_memory_mb=2048)
    users = protocols.evaluation_users(dataset)
    started = time.perf_counter()
    evaluations, _, _ = sharding.evaluate(job, dataset, users, processes)
    return {"evaluate_seconds": time.perf_counter() - started, "users": len(users.positions),
            "s3rec_test_ndcg_at_10": next(e for e in evaluations if e.model == "s3rec" and e.split == "test")
            .metrics()["ndcg_at_10"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a scale.py size folder holding dataset/")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--train-minutes", type=float, default=2.0)
    parser.add_argument("--parts", nargs="+", default=["train", "evaluate"], choices=["train", "evaluate"])
    args = parser.parse_args()
    started = time.perf_counter()
    report = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    rows = report.get("runs", {})
    for processes in args.processes:
        if "train" in args.parts:
            rows[f"finetune, {processes} processes"] = result = in_fresh_process(
                stage_train, args.work, processes, args.train_minutes)
            print(f"finetune {processes} processes: {result['windows_per_second']:.0f} windows/s", flush=True)
        if "evaluate" in args.parts:
            rows[f"evaluate, {processes} processes"] = result = in_fresh_process(stage_evaluate, args.work, processes)
            print(f"evaluate {processes} processes: {result['evaluate_seconds']:.0f} s for {result['users']} users",
                  flush=True)  # fmt: skip
    common.write_report({"data": str(args.work), "runs": rows} | common.environment(started), RESULTS)


if __name__ == "__main__":
    main()
