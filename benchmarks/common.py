"""What the MovieLens-100k benchmarks share: the protocol, the dataset, test figures and the report.

Imported by the scripts in this folder (which put the repository root on ``sys.path`` first).
"""

from __future__ import annotations

import json
import logging
import platform
import time
from pathlib import Path

import torch

from movielens_pipeline.data.build import BuildConfig, build_sequence_dataset
from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.data.embedded import load_embedded_ml100k
from movielens_pipeline.evaluation.metrics import full_ranking, metrics_from_ranks
from movielens_pipeline.training.runtime import pick_device

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROTOCOL = "leave-one-out by time; full ranking over all items, seen items excluded, pessimistic ties"
NOTE = "timings are wall clock on a shared machine and may be inflated by other jobs"


def prepare(device: str, threads: int | None) -> tuple[torch.device, SequenceDataset]:
    """Logging, the device, torch's CPU threads (None: every core) and the built ML-100k dataset."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    chosen = pick_device(device)
    if threads:
        torch.set_num_threads(threads)
    source = load_embedded_ml100k()
    dataset = build_sequence_dataset(source.interactions, source.items, source.item_attributes, BuildConfig())
    return chosen, dataset


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
