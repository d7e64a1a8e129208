"""What keeping freed memory for reuse (``runtime.reuse_freed_memory``) saves, on MovieLens-100k.

By default glibc hands freed memory back to the kernel: a block over its mmap threshold (which
adapts, up to 32 MiB) when it is freed, the top of the heap once more than twice the threshold
of it is free. A training step's temporaries (finetuning's [positions, items] logits, 35-43 MB
here; LRML's [batch, negatives, dim] tensors, 5 MB each) are then page-faulted in and
zero-filled again, step after step. ``pick_device`` raises both thresholds once per process.

Each round runs two fresh processes, one with glibc's defaults and one with the setting, in
alternating order; each trains LRML for 2 epochs, S3Rec pretraining for 1 and finetuning for 2
(the pipeline's default configs, seed 42), times each phase, counts the minor page faults, and
hashes the trained weights. Reported: the medians, the per-round ratio default / reuse, the
peak resident memory, and whether the weights are bit for bit the same (they must be: only the
allocator changes).

Run: .venv/bin/python benchmarks/allocator.py [--rounds 4]
(writes benchmarks/results/allocator.json)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from movielens_pipeline.training.pairwise import LRMLTrainConfig, train_lrml  # noqa: E402
from movielens_pipeline.training.runtime import reuse_freed_memory  # noqa: E402
from movielens_pipeline.training.s3rec import (  # noqa: E402
    FinetuneConfig,
    PretrainConfig,
    finetune,
    pretrain,
    s3rec_config,
)

RESULTS = common.RESULTS_DIR / "allocator.json"
MODES = ("glibc_defaults", "reuse_freed_memory")
PHASES = ("lrml_2_epochs", "pretrain_1_epoch", "finetune_2_epochs")


def child(mode: str) -> dict:
    """One process's measurements (printed as JSON for the parent)."""
    if mode == "reuse_freed_memory" and not reuse_freed_memory():
        raise SystemExit("mallopt is unavailable here (not glibc) or malloc is configured in the environment")
    dataset = common.load_benchmark_dataset(common.S3REC_DATA, "ml-100k")
    model_config = s3rec_config(dataset)
    phases = {
        "lrml_2_epochs": lambda: train_lrml(dataset, cfg=LRMLTrainConfig(epochs=2)),
        "pretrain_1_epoch": lambda: pretrain(dataset, model_config, PretrainConfig(epochs=1)),
        "finetune_2_epochs": lambda: finetune(dataset, model_config, FinetuneConfig(epochs=2)),
    }
    report = {}
    for phase, train in phases.items():
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        trained, seconds = common.timed(train)
        report[phase] = {
            "seconds": seconds,
            "minor_page_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults,
            "weights": trained.weights_fingerprint(),
        }
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return report


def main(rounds: int) -> dict:
    started = time.perf_counter()
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for round_index in range(rounds):
        order = MODES if round_index % 2 == 0 else MODES[::-1]
        for mode in order:
            command = [sys.executable, __file__, "--child", mode]
            output = subprocess.run(command, check=True, capture_output=True, text=True)
            runs[mode].append(json.loads(output.stdout.strip().splitlines()[-1]))
            print(f"round {round_index + 1} {mode}: " + ", ".join(
                f"{phase} {runs[mode][-1][phase]['seconds']:.1f}s" for phase in PHASES), flush=True)  # fmt: skip
    summary = {}
    for phase in PHASES:
        default, reuse = ([run[phase] for run in runs[mode]] for mode in MODES)
        summary[phase] = {
            "median_seconds": {mode: statistics.median(r[phase]["seconds"] for r in runs[mode]) for mode in MODES},
            "median_ratio_default_over_reuse": statistics.median(
                d["seconds"] / r["seconds"] for d, r in zip(default, reuse)
            ),
            "median_minor_page_faults": {
                mode: statistics.median(r[phase]["minor_page_faults"] for r in runs[mode]) for mode in MODES
            },
            "same_weights": len({run[phase]["weights"] for mode in MODES for run in runs[mode]}) == 1,
        }
    summary["median_peak_rss_mb"] = {mode: statistics.median(r["peak_rss_mb"] for r in runs[mode]) for mode in MODES}
    report = {"rounds": rounds, "summary": summary, "runs": runs} | common.environment(started)
    common.write_report(report, RESULTS)
    for phase in PHASES:
        s = summary[phase]
        print(f"{phase}: default {s['median_seconds']['glibc_defaults']:.2f}s, reuse "
              f"{s['median_seconds']['reuse_freed_memory']:.2f}s, ratio {s['median_ratio_default_over_reuse']:.2f}x, "
              f"faults {s['median_minor_page_faults']['glibc_defaults']:.0f} -> "
              f"{s['median_minor_page_faults']['reuse_freed_memory']:.0f}, "
              f"same weights {s['same_weights']}")  # fmt: skip
    print(f"peak RSS MB: {summary['median_peak_rss_mb']}")
    print(common.footer(report, RESULTS))
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
    else:
        main(args.rounds)
