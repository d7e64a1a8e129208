"""Print the results of the latest training pipeline run (what `make run` ends with)."""

from __future__ import annotations

import argparse

from movielens_pipeline.evaluation.reports import format_results


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
    print(decision.summary())


if __name__ == "__main__":
    main()
