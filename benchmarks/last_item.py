"""Is the published split's last item the odd one out? The same models on the split moved back in time.

On LastFM, S3Rec's test NDCG@10 sits about .02 under its validation figure at every epoch while
EASE's test sits above its validation: one item apart, the order of the two models flips. This
report reads the runs of ``benchmarks/s3rec_paper.py --drop-last K`` (every user's last K items
removed first, so the same users are tested on their K-th last item and validated on the one
before it) and sets the splits side by side: per split, each model's validation and test NDCG@10
(mean over seeds), each model minus EASE on test (paired per user), and how much that gap moves
from one split to the next (paired per user too, the same users in every split).

Run (about 13 minutes a split on 2 cores), for K in 0 1 2:
  .venv/bin/python benchmarks/s3rec_paper.py --datasets LastFM --seeds 42 1 2 --settings project --variants none
      --parts s3rec baselines lrml --drop-last K --work .cache/s3rec_drop_lastK --results /tmp/drop_lastK.json
then: .venv/bin/python benchmarks/last_item.py  (writes benchmarks/results/last_item.json)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from movielens_pipeline.evaluation import metrics  # noqa: E402
from movielens_pipeline.evaluation.protocols import paired_bootstrap  # noqa: E402

RESULTS = common.RESULTS_DIR / "last_item.json"
# The store keys s3rec_paper.py gives these runs: S3Rec finetuned from scratch with the project's
# defaults, LRML with its defaults, EASE with L2 chosen on validation.
MODELS = {"s3rec_no_pretraining": "s3rec-project-none", "lrml": "lrml", "ease": "ease"}


def seen_transition_share(dataset, split: str) -> float:
    """Share of users whose ``split`` target follows their last input item somewhere in the
    training sequences (any user's): how much a next-item model can lean on the last step."""
    train = dataset.train_sequences()
    rows, index = train.positions()
    follows = rows[1:] == rows[:-1]  # consecutive values of the same row
    pairs = np.unique(train.values[index[:-1]][follows] * (dataset.num_items + 1) + train.values[index[1:]][follows])
    inputs, targets = (dataset.test_inputs(), dataset.test_targets()) if split == "test" else (
        dataset.valid_inputs(), dataset.valid_targets())
    return float(np.isin(inputs.last(1) * (dataset.num_items + 1) + targets, pairs).mean())


def split_runs(store: common.Store, seeds: list[int]) -> dict[str, dict]:
    """Each model's figures per seed and its per-user test NDCG@10 averaged over the seeds."""
    runs = {}
    for model, key in MODELS.items():
        keys = [key] if model == "ease" else [f"{key}-seed{seed}" for seed in seeds]
        found = [store.get(k) for k in keys]
        if any(f is None for f in found):
            raise SystemExit(f"{store.folder} lacks {[k for k, f in zip(keys, found) if f is None]}: "
                             "run benchmarks/s3rec_paper.py for it first (see this file's docstring)")  # fmt: skip
        runs[model] = {"valid_ndcg_at_10": float(np.mean([f["valid_ndcg_at_10"] for f, _ in found])),
                       "test_ndcg_at_10": float(np.mean([f["ndcg_at_10"] for f, _ in found])),
                       "test_per_seed": [f["ndcg_at_10"] for f, _ in found],
                       "per_user": np.mean([metrics.per_user_metric(r["test_full"], "ndcg_at_10") for _, r in found],
                                           axis=0)}  # fmt: skip
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="LastFM")
    parser.add_argument("--drop-last", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--work", default=".cache/s3rec_drop_last{}", help="the runs' folder, {} the items dropped")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.perf_counter()
    splits = {k: split_runs(common.Store(Path(args.work.format(k)) / args.dataset), args.seeds) for k in args.drop_last}
    dataset = common.load_benchmark_dataset(common.S3REC_DATA, args.dataset)
    report_splits = {}
    for k, runs in splits.items():
        row = {m: {f: v for f, v in r.items() if f != "per_user"} for m, r in runs.items()}
        shorter = common.drop_last_items(dataset, k)
        row["seen_transition_share"] = {s: seen_transition_share(shorter, s) for s in ("valid", "test")}
        for model in ("s3rec_no_pretraining", "lrml"):
            row[model]["test_minus_ease"] = paired_bootstrap(runs[model]["per_user"], runs["ease"]["per_user"])
        report_splits[f"drop_last_{k}"] = row
        print(f"drop last {k}: " + ", ".join(f"{m} valid {r['valid_ndcg_at_10']:.4f} test {r['test_ndcg_at_10']:.4f}"
                                             for m, r in runs.items()))  # fmt: skip
        print(f"  target follows the last input item somewhere in training: valid "
              f"{row['seen_transition_share']['valid']:.3f}, test {row['seen_transition_share']['test']:.3f}")
        for model in ("s3rec_no_pretraining", "lrml"):
            gap = row[model]["test_minus_ease"]
            print(f"  {model} - EASE: {gap['mean_difference']:+.4f} ({gap['ci_low']:+.4f} .. {gap['ci_high']:+.4f})")
    # How the S3Rec-minus-EASE gap on the published split differs from the gap one split earlier.
    gap_shifts = {}
    first = min(splits)
    for k in sorted(splits)[1:]:
        gap = {s: splits[s]["s3rec_no_pretraining"]["per_user"] - splits[s]["ease"]["per_user"] for s in (first, k)}
        gap_shifts[f"drop_last_{first}_minus_drop_last_{k}"] = paired_bootstrap(gap[first], gap[k])
        shift = gap_shifts[f"drop_last_{first}_minus_drop_last_{k}"]
        print(f"S3Rec - EASE gap, drop last {first} minus drop last {k}: {shift['mean_difference']:+.4f} "
              f"({shift['ci_low']:+.4f} .. {shift['ci_high']:+.4f})")  # fmt: skip
    report = {"dataset": args.dataset, "seeds": args.seeds, "protocol": common.PROTOCOL, "splits": report_splits,
              "s3rec_minus_ease_gap_change": gap_shifts} | common.environment(started)  # fmt: skip
    common.write_report(report, args.results)
    print(common.footer(report, args.results))


if __name__ == "__main__":
    main()
