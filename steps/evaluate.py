from typing import Annotated, List, Optional, Tuple

import pandas as pd
from zenml import log_metadata, step
from zenml.config.cache_policy import CachePolicy
from zenml.types import HTMLString

from models import bpr, lrml, s3rec
from movielens_pipeline import families
from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.evaluation import (
    baselines,
    metrics,
    protocols,
    reports,
    scorers,
    sharding,
)
from movielens_pipeline.integrations.tracking import (
    experiment_tracker_name,
    log_evaluation,
    tracking_store_identity,
)
from movielens_pipeline.training.runtime import pick_device
from movielens_pipeline.training.trained_model import TrainedModel


@step(
    experiment_tracker=experiment_tracker_name(),
    cache_policy=CachePolicy(source_dependencies=[baselines, metrics, protocols, reports, scorers, sharding, families,
                                                  bpr, lrml, s3rec], cache_func=tracking_store_identity),
)
def evaluate(
    sequence_dataset: SequenceDataset,
    trained_models: List[TrainedModel],
    ease_l2: float = 300.0,
    ease_memory_mb: float = 2048,
    negatives_seed: int = 0,
    max_users: Optional[int] = None,
    device: str = "auto",
    processes: int = 1,
) -> Tuple[
    Annotated[pd.DataFrame, "evaluation_metrics"],
    Annotated[pd.DataFrame, "per_user_ranks"],
    Annotated[dict, "best_vs_runner_up"],
    Annotated[HTMLString, "evaluation_report"],
]:
    """Every model and baseline on the same users: HR/NDCG/MRR/Recall@{5,10,20}, coverage.

    ``max_users``: rank a fixed seeded sample of that many users instead of all of them (full
    ranking costs users x items per model; the registry gate scores the champion on the same users).
    ``processes``: split the users into that many shards ranked by as many worker processes
    (torch.distributed's launcher; the numbers are the one-process numbers).
    """
    torch_device = pick_device(device)
    job = sharding.EvaluationJob(trained_models, ease_l2, ease_memory_mb, str(torch_device))
    users = protocols.evaluation_users(sequence_dataset, negatives_seed, max_users)
    evaluations, notes, baseline_params = sharding.evaluate(job, sequence_dataset, users, processes)
    table = protocols.results_table(evaluations)
    comparison = protocols.compare_best_two(evaluations)
    chart = reports.comparison_chart_png(table)
    report = reports.comparison_html(table, comparison, chart, notes)

    log_evaluation(table, {m.summary["name"]: m.summary["mlflow_run_id"] for m in trained_models}, report, chart,
                   comparison, baseline_params)  # fmt: skip
    log_metadata(metadata={"best_vs_runner_up": comparison, "baseline_notes": notes})
    per_user = protocols.per_user_table(evaluations)
    return table, per_user, comparison, HTMLString(report)
