"""What a shorter early-stopping patience would select, and what it would save.

Early stopping only decides where a training run ends: the epochs before that are the same for
every patience (same data, config and seed). So each model is trained once with the longest
patience studied (``RECORDED_PATIENCE``: S3Rec 10, LRML 8, the defaults when the study began), its
validation figure recorded after every epoch as training records it, and its test ranks recorded
beside it at every epoch that improves on the best validation figure so far, the only epochs any
patience can keep (never used to choose anything). For every shorter patience the script replays
the stopping rule on that validation curve: the epoch it would keep, its validation and test
NDCG@10, and the training time up to where it would stop. Per dataset and model, the test NDCG@10
of each patience minus the recorded patience's is compared per test user (paired bootstrap over
every seed's users).

Models: S3Rec finetuned from the pipeline's default pretraining (``s3rec``), the same finetuning
from scratch (``sasrec_no_pretraining``) and LRML, all with the pipeline's defaults but the patience.

Run: .venv/bin/python benchmarks/patience.py --datasets ml-100k:42,1,2,3,4 LastFM:42,1,2
(runs are kept in --work, so a stopped run resumes; writes benchmarks/results/patience.json), and
for LRML on Toys_and_Games: --datasets Toys_and_Games:42,1 --models lrml
--results benchmarks/results/patience_toys_lrml.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from movielens_pipeline.evaluation import metrics  # noqa: E402
from movielens_pipeline.evaluation.protocols import paired_bootstrap  # noqa: E402
from movielens_pipeline.training import pairwise, s3rec  # noqa: E402
from movielens_pipeline.training.loop import EarlyStopping  # noqa: E402
from movielens_pipeline.training.pairwise import LRMLTrainConfig, train_lrml  # noqa: E402
from movielens_pipeline.training.s3rec import (  # noqa: E402
    FinetuneConfig,
    PretrainConfig,
    finetune,
    pretrain,
    s3rec_config,
)

RESULTS = common.RESULTS_DIR / "patience.json"
NO_WEIGHTS = torch.nn.Module()  # the replay keeps no weights, only the epoch numbers
PATIENCES = (3, 5, 8, 10)
RECORDED_PATIENCE = {"s3rec": 10, "sasrec_no_pretraining": 10, "lrml": 8}
MODELS = tuple(RECORDED_PATIENCE)
NOT_RANKED = -1  # a test-rank row of an epoch no patience can keep


def recording_test_ranks(dataset, test_ranks: list[np.ndarray], validation_seconds: list[float]):
    """A stand-in for ``metrics.validator`` that validates as it does and, after each validation,
    also ranks every test target with the same weights (into ``test_ranks``). Ranking in eval
    mode draws no random numbers, so training follows the same path as without it."""

    def make_validator(score_fn, *args, **kwargs):
        validate = metrics.validator(score_fn, *args, **kwargs)
        test = (dataset.user_indices, dataset.test_inputs(), dataset.test_targets(), dataset.num_items)
        best = float("-inf")

        def validate_and_test() -> dict[str, float]:
            nonlocal best
            started = time.perf_counter()
            figures = validate()
            validation_seconds.append(time.perf_counter() - started)
            if figures["ndcg_at_10"] > best:
                best = figures["ndcg_at_10"]
                test_ranks.append(metrics.full_ranking(score_fn, *test).ranks)
            else:
                test_ranks.append(np.full(len(dataset.user_indices), NOT_RANKED))
            return figures

        return validate_and_test

    return make_validator


def train_recording(dataset, model: str, seed: int, device, pretrained) -> tuple[dict, dict]:
    """One run with its recorded patience: per-epoch validation NDCG@10, training seconds and test ranks."""
    test_ranks, validation_seconds = [], []
    stand_in = recording_test_ranks(dataset, test_ranks, validation_seconds)
    module, original = (pairwise, pairwise.validator) if model == "lrml" else (s3rec, s3rec.validator)
    module.validator = stand_in
    try:
        patience = RECORDED_PATIENCE[model]
        if model == "lrml":
            trained = train_lrml(dataset, cfg=LRMLTrainConfig(seed=seed, patience=patience), device=device)
        else:
            trained = finetune(dataset, s3rec_config(dataset), FinetuneConfig(seed=seed, patience=patience), device,
                               pretrained=pretrained, name=model)  # fmt: skip
    finally:
        module.validator = original
    curve = {
        "valid_ndcg_at_10": [h["valid_ndcg_at_10"] for h in trained.history],
        "epoch_seconds": [h["epoch_seconds"] + v for h, v in zip(trained.history, validation_seconds)],
        "best_epoch": trained.summary["best_epoch"],
        "stop_reason": trained.summary["stop_reason"],
    }
    return curve, {"test_ranks": np.stack(test_ranks)}


def stop_under(valid_curve: list[float], patience: int) -> tuple[int, int]:
    """(kept epoch, epochs run), both 1-based, had training stopped after ``patience`` epochs
    without a better validation figure: the training loop's own rule, replayed."""
    stopper = EarlyStopping(patience)
    for epoch, value in enumerate(valid_curve, start=1):
        if stopper.update(value, epoch, NO_WEIGHTS):
            return stopper.best_epoch, epoch
    return stopper.best_epoch, len(valid_curve)


def replay(runs: dict[int, tuple[dict, dict]], model: str) -> dict:
    """Every studied patience on one model's runs (seed -> run): what it keeps, costs and scores."""
    default = RECORDED_PATIENCE[model]
    per_user, rows = {}, {}
    for patience in (p for p in PATIENCES if p <= default):
        kept_runs = []
        for seed, (curve, arrays) in runs.items():
            kept, run = stop_under(curve["valid_ndcg_at_10"], patience)
            if patience == default and (kept, run) != (curve["best_epoch"], len(curve["valid_ndcg_at_10"])):
                raise AssertionError(f"{model} seed {seed}: the replay does not stop where training stopped")
            ranks = arrays["test_ranks"][kept - 1]
            if (ranks == NOT_RANKED).any():
                raise AssertionError(f"{model} seed {seed}: epoch {kept} was kept but its test was not ranked")
            test = metrics.per_user_metric(ranks, "ndcg_at_10")
            kept_runs.append({"seed": seed, "kept_epoch": kept, "epochs_run": run,
                              "seconds": float(sum(curve["epoch_seconds"][:run])),
                              "valid_ndcg_at_10": curve["valid_ndcg_at_10"][kept - 1],
                              "test_ndcg_at_10": float(test.mean())})  # fmt: skip
            per_user.setdefault(patience, []).append(test)
        rows[patience] = {
            "runs": kept_runs,
            "mean_valid_ndcg_at_10": float(np.mean([r["valid_ndcg_at_10"] for r in kept_runs])),
            "mean_test_ndcg_at_10": float(np.mean([r["test_ndcg_at_10"] for r in kept_runs])),
            "total_seconds": float(sum(r["seconds"] for r in kept_runs)),
        }
    baseline = np.concatenate(per_user[default])
    for patience, row in rows.items():
        row["test_minus_default"] = paired_bootstrap(np.concatenate(per_user[patience]), baseline)
        row["seconds_share_of_default"] = row["total_seconds"] / rows[default]["total_seconds"]
    return {"default_patience": default, "by_patience": {str(p): row for p, row in rows.items()}}


def study(name: str, seeds: list[int], models: list[str], store: common.Store, device) -> dict:
    dataset = common.load_benchmark_dataset(common.S3REC_DATA, name)
    runs: dict[str, dict[int, tuple[dict, dict]]] = {}
    for seed in seeds:
        pretrained = None
        for model in models:
            key = f"{name}-{model}-seed{seed}"
            found = store.get(key)
            if found is None:
                if model == "s3rec" and pretrained is None:
                    pretrained = pretrain(dataset, s3rec_config(dataset), PretrainConfig(seed=seed), device)
                found = train_recording(dataset, model, seed, device, pretrained)
                store.put(key, *found)
            runs.setdefault(model, {})[seed] = found
            print(f"{key}: best epoch {found[0]['best_epoch']} of {len(found[0]['valid_ndcg_at_10'])}", flush=True)
    return {"users": dataset.num_users, "seeds": seeds, "models": {m: replay(r, m) for m, r in runs.items()}}


def summary_lines(report: dict) -> list[str]:
    lines = []
    for name, result in report["datasets"].items():
        for model, replayed in result["models"].items():
            for patience, row in replayed["by_patience"].items():
                gain = row["test_minus_default"]
                lines.append(f"{name} {model} patience {patience}: valid {row['mean_valid_ndcg_at_10']:.4f} "
                             f"test {row['mean_test_ndcg_at_10']:.4f} ({gain['mean_difference']:+.4f}, "
                             f"{gain['ci_low']:+.4f} .. {gain['ci_high']:+.4f}), "
                             f"time x{row['seconds_share_of_default']:.2f}, "
                             f"kept epochs {[r['kept_epoch'] for r in row['runs']]}")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k:42,1,2,3,4", "LastFM:42,1,2"],
                        help="name:seed,seed,... (ml-100k, LastFM, Toys_and_Games)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--work", type=Path, default=Path(".cache/patience"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.perf_counter()
    device, _ = common.prepare(args.device, None)
    datasets = {}
    for spec in args.datasets:
        name, _, seeds = spec.partition(":")
        datasets[name] = study(name, [int(s) for s in seeds.split(",")], args.models, common.Store(args.work / name),
                               device)  # fmt: skip
    report = {"protocol": common.PROTOCOL, "patiences": PATIENCES, "datasets": datasets} | common.environment(started)
    common.write_report(report, args.results)
    print("\n".join(summary_lines(report)))
    print(common.footer(report, args.results))


if __name__ == "__main__":
    main()
