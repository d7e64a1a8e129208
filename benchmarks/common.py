"""What the benchmarks share: the protocol, the datasets, test figures, finished runs kept on disk
and the report.

Imported by the scripts in this folder (which put the repository root on ``sys.path`` first).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np
import torch

from movielens_pipeline.data.build import BuildConfig, build_sequence_dataset
from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.data.embedded import load_embedded_ml100k
from movielens_pipeline.data.sources import load_source
from movielens_pipeline.evaluation.baselines import ease_score_fn, fit_ease, popularity_score_fn
from movielens_pipeline.evaluation.metrics import full_ranking, metrics_from_ranks
from movielens_pipeline.evaluation.protocols import PROTOCOLS, evaluate_models
from movielens_pipeline.training.runtime import pick_device

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROTOCOL = "leave-one-out by time; full ranking over all items, seen items excluded, pessimistic ties"
NOTE = "timings are wall clock on a shared machine and may be inflated by other jobs"
# The S3Rec authors' datasets, and the cut-offs their tables report.
S3REC_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "s3rec"
PAPER_KS = (1, 5, 10, 20)


def prepare(device: str, threads: int | None) -> tuple[torch.device, SequenceDataset]:
    """Logging, the device, torch's CPU threads (None: every core) and the built ML-100k dataset."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    chosen = pick_device(device)
    if threads:
        torch.set_num_threads(threads)
    return chosen, load_benchmark_dataset(S3REC_DATA, "ml-100k")


def timed(train, *args, **kwargs):
    """``train(*args, **kwargs)`` and its wall seconds."""
    started = time.perf_counter()
    result = train(*args, **kwargs)
    return result, time.perf_counter() - started


def test_figures(score, dataset: SequenceDataset, with_rank_seconds: bool = False) -> dict:
    """Test HR/NDCG@10 by full ranking; optionally the wall time of ranking every item for every user."""
    (ranks, *_), rank_seconds = timed(
        full_ranking, score, dataset.user_indices, dataset.test_inputs(), dataset.test_targets(), dataset.num_items
    )
    metrics = metrics_from_ranks(ranks)
    figures = {"test_hit_at_10": metrics["hit_at_10"], "test_ndcg_at_10": metrics["ndcg_at_10"]}
    if with_rank_seconds:
        figures["rank_all_pairs_seconds"] = rank_seconds
    return figures


def environment(started: float) -> dict:
    """Where and how long the benchmark ran (``started``: its time.perf_counter() at the start)."""
    return {
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "total_wall_seconds": time.perf_counter() - started,
        "note": NOTE,
    }


def write_report(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))


def footer(report: dict, path: Path) -> str:
    """The last console line: threads, total wall time and where the JSON went."""
    return f"torch threads {report['torch_threads']}, total wall {report['total_wall_seconds']:.1f}s -> {path}"


# --- the S3Rec authors' datasets, both protocols, finished runs kept on disk ---------------------


def load_sequence_files(data_dir: Path, name: str) -> SequenceDataset:
    """One of the S3Rec authors' datasets (``<name>.txt`` and its attributes), built as the pipeline builds it."""
    raw = load_source({"kind": "sequences", "path": str(data_dir), "name": name})
    return build_sequence_dataset(raw.interactions, raw.items, raw.item_attributes, BuildConfig())


def load_benchmark_dataset(data_dir: Path, name: str) -> SequenceDataset:
    """``ml-100k`` (the embedded MovieLens-100k, as ``make run`` builds it) or one of the S3Rec authors' datasets."""
    if name == "ml-100k":
        source = load_embedded_ml100k()
        return build_sequence_dataset(source.interactions, source.items, source.item_attributes, BuildConfig())
    return load_sequence_files(data_dir, name)


def keep_users(dataset: SequenceDataset, fraction: float, seed: int = 0) -> SequenceDataset:
    """A seeded share of the users with their whole sequences; items and attributes unchanged."""
    lengths = np.diff(dataset.offsets)
    kept = np.sort(np.random.default_rng(seed).choice(dataset.num_users, max(1, round(fraction * dataset.num_users)),
                                                      replace=False))  # fmt: skip
    interactions = np.isin(np.repeat(np.arange(dataset.num_users), lengths), kept)
    user_map = dataset.user_map.iloc[kept].assign(user_idx=np.arange(1, len(kept) + 1)).reset_index(drop=True)
    return _with_interactions(dataset, interactions, lengths[kept], {"user_fraction": fraction}, user_map=user_map)


def drop_last_items(dataset: SequenceDataset, count: int) -> SequenceDataset:
    """Every user's sequence without its last ``count`` items: the same users, items and attributes
    with the split moved ``count`` items back in time (``count`` 1: the old validation item becomes
    the test target). Users left with fewer than three items keep three."""
    if count == 0:
        return dataset
    lengths = np.diff(dataset.offsets)
    kept_lengths = np.maximum(lengths - count, np.minimum(lengths, 3))
    position = np.arange(len(dataset.items)) - np.repeat(dataset.offsets[:-1], lengths)
    kept = position < np.repeat(kept_lengths, lengths)
    return _with_interactions(dataset, kept, kept_lengths, {"dropped_last_items": count})


def _with_interactions(dataset: SequenceDataset, kept: np.ndarray, lengths: np.ndarray, note: dict,
                       **tables) -> SequenceDataset:  # fmt: skip
    """``dataset`` with only the ``kept`` interactions (users' sequences of ``lengths``), its
    statistics and fingerprint recomputed and ``note`` added to them."""
    stats = dataset.stats | {"num_users": len(lengths), "num_interactions": int(kept.sum()),
                             "sequence_length_mean": float(lengths.mean()),
                             "sequence_length_median": float(np.median(lengths)),
                             "sequence_length_max": int(lengths.max()),
                             "density": float(kept.sum() / (len(lengths) * dataset.num_items))} | note  # fmt: skip
    subset = dataclasses.replace(dataset, items=dataset.items[kept], timestamps=dataset.timestamps[kept],
                                 offsets=np.append(0, np.cumsum(lengths)).astype(np.int64), stats=stats, **tables)
    subset.stats["data_fingerprint"] = subset.fingerprint()
    return subset


def paper_figures(ranks: dict[str, np.ndarray]) -> dict[str, float]:
    """HR@1/5/10/20, NDCG@5/10/20 and MRR of test ranks under both protocols."""
    out = {}
    for protocol, values in ranks.items():
        metrics = metrics_from_ranks(values, PAPER_KS)
        prefix = "" if protocol == "full" else "sampled_"
        out |= {f"{prefix}hit_at_{k}": metrics[f"hit_at_{k}"] for k in PAPER_KS}
        out |= {f"{prefix}ndcg_at_{k}": metrics[f"ndcg_at_{k}"] for k in PAPER_KS[1:]}
        # Sampled ranks are exact among the 100 candidates; full ranks stop at 20.
        exact_mrr = float((1.0 / (np.asarray(values) + 1.0)).mean())
        out[f"{prefix}mrr"] = exact_mrr if protocol == "sampled" else metrics["mrr_at_20"]
    return out


class Store:
    """Finished models of one dataset: ``<key>.json`` (figures) and ``<key>.npz`` (per-user ranks)."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, key: str):
        meta, arrays = self.folder / f"{key}.json", self.folder / f"{key}.npz"
        if not (meta.exists() and arrays.exists()):
            return None
        with np.load(arrays) as ranks:
            return json.loads(meta.read_text()), {name: ranks[name] for name in ranks.files}

    def put(self, key: str, figures: dict, ranks: dict[str, np.ndarray]) -> None:
        np.savez(self.folder / f"{key}.npz", **ranks)
        (self.folder / f"{key}.json").write_text(json.dumps(figures, indent=1, default=float))


def evaluate_both_protocols(name: str, score_fn, dataset: SequenceDataset, history_free: bool = False):
    """Validation and test ranks under both protocols; the figures of test, NDCG@10 of validation."""
    evaluations = evaluate_models({name: score_fn}, dataset, history_free=[name] if history_free else [])
    by_split = {e.split: e for e in evaluations}
    test_ranks = {f"test_{protocol}": by_split["test"].ranks[protocol] for protocol in PROTOCOLS}
    figures = paper_figures({p: by_split["test"].ranks[p] for p in PROTOCOLS})
    figures["valid_ndcg_at_10"] = metrics_from_ranks(by_split["valid"].ranks["full"])["ndcg_at_10"]
    figures["valid_sampled_ndcg_at_10"] = metrics_from_ranks(by_split["valid"].ranks["sampled"])["ndcg_at_10"]
    return figures, test_ranks


def run_or_load(store: Store, key: str, make):
    """The stored result of ``key``, or ``make()`` -> (figures, ranks) computed and stored now."""
    found = store.get(key)
    if found is not None:
        logging.info("%s: from %s", key, store.folder)
        return found
    started = time.perf_counter()
    figures, ranks = make()
    figures["wall_seconds"] = time.perf_counter() - started
    store.put(key, figures, ranks)
    logging.info("%s: %s", key, ", ".join(f"{name} {value:.4f}" for name, value in figures.items()
                                          if name.endswith("ndcg_at_10")))  # fmt: skip
    return figures, ranks


EASE_L2_GRID = (10.0, 30.0, 100.0, 300.0, 1000.0)


def baselines(store: Store, dataset: SequenceDataset) -> dict[str, dict]:
    """Popularity and EASE (its one parameter, L2, chosen on validation NDCG@10 like every trained
    model's epochs): their test figures, stored once per dataset."""

    def ease():
        grid = {l2: evaluate_both_protocols("ease", ease_score_fn(fit_ease(dataset, l2)), dataset)
                for l2 in EASE_L2_GRID}  # fmt: skip
        best = max(grid, key=lambda l2: grid[l2][0]["valid_ndcg_at_10"])
        figures, ranks = grid[best]
        return figures | {"l2": best, "valid_ndcg_by_l2": {str(k): v[0]["valid_ndcg_at_10"]
                                                             for k, v in grid.items()}}, ranks  # fmt: skip

    popularity = run_or_load(store, "popularity",
                             lambda: evaluate_both_protocols("popularity", popularity_score_fn(dataset), dataset))
    return {"popularity": popularity[0], "ease": run_or_load(store, "ease", ease)[0]}
