"""How far S3Rec's MovieLens-100k figures move when only dropout's random stream changes.

On CPU, S3Rec's dropout draws its keep masks from random bits (``models.s3rec.dropout``, since
commit 43d1720); other devices, and this code before that commit, use torch's fused kernels
(``F.dropout`` and the attention dropout inside ``F.scaled_dot_product_attention``). Both drop
with the same probability, so the two streams are two draws of the same training procedure: the
difference between them, seed by seed, is what one seed's figure can tell. This trains S3Rec with
and without pretraining under each stream at the same seeds (the pipeline's defaults, CPU) and
reports test NDCG@10 per seed and over the seeds, each difference with a paired bootstrap over
test users. The torch stream here reproduces the figures recorded before 43d1720 (seed 42:
0.1142 pretrained, 0.1126 not).

Run: .venv/bin/python benchmarks/dropout_stream.py [--seeds 42 1 2 3 4] [--threads 2]
     [--work .cache/dropout_stream] [--results benchmarks/results/dropout_stream.json]
Finished runs are kept in --work (one per stream and seed) and not trained again.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import models.s3rec  # noqa: E402
from benchmarks import common  # noqa: E402
from models.s3rec import S3Rec, S3RecConfig  # noqa: E402
from movielens_pipeline.evaluation.metrics import full_ranking, metrics_from_ranks, per_user_metric  # noqa: E402
from movielens_pipeline.evaluation.protocols import paired_bootstrap  # noqa: E402
from movielens_pipeline.evaluation.scorers import s3rec_score_fn  # noqa: E402
from movielens_pipeline.training.s3rec import FinetuneConfig, PretrainConfig, finetune, pretrain  # noqa: E402

RESULTS = common.RESULTS_DIR / "dropout_stream.json"
STREAMS = ("bits", "torch")
VARIANTS = ("s3rec", "none")


def _fused_attention(self, query, key, value, allowed):
    dropout_p = self.attention_dropout if self.training else 0.0
    return F.scaled_dot_product_attention(query, key, value, attn_mask=allowed, dropout_p=dropout_p)


@contextlib.contextmanager
def dropout_stream(stream: str):
    """``bits``: the model as it is; ``torch``: its CPU dropout swapped for torch's fused kernels
    (what it runs on other devices), restored on exit."""
    if stream == "bits":
        yield
        return
    saved = models.s3rec.dropout, models.s3rec.SelfAttention._attend
    models.s3rec.dropout = lambda x, p, training: F.dropout(x, p, training=training)
    models.s3rec.SelfAttention._attend = _fused_attention
    try:
        yield
    finally:
        models.s3rec.dropout, models.s3rec.SelfAttention._attend = saved


def train_both(dataset, model_config: S3RecConfig, seed: int, device):
    """Test ranks and best validation NDCG@10 of S3Rec without and with pretraining at one seed."""

    def test_ranks(trained) -> np.ndarray:
        model = S3Rec(model_config)
        model.load_state_dict(trained.state_dict)
        model.eval()
        ranks, *_ = full_ranking(s3rec_score_fn(model, device), dataset.user_indices, dataset.test_inputs(),
                                 dataset.test_targets(), dataset.num_items)  # fmt: skip
        return np.asarray(ranks)

    none = finetune(dataset, model_config, FinetuneConfig(seed=seed), device)
    pretrained = pretrain(dataset, model_config, PretrainConfig(seed=seed), device)
    s3rec = finetune(dataset, model_config, FinetuneConfig(seed=seed), device, pretrained=pretrained)
    figures = {f"{name}_valid_ndcg_at_10": trained.summary["best_valid_ndcg_at_10"]
               for name, trained in (("none", none), ("s3rec", s3rec))}  # fmt: skip
    return figures, {"none": test_ranks(none), "s3rec": test_ranks(s3rec)}


def difference(first: list[np.ndarray], second: list[np.ndarray]) -> dict:
    """first minus second, NDCG@10 per test user averaged over the runs given, paired bootstrap."""
    ndcg = [np.mean([per_user_metric(r, "ndcg_at_10") for r in runs], axis=0) for runs in (first, second)]
    return {"first": float(ndcg[0].mean()), "second": float(ndcg[1].mean())} | paired_bootstrap(*ndcg)


def compare(ranks: dict[tuple[str, int], dict[str, np.ndarray]], seeds: list[int]) -> dict:
    """Bits minus torch per variant (each seed and over all), pretrained minus none per stream."""
    report = {}
    for variant in VARIANTS:
        for seed in seeds:
            report[f"{variant}/seed {seed}: bits - torch"] = difference(
                [ranks["bits", seed][variant]], [ranks["torch", seed][variant]])  # fmt: skip
        report[f"{variant}/all seeds: bits - torch"] = difference(
            [ranks["bits", s][variant] for s in seeds], [ranks["torch", s][variant] for s in seeds])  # fmt: skip
    for stream in STREAMS:
        report[f"{stream}/all seeds: s3rec - none"] = difference(
            [ranks[stream, s]["s3rec"] for s in seeds], [ranks[stream, s]["none"] for s in seeds])  # fmt: skip
    return report


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: every core)")
    parser.add_argument("--work", type=Path, default=Path(".cache/dropout_stream"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.perf_counter()
    device, dataset = common.prepare("cpu", args.threads)
    model_config = S3RecConfig(num_items=dataset.num_items, num_attributes=dataset.num_attributes)
    store = common.Store(args.work)

    per_run, ranks = {}, {}
    for stream in STREAMS:
        for seed in args.seeds:
            key = f"{stream}-{seed}"
            with dropout_stream(stream):
                figures, ranks[stream, seed] = common.run_or_load(
                    store, key, lambda: train_both(dataset, model_config, seed, device))  # fmt: skip
            per_run[key] = figures | {f"{variant}_test_ndcg_at_10": metrics_from_ranks(ranks[stream, seed][variant])
                                      ["ndcg_at_10"] for variant in VARIANTS}  # fmt: skip
    comparisons = compare(ranks, args.seeds)
    report = {"protocol": common.PROTOCOL, "dataset": dataset.stats, "seeds": args.seeds, "runs": per_run,
              "comparisons": comparisons, "device": str(device)} | common.environment(started)  # fmt: skip
    common.write_report(report, args.results)

    print(f"\nMovieLens-100k, test NDCG@10, {common.PROTOCOL}")
    for name, c in comparisons.items():
        print(f"{name:<32}{c['first']:>8.4f}{c['second']:>8.4f}  {c['mean_difference']:+.4f} "
              f"({c['ci_low']:+.4f} .. {c['ci_high']:+.4f})")  # fmt: skip
    print(common.footer(report, args.results))
    return report


if __name__ == "__main__":
    main()
