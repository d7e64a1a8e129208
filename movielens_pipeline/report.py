"""Print the results of the latest training pipeline run (what `make run` ends with)."""

from __future__ import annotations

import argparse

import pandas as pd

HEADLINE = ["hit_at_10", "ndcg_at_10", "mrr_at_10", "hit_at_20", "ndcg_at_20", "coverage_at_10"]
SAMPLED = ["sampled_hit_at_10", "sampled_ndcg_at_10"]


def format_results(table: pd.DataFrame) -> str:
    test = table[table["split"] == "test"].set_index("model").sort_values("ndcg_at_10", ascending=False)
    with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 160):
        return (
            "Test, full ranking over all items, seen items excluded (headline):\n"
            f"{test[HEADLINE].to_string()}\n\n"
            "Test, target vs 99 sampled unseen items (papers' protocol):\n"
            f"{test[SAMPLED].to_string()}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pipeline", default="training_pipeline")
    args = parser.parse_args()
    from zenml.client import Client

    run = Client().get_pipeline(args.pipeline).last_run
    print(f"\nZenML run {run.name}: {run.status}")
    if "evaluate" not in run.steps or "register" not in run.steps:
        print("The run did not reach evaluation; see the step logs above.")
        return
    table = run.steps["evaluate"].outputs["evaluation_metrics"][0].load()
    print(format_results(table))
    comparison = run.steps["evaluate"].outputs["best_vs_runner_up"][0].load()
    if comparison:
        print(
            f"\n{comparison['best']} vs {comparison['runner_up']}: NDCG@10 difference "
            f"{comparison['mean_difference']:+.4f} (95% paired bootstrap CI "
            f"{comparison['ci_low']:+.4f} .. {comparison['ci_high']:+.4f})"
        )
    decision = run.steps["register"].outputs["registration"][0].load()
    print(
        f"Registered {decision['registered_model']} versions {decision['versions']}; "
        f"v{decision['version']} ({decision['candidate']}) is now @{decision['alias']}: {decision['reason']}"
    )


if __name__ == "__main__":
    main()
