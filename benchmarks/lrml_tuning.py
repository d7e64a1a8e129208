"""LRML against BPR-MF on MovieLens-100k, LastFM and Toys_and_Games: which settings keep LRML from
collapsing to popularity, chosen on validation.

Each named setting below changes the authors' choices in one or two places; every run trains
with the same budget (epochs, batch, patience on validation NDCG@10; 5 negatives per positive
unless the setting says 20, and BPR-MF runs with 5 and with 20), records its
best validation NDCG@10 and its test figures (full ranking, seen items excluded), the training
loss at its best epoch and the norms the collapse shows in (memory slots, relation). Runs are
kept in ``--work`` and reused.

Run: .venv/bin/python benchmarks/lrml_tuning.py --datasets ml-100k LastFM Toys_and_Games --seeds 42
     [--settings unbounded_memory memory_clip ...]   (writes benchmarks/results/lrml_tuning.json)
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from movielens_pipeline.evaluation.protocols import paired_bootstrap  # noqa: E402
from movielens_pipeline.families import load_recommender, trained_module  # noqa: E402
from movielens_pipeline.training.pairwise import (  # noqa: E402
    BPRTrainConfig,
    LRMLHyperparameters,
    LRMLTrainConfig,
    train_bpr,
    train_lrml,
)

RESULTS = common.RESULTS_DIR / "lrml_tuning.json"
DEFAULT_WORK = Path(__file__).resolve().parents[1] / ".cache" / "lrml_tuning"

# name -> (model overrides, training overrides), applied over the authors' choices (memory slots
# unbounded, uniform negatives, the hinge averaged over the negatives), 5 negatives per positive
# (the budget BPR-MF gets) and LRML's other defaults.
AUTHORS_BASE = ({"memory_clip_norm": None, "negative_reduction": "mean"},
                {"negative_sampling": "uniform", "negatives_per_positive": 5})
# The setting LRML's defaults are (models/lrml.py, LRMLTrainConfig).
DEFAULT_SETTING = "memory_clip+hardest_of_20"
SETTINGS: dict[str, tuple[dict, dict]] = {
    "unbounded_memory": ({}, {}),
    "unbounded_memory+20_negatives": ({}, {"negatives_per_positive": 20}),
    "unbounded_memory+dim_128": ({"dim": 128}, {}),
    "unbounded_memory+lr_0.02": ({}, {"lr": 0.02}),
    "memory_clip": ({"memory_clip_norm": 1.0}, {}),
    "popularity_negatives": ({}, {"negative_sampling": "popularity"}),
    "memory_clip+popularity_negatives": ({"memory_clip_norm": 1.0}, {"negative_sampling": "popularity"}),
    "memory_clip+popularity_negatives+margin_0.5": ({"memory_clip_norm": 1.0, "margin": 0.5},
                                                    {"negative_sampling": "popularity"}),
    "memory_clip_2+popularity_negatives": ({"memory_clip_norm": 2.0}, {"negative_sampling": "popularity"}),
    "memory_clip+popularity_negatives+lr_0.1": ({"memory_clip_norm": 1.0},
                                                {"negative_sampling": "popularity", "lr": 0.1}),
    "memory_clip+popularity_negatives+20_negatives": ({"memory_clip_norm": 1.0},
                                                      {"negative_sampling": "popularity", "negatives_per_positive": 20}),
    "memory_clip+popularity_negatives+dim_128": ({"memory_clip_norm": 1.0, "dim": 128},
                                                 {"negative_sampling": "popularity"}),
    "memory_clip+popularity_negatives+slots_50": ({"memory_clip_norm": 1.0, "memory_slots": 50},
                                                  {"negative_sampling": "popularity"}),
    "memory_clip+popularity_negatives+lr_0.02": ({"memory_clip_norm": 1.0},
                                                 {"negative_sampling": "popularity", "lr": 0.02}),
    "unbounded_memory+hardest_of_20": ({"negative_reduction": "hardest"}, {"negatives_per_positive": 20}),
    "memory_clip+popularity_negatives+hardest_of_20": ({"memory_clip_norm": 1.0, "negative_reduction": "hardest"},
                                                       {"negative_sampling": "popularity", "negatives_per_positive": 20}),
    "memory_clip+hardest_of_20": ({"memory_clip_norm": 1.0, "negative_reduction": "hardest"},
                                  {"negatives_per_positive": 20}),
    "shared_relation": ({"relation_for_negative": "shared"}, {}),
    "l1": ({"distance": "l1"}, {}),
    "adam_1e-3": ({}, {"optimizer": "adam", "lr": 1e-3}),
}
BPR = "bpr"  # BPR-MF with its own defaults and the same budget
# BPR-MF given as many negatives per positive as an LRML setting draws.
BPR_SETTINGS = {BPR: {}, "bpr+20_negatives": {"negatives_per_positive": 20}}
DEFAULT_EPOCHS = 40


def relation_norms(trained) -> dict[str, float]:
    """How large the memory slots grew, and how spread the attention is on the training pairs."""
    model = trained_module(trained)
    slots = model.memory_slots.detach().norm(dim=-1)
    return {"slot_norm_mean": float(slots.mean()), "slot_norm_max": float(slots.max())}


def run(store: common.Store, dataset, setting: str, seed: int, validation_users: int, epochs: int):
    def make():
        budget = {"seed": seed, "validation_users": validation_users, "epochs": epochs}
        if setting in BPR_SETTINGS:
            trained, wall = common.timed(train_bpr, dataset, None, BPRTrainConfig(**budget | BPR_SETTINGS[setting]))
            extra = {}
        else:
            model_overrides, train_overrides = SETTINGS[setting]
            trained, wall = common.timed(train_lrml, dataset, LRMLHyperparameters(**AUTHORS_BASE[0] | model_overrides),
                                         LRMLTrainConfig(**budget | AUTHORS_BASE[1] | train_overrides))  # fmt: skip
            extra = relation_norms(trained)
        figures, ranks = common.evaluate_both_protocols(setting, load_recommender(trained).score_fn, dataset,
                                                        history_free=True)  # fmt: skip
        best = trained.history[trained.summary["best_epoch"] - 1]
        return figures | extra | {
            "train_seconds": wall, "best_epoch": trained.summary["best_epoch"], "epochs_run": len(trained.history),
            "best_valid_ndcg_at_10": trained.summary["best_valid_ndcg_at_10"], "loss_at_best": best["loss"],
            "first_loss": trained.history[0]["loss"],
        }, ranks  # fmt: skip

    budget = "" if epochs == DEFAULT_EPOCHS else f"-epochs{epochs}"
    return common.run_or_load(store, f"{setting}-seed{seed}{budget}", make)


def per_user_ndcg(store: common.Store, key_prefix: str, seeds: list[int], epochs: int) -> np.ndarray | None:
    """Test NDCG@10 (full ranking) per user, averaged over the seeds; None when a run is missing."""
    budget = "" if epochs == DEFAULT_EPOCHS else f"-epochs{epochs}"
    found = [store.get(f"{key_prefix}-seed{seed}{budget}") for seed in seeds]
    if any(f is None for f in found):
        return None
    gains = [np.where(ranks["test_full"] < 10, 1.0 / np.log2(ranks["test_full"] + 2.0), 0.0) for _, ranks in found]
    return np.mean(gains, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=common.S3REC_DATA)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "LastFM", "Toys_and_Games"])
    parser.add_argument("--settings", nargs="+", default=[*SETTINGS, *BPR_SETTINGS], choices=[*SETTINGS, *BPR_SETTINGS])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--validation-users", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                        help="every run's budget, BPR-MF's too (each stops earlier on its patience)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    started = time.perf_counter()
    report = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"datasets": {}}
    for name in args.datasets:
        dataset = common.load_benchmark_dataset(args.data_dir, name)
        store = common.Store(args.work / name)
        references = common.baselines(store, dataset)
        popularity, ease = references["popularity"], references["ease"]
        rows = {}
        budget = "" if args.epochs == DEFAULT_EPOCHS else f" ({args.epochs} epochs)"
        for setting in args.settings:
            runs = [run(store, dataset, setting, seed, args.validation_users, args.epochs)[0] for seed in args.seeds]
            rows[setting + budget] = {key: statistics.fmean(r[key] for r in runs) for key in runs[0]
                                      if isinstance(runs[0][key], (int, float))} | {"seeds": len(runs)}  # fmt: skip
        default = per_user_ndcg(store, DEFAULT_SETTING, args.seeds, args.epochs)
        for bpr_setting in BPR_SETTINGS:
            bpr = per_user_ndcg(store, bpr_setting, args.seeds, args.epochs)
            if default is None or bpr is None:
                continue
            c = paired_bootstrap(default, bpr) | {"setting": DEFAULT_SETTING, "seeds": args.seeds}
            references[f"lrml_default_minus_{bpr_setting}"] = c
            print(f"LRML's default ({DEFAULT_SETTING}) - {bpr_setting}, test NDCG@10 per user, mean over seeds: "
                  f"{c['mean_difference']:+.4f} (95% CI {c['ci_low']:+.4f} .. {c['ci_high']:+.4f})")
        earlier = report["datasets"].get(name, {})
        report["datasets"][name] = earlier | references | {"runs": earlier.get("runs", {}) | rows}
        print(f"\n{name}: mean over seeds {args.seeds}; test NDCG@10 popularity {popularity['ndcg_at_10']:.4f}, "
              f"EASE {ease['ndcg_at_10']:.4f}")
        print(f"{'setting':<46}{'valid':>8}{'test':>8}{'x pop':>7}{'/EASE':>7}{'loss':>8}{'slots':>7}{'epoch':>6}{'s':>7}")
        for setting, f in rows.items():
            print(f"{setting:<46}{f['best_valid_ndcg_at_10']:>8.4f}{f['ndcg_at_10']:>8.4f}"
                  f"{f['ndcg_at_10'] / popularity['ndcg_at_10']:>7.2f}{f['ndcg_at_10'] / ease['ndcg_at_10']:>7.2f}"
                  f"{f['loss_at_best']:>8.4f}{f.get('slot_norm_mean', float('nan')):>7.2f}{f['best_epoch']:>6.0f}"
                  f"{f['train_seconds']:>7.0f}", flush=True)
    report |= {"protocol": common.PROTOCOL, "settings": {k: list(v) for k, v in SETTINGS.items()}}
    common.write_report(report | common.environment(started), RESULTS)


if __name__ == "__main__":
    main()
