"""Sampled softmax against the full softmax for S3Rec finetuning: speed at a large catalogue and
quality on MovieLens-100k.

- ``speed``: one finetuning step (forward, backward, Adam) on random 50-item windows at an
  ML-32M-sized catalogue (87,584 items by default), full softmax ("ce") and sampled softmax
  (K shared negatives), alternated in one run; the median seconds per window of each.
- ``quality``: finetuning without pretraining (the SASRec-style variant) on the embedded
  MovieLens-100k for each seed, with "ce" and with "sampled_softmax"; test NDCG@10 and HR@10
  (full ranking, seen items excluded) of each, and the means.

Run: .venv/bin/python benchmarks/sampled_softmax.py [--parts speed quality] [--seeds 42 1 2 3 4]
     [--quality-negatives 1024] [--proposal popularity]
(writes benchmarks/results/sampled_softmax.json)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from movielens_pipeline.evaluation.scorers import s3rec_score_fn  # noqa: E402
from models.s3rec import S3Rec, S3RecConfig  # noqa: E402
from movielens_pipeline.training.s3rec import FinetuneConfig, finetune  # noqa: E402

RESULTS = common.RESULTS_DIR / "sampled_softmax.json"


def speed(num_items: int, negatives: int, batch_size: int = 128, steps: int = 6) -> dict:
    """Median seconds per window of one finetuning step, per loss, alternating the two."""
    torch.manual_seed(0)
    config = S3RecConfig(num_items=num_items, num_attributes=1)
    model = S3Rec(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    windows = torch.randint(1, num_items + 1, (batch_size, config.max_len + 1))
    log_q = torch.full((num_items + 1,), -float(torch.log(torch.tensor(float(num_items)))))
    timings: dict[str, list[float]] = {"ce": [], "sampled_softmax": []}
    for step in range(steps + 1):
        for loss in timings:
            sampled = torch.randint(1, num_items + 1, (negatives,)) if loss == "sampled_softmax" else None
            started = time.perf_counter()
            value = model.next_item_loss(windows[:, :-1], windows[:, 1:], loss, sampled, log_q)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            if step:  # the first round warms up
                timings[loss].append((time.perf_counter() - started) / batch_size)
    per_window = {loss: statistics.median(values) for loss, values in timings.items()}
    return {
        "num_items": num_items, "negatives": negatives, "batch_size": batch_size, "steps": steps,
        "seconds_per_window": per_window,
        "windows_per_second": {loss: 1 / seconds for loss, seconds in per_window.items()},
        "speedup": per_window["ce"] / per_window["sampled_softmax"],
    }  # fmt: skip


def quality(seeds: list[int], negatives: int, proposal: str, earlier: dict | None = None,
            full_softmax_runs: dict | None = None) -> dict:  # fmt: skip
    """Per seed and loss, test figures; ``earlier`` results (other seeds, same K and proposal)
    are kept. The full softmax does not depend on K or the proposal: a seed's run found in
    ``full_softmax_runs`` (seed -> figures) is reused rather than trained again."""
    device, dataset = common.prepare("cpu", None)
    model_config = S3RecConfig(num_items=dataset.num_items, num_attributes=dataset.num_attributes)
    per_seed = {int(seed): runs for seed, runs in (earlier or {}).get("per_seed", {}).items()}
    for seed in seeds:
        per_seed[seed] = {}
        for loss in ("ce", "sampled_softmax"):
            if loss == "ce" and seed in (full_softmax_runs or {}):
                per_seed[seed][loss] = full_softmax_runs[seed]
                continue
            config = FinetuneConfig(seed=seed, loss=loss, sampled_negatives=negatives, negative_sampling=proposal)
            trained, wall = common.timed(finetune, dataset, model_config, config, device)
            model = S3Rec(model_config)
            model.load_state_dict(trained.state_dict)
            per_seed[seed][loss] = common.test_figures(s3rec_score_fn(model, device), dataset) | {
                "best_epoch": trained.summary["best_epoch"], "train_wall_seconds": wall}  # fmt: skip
            print(seed, loss, per_seed[seed][loss], flush=True)
    means = {
        f"{loss}_{metric}_mean": statistics.fmean(runs[loss][metric] for runs in per_seed.values())
        for loss in ("ce", "sampled_softmax") for metric in ("test_ndcg_at_10", "test_hit_at_10", "train_wall_seconds")
    }  # fmt: skip
    return {"negatives": negatives, "negative_sampling": proposal, "per_seed": per_seed, "summary": means}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["speed", "quality"])
    parser.add_argument("--items", type=int, default=87_584)
    parser.add_argument("--negatives", type=int, default=1024, help="K for the speed part")
    parser.add_argument("--quality-negatives", type=int, default=1024, help="K on ML-100k (1,349 items)")
    parser.add_argument("--proposal", choices=["popularity", "uniform"], default="uniform",
                        help="where the quality part's negatives come from")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4])
    args = parser.parse_args()
    started = time.perf_counter()
    report = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}  # parts run on their own add up
    if "speed" in args.parts:
        report["speed"] = speed(args.items, args.negatives)
        print(report["speed"], flush=True)
    if "quality" in args.parts:
        # One entry per K and proposal, so settings measured in separate runs stay side by side.
        key = f"K={args.quality_negatives} {args.proposal}"
        runs = report.setdefault("quality", {})
        full_softmax = {int(seed): figures["ce"] for entry in runs.values()
                        for seed, figures in entry["per_seed"].items()}  # fmt: skip
        runs[key] = quality(args.seeds, args.quality_negatives, args.proposal, runs.get(key), full_softmax)
        print(runs[key]["summary"], flush=True)
    common.write_report(report | common.environment(started), RESULTS)


if __name__ == "__main__":
    main()
