"""Print the results of the latest training pipeline run (what `make run` ends with).

`make run` prints them from the process that ran the pipeline (``run_pipeline --report``), where
ZenML, MLflow and the materializers are already imported; this module prints them again later.
"""

from __future__ import annotations

import argparse

from movielens_pipeline.evaluation.reports import format_results


def report_text(run) -> str:
    """A training run's status, results table, best-vs-runner-up interval and registry decision."""
    lines = [f"\nZenML run {run.name}: {run.status}"]
    if "evaluate" not in run.steps or "register" not in run.steps:
        lines.append("The run did not reach evaluation; see the step logs above.")
        return "\n".join(lines)
    lines.append(format_results(run.steps["evaluate"].outputs["evaluation_metrics"][0].load()))
    comparison = run.steps["evaluate"].outputs["best_vs_runner_up"][0].load()
    if comparison:
        lines.append(
            f"\n{comparison['best']} vs {comparison['runner_up']}: NDCG@10 difference "
            f"{comparison['mean_difference']:+.4f} (95% paired bootstrap CI "
            f"{comparison['ci_low']:+.4f} .. {comparison['ci_high']:+.4f})"
        )
    lines.append(run.steps["register"].outputs["registration"][0].load().summary())
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="training_pipeline")
    args = parser.parse_args()
    from zenml.client import Client

    print(report_text(Client().get_pipeline(args.pipeline).last_run))


if __name__ == "__main__":
    main()
