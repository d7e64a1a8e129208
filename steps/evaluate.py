from typing import Annotated, Optional, Tuple

import mlflow
import pandas as pd
from zenml import log_metadata, step
from zenml.config.cache_policy import CachePolicy
from zenml.types import HTMLString

from movielens_pipeline import baselines, evaluation, metrics, recommenders
from movielens_pipeline.dataset import SequenceDataset
from movielens_pipeline.tracking import experiment_tracker_name
from movielens_pipeline.training import TrainedModel, pick_device


@step(
    experiment_tracker=experiment_tracker_name(),
    cache_policy=CachePolicy(source_dependencies=[evaluation, baselines, metrics, recommenders]),
)
def evaluate(
    sequence_dataset: SequenceDataset,
    s3rec_model: TrainedModel,
    lrml_model: TrainedModel,
    sasrec_model: Optional[TrainedModel] = None,
    ease_l2: float = 300.0,
    negatives_seed: int = 0,
    device: str = "auto",
) -> Tuple[
    Annotated[pd.DataFrame, "evaluation_metrics"],
    Annotated[pd.DataFrame, "per_user_ranks"],
    Annotated[dict, "best_vs_runner_up"],
    Annotated[HTMLString, "evaluation_report"],
]:
    """Every model and baseline on the same users: HR/NDCG/MRR/Recall@{5,10,20}, coverage."""
    torch_device = pick_device(device)
    trained = [m for m in (s3rec_model, sasrec_model, lrml_model) if m is not None]
    scorers = {m.summary["name"]: recommenders.load_recommender(m, torch_device).score_fn for m in trained}
    scorers["popularity"] = baselines.popularity_score_fn(sequence_dataset)
    scorers["ease"] = baselines.ease_score_fn(baselines.fit_ease(sequence_dataset, ease_l2))

    evaluations = [
        evaluation.evaluate_model(name, score_fn, sequence_dataset, split, negatives_seed, torch_device)
        for name, score_fn in scorers.items()
        for split in ("valid", "test")
    ]
    table = evaluation.results_table(evaluations)
    comparison = evaluation.compare_best_two(evaluations)
    chart = evaluation.comparison_chart_png(table)
    report = evaluation.comparison_html(table, comparison, chart)

    run_ids = {m.summary["name"]: m.summary["mlflow_run_id"] for m in trained}
    for name in scorers:
        model_metrics = evaluation.mlflow_metrics(table, name)
        if name in run_ids:
            # Each trained model's metrics go on its own training run, for the MLflow UI.
            for key, value in model_metrics.items():
                mlflow.MlflowClient().log_metric(run_ids[name], key, value)
        else:
            with mlflow.start_run(run_name=name, nested=True):
                mlflow.set_tag("model", name)
                mlflow.log_metrics(model_metrics)
    mlflow.log_text(report, "evaluation/report.html")
    mlflow.log_image(evaluation.png_to_image(chart), "evaluation/comparison.png")
    mlflow.log_dict(comparison, "evaluation/best_vs_runner_up.json")
    log_metadata(metadata={"best_vs_runner_up": comparison})
    per_user = evaluation.per_user_table(evaluations, sequence_dataset)
    return table, per_user, comparison, HTMLString(report)
