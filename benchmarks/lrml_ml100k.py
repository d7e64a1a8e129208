"""LRML against popularity, EASE and BPR-MF on the embedded MovieLens-100k.

Protocol: leave-one-out by time (the last item of each user is the test target, the one before
it the validation target), full ranking over every item with the user's already-seen items
excluded and ties counted against the target. BPR-MF and LRML get the same budget (epochs,
batch size, early-stopping patience on validation NDCG@10; each its own default negatives per
positive, 5 for BPR-MF and the hardest of 20 for LRML); EASE and
popularity have no training budget and are shown for reference.

Run: .venv/bin/python benchmarks/lrml_ml100k.py [--threads N] [--device cuda] [--results other.json]
(writes benchmarks/results/lrml_ml100k.json; by default torch uses every core, which on a
machine shared with other jobs can be far slower than --threads 1).

Tuning notes (validation NDCG@10 / test HR@10 / test NDCG@10, 5 negatives, margin 1, d 64,
N 20 unless said; one seed each, and two seeds of one config differ by about 0.006 NDCG):
- 1 negative, Adam 5e-3, margin 0.5: .058/.097/.045; margin 1: .060/.105/.050.
- 5 negatives, Adam 2e-3: .066/.129/.065; margin 1.5: .068/.125/.061; d 128: .065/.117/.062;
  N 50: .067/.108/.053; 10 negatives: .067/.123/.061; L2 1e-3: .067/.128/.064;
  init std 0.01: .067/.123/.064; Adam 1e-3: .066/.117/.059; batch 256: .063/.103/.048;
  d 32: .071/.108/.057.
- the authors' shared negative relation: .049/.085/.036 (own relation .066/.129/.065).
- Adagrad 0.05 (default): .075/.129/.067, seed 1 .069/.118/.059; Adagrad 0.1: .063/.102/.049;
  Adagrad 0.02: .064/.123/.062; Adagrad 0.05 margin 1.5: .067/.136/.066; margin 0.5:
  .071/.110/.060; N 5: .068/.104/.054; Adam 5e-3: .064/.117/.055; memory keys initialised
  with std 10 (sharp attention): .057/.097/.048.
- BPR-MF, Adam 5e-3 (default): 1 negative .075/.118/.058; 5 negatives .073/.133/.065, seed 1
  .071/.136/.072; L2 1e-2 .062/.110/.051; Adagrad 0.05 .073/.126/.065.
- Trained LRML attends almost uniformly (mean attention entropy 2.96 of a possible 3.00) while
  the memory slots grow to norms near 11 against unit-ball embeddings, so the relation mostly
  acts as a large per-user translation.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from movielens_pipeline.evaluation.baselines import ease_score_fn, fit_ease, popularity_score_fn  # noqa: E402
from movielens_pipeline.evaluation.scorers import user_score_fn  # noqa: E402
from movielens_pipeline.families import trained_module  # noqa: E402
from movielens_pipeline.training.pairwise import BPRTrainConfig, LRMLTrainConfig, train_bpr, train_lrml  # noqa: E402

RESULTS = common.RESULTS_DIR / "lrml_ml100k.json"
# The shared budget of the two trained models; each keeps its own tuned lr, L2 and negatives.
BUDGET = dict(epochs=40, batch_size=1024, patience=8, seed=42)


def training_figures(trained, wall_seconds: float) -> dict:
    history = trained.history
    return {
        "best_epoch": trained.summary["best_epoch"],
        "epochs_run": len(history),
        "best_valid_ndcg_at_10": trained.summary["best_valid_ndcg_at_10"],
        "mean_epoch_seconds": sum(h["epoch_seconds"] for h in history) / len(history),
        "mean_pairs_per_second": sum(h["pairs_per_second"] for h in history) / len(history),
        "train_wall_seconds": wall_seconds,
        "config": trained.config,
    }


def main(threads: int | None = None, device: str = "cpu", results_path: Path = RESULTS) -> dict:
    started = time.perf_counter()
    device, dataset = common.prepare(device, threads)

    def tested(score) -> dict:
        return common.test_figures(score, dataset, with_rank_seconds=True)

    results: dict[str, dict] = {"popularity": tested(popularity_score_fn(dataset))}

    ease_weights, fit_seconds = common.timed(fit_ease, dataset)
    results["ease"] = {"fit_seconds": fit_seconds} | tested(ease_score_fn(ease_weights))

    for name, train, train_config in (
        ("bpr_mf", train_bpr, BPRTrainConfig(**BUDGET)),
        ("lrml", train_lrml, LRMLTrainConfig(**BUDGET)),
    ):
        trained, wall = common.timed(train, dataset, None, train_config, device)
        results[name] = training_figures(trained, wall) | tested(user_score_fn(trained_module(trained)))

    report = {
        "protocol": common.PROTOCOL,
        "dataset": dataset.stats,
        "budget": BUDGET,
        "models": results,
        "device": str(device),
    } | common.environment(started)
    common.write_report(report, results_path)

    print(f"\nMovieLens-100k, {common.PROTOCOL}")
    print(f"{'model':<11}{'HR@10':>8}{'NDCG@10':>9}{'epoch s':>9}{'pairs/s':>10}{'rank s':>8}")
    for name, figures in results.items():
        epoch = figures.get("mean_epoch_seconds")
        rate = figures.get("mean_pairs_per_second")
        print(
            f"{name:<11}{figures['test_hit_at_10']:>8.4f}{figures['test_ndcg_at_10']:>9.4f}"
            f"{'' if epoch is None else f'{epoch:.2f}':>9}{'' if rate is None else f'{rate:,.0f}':>10}"
            f"{figures['rank_all_pairs_seconds']:>8.3f}"
        )
    print(f"device {device}, {common.footer(report, results_path)}")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: every core)")
    parser.add_argument("--device", default="cpu", help="where LRML and BPR-MF train: cpu, cuda or auto")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    main(args.threads, args.device, args.results)
