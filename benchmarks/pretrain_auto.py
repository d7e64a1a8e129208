"""What ``pretrain: auto`` decides on each dataset, and whether test agrees.

Per dataset, as the default pipeline trains them (``PretrainConfig()``, ``FinetuneConfig()``,
one seed): S3Rec pretrained then finetuned, and the same finetuning without pretraining; the
verdict the ``register`` step would record (validation users, paired bootstrap, the promotion
rule's one-sided 95% bound: ``serving.promotion.pretraining_verdict``), beside the same
comparison on the test users, which the verdict never sees.

Run: .venv/bin/python benchmarks/pretrain_auto.py --datasets ml-100k LastFM Toys_and_Games:0.5
(``name:fraction`` keeps a seeded share of the users, as s3rec_paper.py --user-fractions;
writes benchmarks/results/pretrain_auto.json)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from movielens_pipeline.evaluation.protocols import evaluate_models, paired_bootstrap, per_user_table  # noqa: E402
from movielens_pipeline.families import load_recommender  # noqa: E402
from movielens_pipeline.serving.promotion import PromotionRule, per_user_from_table, pretraining_verdict  # noqa: E402
from movielens_pipeline.training.s3rec import FinetuneConfig, PretrainConfig, finetune, pretrain, s3rec_config  # noqa: E402

RESULTS = common.RESULTS_DIR / "pretrain_auto.json"


def decide(name: str, seed: int, device) -> dict:
    dataset_name, _, fraction = name.partition(":")
    dataset = common.load_benchmark_dataset(common.S3REC_DATA, dataset_name)
    if fraction:
        dataset = common.keep_users(dataset, float(fraction))
    model_config = s3rec_config(dataset)
    pretrained, pretrain_seconds = common.timed(pretrain, dataset, model_config, PretrainConfig(seed=seed), device)
    finetuning = FinetuneConfig(seed=seed)
    trained, seconds = {}, {}
    for model, start in (("s3rec", pretrained), ("sasrec_no_pretraining", None)):
        trained[model], seconds[model] = common.timed(finetune, dataset, model_config, finetuning, device,
                                                      pretrained=start, name=model)  # fmt: skip
    ranks = per_user_table(evaluate_models({model: load_recommender(t).score_fn for model, t in trained.items()},
                                           dataset))  # fmt: skip
    rule = PromotionRule()
    verdict = pretraining_verdict(ranks, "s3rec", "sasrec_no_pretraining", rule, time.strftime("%Y-%m-%d"))
    test = paired_bootstrap(*(per_user_from_table(ranks, model, rule.metric) for model in trained))
    print(f"{name}: {verdict.summary()}; test {test['mean_difference']:+.4f} "
          f"({test['ci_low']:+.4f} .. {test['ci_high']:+.4f})", flush=True)  # fmt: skip
    return {
        "dataset": name, "seed": seed, "users": dataset.num_users, "interactions": dataset.stats["num_interactions"],
        "verdict": verdict.model_dump(), "test_gain": test,
        "test_ndcg_at_10": {model: float(per_user_from_table(ranks, model, rule.metric).mean()) for model in trained},
        "seconds": {"pretraining": pretrain_seconds} | {f"finetuning_{model}": s for model, s in seconds.items()},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "LastFM", "Toys_and_Games:0.5"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.perf_counter()
    device, _ = common.prepare(args.device, None)
    report = {"protocol": common.PROTOCOL, "rows": [decide(name, args.seed, device) for name in args.datasets]}
    report |= common.environment(started)
    common.write_report(report, args.results)
    print(common.footer(report, args.results))


if __name__ == "__main__":
    main()
