"""S3-Rec on the embedded MovieLens-100k: popularity, finetuning alone, pretraining + finetuning.

Protocol: leave-one-out by time (the last item of each user is the test target, the one before
it the validation target), full ranking over every item with the user's already-seen items
excluded and ties counted against the target. Both S3-Rec variants use the same model config,
finetuning config and seed; "no pretraining" is the SASRec-style ablation that starts the
finetuning from random weights. One seed's test NDCG@10 moves by about +-0.005 between seeds
(943 test users), so the benchmark trains both variants for several seeds and reports each seed,
the means and on how many seeds pretraining won.

Run: .venv/bin/python benchmarks/s3rec_ml100k.py [--threads N] [--seeds 42 1 2] [--device cuda] [--results other.json]
(writes benchmarks/results/s3rec_ml100k.json)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from movielens_pipeline.evaluation.baselines import popularity_score_fn  # noqa: E402
from movielens_pipeline.evaluation.scorers import s3rec_score_fn  # noqa: E402
from models.s3rec import S3Rec, S3RecConfig  # noqa: E402
from movielens_pipeline.training.s3rec import FinetuneConfig, PretrainConfig, finetune, pretrain  # noqa: E402

RESULTS = common.RESULTS_DIR / "s3rec_ml100k.json"


def phase_figures(trained, wall_seconds: float) -> dict:
    history = trained.history
    return {
        "epochs_run": len(history),
        "mean_epoch_seconds": sum(h["epoch_seconds"] for h in history) / len(history),
        "mean_sequences_per_second": sum(h["sequences_per_second"] for h in history) / len(history),
        "wall_seconds": wall_seconds,
    }


def train_and_test(dataset, model_config, pretrain_config, finetune_config, device) -> dict:
    """Both S3-Rec variants for one seed: no pretraining first, then pretraining + finetuning."""

    def finetuned_figures(trained, pretraining_figures: dict | None, finetune_wall: float) -> dict:
        model = S3Rec(model_config)
        model.load_state_dict(trained.state_dict)
        model.to(device)
        figures = {
            "best_epoch": trained.summary["best_epoch"],
            "best_valid_ndcg_at_10": trained.summary["best_valid_ndcg_at_10"],
            "finetune": phase_figures(trained, finetune_wall),
            "train_wall_seconds": finetune_wall + (pretraining_figures or {}).get("wall_seconds", 0.0),
        }
        if pretraining_figures is not None:
            figures["pretrain"] = pretraining_figures
        return figures | common.test_figures(s3rec_score_fn(model, device), dataset)

    trained, wall = common.timed(finetune, dataset, model_config, finetune_config, device)
    results = {"s3rec_no_pretraining": finetuned_figures(trained, None, wall)}
    pretrained, pretrain_wall = common.timed(pretrain, dataset, model_config, pretrain_config, device)
    trained, wall = common.timed(finetune, dataset, model_config, finetune_config, device, pretrained=pretrained)
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
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.perf_counter()
    device, dataset = common.prepare(args.device, args.threads)
    model_config = S3RecConfig(num_items=dataset.num_items, num_attributes=dataset.num_attributes)

    popularity = common.test_figures(popularity_score_fn(dataset), dataset)
    per_seed = {
        seed: train_and_test(
            dataset, model_config, PretrainConfig(seed=seed), FinetuneConfig(seed=seed), device
        )
        for seed in args.seeds
    }  # fmt: skip
    report = {
        "protocol": common.PROTOCOL,
        "dataset": dataset.stats,
        "model_config": asdict(model_config),
        "pretrain_config": PretrainConfig().model_dump() | {"seed": args.seeds},
        "finetune_config": FinetuneConfig().model_dump() | {"seed": args.seeds},
        "popularity": popularity,
        "per_seed": per_seed,
        "summary": summary(per_seed),
        "device": str(device),
    } | common.environment(started)
    common.write_report(report, args.results)

    print(f"\nMovieLens-100k, {common.PROTOCOL}")
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
    print(f"device {device}, {common.footer(report, args.results)}")
    return report


if __name__ == "__main__":
    main()
