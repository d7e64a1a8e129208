"""S3-Rec on the embedded MovieLens-100k: popularity, finetuning alone, pretraining + finetuning.

Protocol: leave-one-out by time (the last item of each user is the test target, the one before
it the validation target), full ranking over every item with the user's already-seen items
excluded and ties counted against the target. Both S3-Rec variants use the same model config,
finetuning config and seed; "no pretraining" is the SASRec-style ablation that starts the
finetuning from random weights. One seed's test NDCG@10 moves by about +-0.005 between seeds
(943 test users), so the benchmark trains both variants for several seeds and reports each seed,
the means and on how many seeds pretraining won.

Run: .venv/bin/python benchmarks/s3rec_ml100k.py [--threads N] [--seeds 42 1 2]
(writes benchmarks/results/s3rec_ml100k.json)
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.s3rec import S3Rec, S3RecConfig  # noqa: E402
from movielens_pipeline.baselines import popularity_score_fn  # noqa: E402
from movielens_pipeline.build import BuildConfig, build_sequence_dataset  # noqa: E402
from movielens_pipeline.metrics import full_ranking_ranks, metrics_from_ranks  # noqa: E402
from movielens_pipeline.s3rec_training import FinetuneConfig, PretrainConfig, finetune, pretrain, score_fn  # noqa: E402
from movielens_pipeline.sources import load_embedded_ml100k  # noqa: E402
from movielens_pipeline.training import pick_device  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "s3rec_ml100k.json"
PROTOCOL = "leave-one-out by time; full ranking over all items, seen items excluded, pessimistic ties"


def test_figures(score, dataset) -> dict:
    ranks = full_ranking_ranks(
        score, dataset.user_indices, dataset.test_inputs(), dataset.test_targets(), dataset.num_items
    )
    metrics = metrics_from_ranks(ranks)
    return {"test_hit_at_10": metrics["hit_at_10"], "test_ndcg_at_10": metrics["ndcg_at_10"]}


def phase_figures(trained, wall_seconds: float) -> dict:
    history = trained.history
    return {
        "epochs_run": len(history),
        "mean_epoch_seconds": sum(h["epoch_seconds"] for h in history) / len(history),
        "mean_sequences_per_second": sum(h["sequences_per_second"] for h in history) / len(history),
        "wall_seconds": wall_seconds,
    }


def timed(train, *args, **kwargs):
    started = time.perf_counter()
    trained = train(*args, **kwargs)
    return trained, time.perf_counter() - started


def train_and_test(dataset, model_config, pretrain_config, finetune_config, device) -> dict:
    """Both S3-Rec variants for one seed: no pretraining first, then pretraining + finetuning."""

    def finetuned_figures(trained, pretraining_figures: dict | None, finetune_wall: float) -> dict:
        model = S3Rec(model_config)
        model.load_state_dict(trained.state_dict)
        figures = {
            "best_epoch": trained.summary["best_epoch"],
            "best_valid_ndcg_at_10": trained.summary["best_valid_ndcg_at_10"],
            "finetune": phase_figures(trained, finetune_wall),
            "train_wall_seconds": finetune_wall + (pretraining_figures or {}).get("wall_seconds", 0.0),
        }
        if pretraining_figures is not None:
            figures["pretrain"] = pretraining_figures
        return figures | test_figures(score_fn(model, device), dataset)

    trained, wall = timed(finetune, dataset, model_config, finetune_config, device)
    results = {"s3rec_no_pretraining": finetuned_figures(trained, None, wall)}
    pretrained, pretrain_wall = timed(pretrain, dataset, model_config, pretrain_config, device)
    trained, wall = timed(finetune, dataset, model_config, finetune_config, device, pretrained=pretrained)
    results["s3rec"] = finetuned_figures(trained, phase_figures(pretrained, pretrain_wall), wall)
    return results


def summary(per_seed: dict[int, dict]) -> dict:
    """Mean and spread over seeds, and on how many seeds pretraining won on each metric."""
    figures = {}
    for model in ("s3rec", "s3rec_no_pretraining"):
        for metric in ("test_hit_at_10", "test_ndcg_at_10", "best_valid_ndcg_at_10", "train_wall_seconds"):
            values = [runs[model][metric] for runs in per_seed.values()]
            figures[f"{model}_{metric}_mean"] = statistics.fmean(values)
            figures[f"{model}_{metric}_stdev"] = statistics.stdev(values) if len(values) > 1 else 0.0
    for metric in ("test_hit_at_10", "test_ndcg_at_10"):
        figures[f"pretraining_wins_{metric}"] = sum(
            runs["s3rec"][metric] > runs["s3rec_no_pretraining"][metric] for runs in per_seed.values()
        )
    figures["seeds"] = len(per_seed)
    return figures


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: every core)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    started = time.perf_counter()
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    source = load_embedded_ml100k()
    dataset = build_sequence_dataset(source.interactions, source.items, source.item_attributes, BuildConfig())
    model_config = S3RecConfig(num_items=dataset.num_items, num_attributes=dataset.num_attributes)

    popularity = test_figures(popularity_score_fn(dataset), dataset)
    per_seed = {
        seed: train_and_test(
            dataset, model_config, PretrainConfig(seed=seed), FinetuneConfig(seed=seed), device
        )
        for seed in args.seeds
    }  # fmt: skip
    report = {
        "protocol": PROTOCOL,
        "dataset": dataset.stats,
        "model_config": asdict(model_config),
        "pretrain_config": asdict(PretrainConfig()) | {"seed": args.seeds},
        "finetune_config": asdict(FinetuneConfig()) | {"seed": args.seeds},
        "popularity": popularity,
        "per_seed": per_seed,
        "summary": summary(per_seed),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "total_wall_seconds": time.perf_counter() - started,
        "note": "timings are wall clock on a shared machine and may be inflated by other jobs",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, default=str))

    print(f"\nMovieLens-100k, {PROTOCOL}")
    print(f"{'seed':<6}{'model':<22}{'HR@10':>8}{'NDCG@10':>9}{'valid':>8}{'epochs':>8}{'epoch s':>9}{'seq/s':>8}{'train s':>9}")
    print(f"{'':<6}{'popularity':<22}{popularity['test_hit_at_10']:>8.4f}{popularity['test_ndcg_at_10']:>9.4f}")
    for seed, results in per_seed.items():
        for name, figures in results.items():
            print(f"{seed:<6}{name:<22}{figures['test_hit_at_10']:>8.4f}{figures['test_ndcg_at_10']:>9.4f}"
                  f"{figures['best_valid_ndcg_at_10']:>8.4f}", end="")  # fmt: skip
            for phase in ("pretrain", "finetune"):
                if phase in figures:
                    p = figures[phase]
                    print(f"\n{'':<6}  {phase:<20}{'':>25}{p['epochs_run']:>8}{p['mean_epoch_seconds']:>9.2f}"
                          f"{p['mean_sequences_per_second']:>8.0f}{p['wall_seconds']:>9.1f}", end="")  # fmt: skip
            print()
    totals = report["summary"]
    for model in ("s3rec", "s3rec_no_pretraining"):
        print(f"mean  {model:<22}{totals[f'{model}_test_hit_at_10_mean']:>8.4f}"
              f"{totals[f'{model}_test_ndcg_at_10_mean']:>9.4f}{totals[f'{model}_best_valid_ndcg_at_10_mean']:>8.4f}")  # fmt: skip
    print(
        f"pretraining won on {totals['pretraining_wins_test_ndcg_at_10']}/{len(per_seed)} seeds (NDCG@10), "
        f"{totals['pretraining_wins_test_hit_at_10']}/{len(per_seed)} (HR@10)"
    )
    print(
        f"device {device}, torch threads {report['torch_threads']}, "
        f"total wall {report['total_wall_seconds']:.1f}s -> {RESULTS}"
    )
    return report


if __name__ == "__main__":
    main()
