from typing import Annotated, Optional

import mlflow
import pandas as pd
from zenml import get_step_context, log_metadata, step

from movielens_pipeline import registry
from movielens_pipeline.dataset import SequenceDataset
from movielens_pipeline.evaluation import mlflow_metrics
from movielens_pipeline.tracking import experiment_tracker_name, git_commit
from movielens_pipeline.training import TrainedModel


@step(experiment_tracker=experiment_tracker_name(), enable_cache=False)
def register(
    sequence_dataset: SequenceDataset,
    s3rec_model: TrainedModel,
    lrml_model: TrainedModel,
    evaluation_metrics: pd.DataFrame,
    per_user_ranks: pd.DataFrame,
    input_fingerprint: str,
    registered_model_name: str,
    sasrec_model: Optional[TrainedModel] = None,
    promotion: Optional[dict] = None,
) -> Annotated[dict, "registration"]:
    """Register every trained model; the best becomes champion only if it beats the current one."""
    rule = registry.PromotionRule(**(promotion or {}))
    trained = {m.summary["name"]: m for m in (s3rec_model, sasrec_model, lrml_model) if m is not None}
    test = evaluation_metrics[evaluation_metrics["split"] == "test"].set_index("model")
    candidate = max(trained, key=lambda name: test.loc[name, rule.metric])
    tags = {
        "data_fingerprint": sequence_dataset.fingerprint(),
        "input_fingerprint": input_fingerprint,
        "git_commit": git_commit(),
        "zenml_run_id": str(get_step_context().pipeline_run.id),
    }
    candidate_scores = registry.per_user_from_table(per_user_ranks, candidate, rule.metric)
    decision = registry.register_and_promote(
        registered_model_name,
        {name: registry.log_pyfunc(model, sequence_dataset, name) for name, model in trained.items()},
        {name: mlflow_metrics(evaluation_metrics, name) for name in trained},
        tags,
        candidate,
        candidate_scores,
        sequence_dataset,
        rule,
    )
    mlflow.log_dict(decision, "registration/decision.json")
    mlflow.set_tags(
        {"promotion": decision["alias"], "promotion_reason": decision["reason"]} | tags
    )
    log_metadata(metadata={"registration": decision})
    print(f"Registry: {registered_model_name} v{decision['version']} ({candidate}) → "
          f"@{decision['alias']}: {decision['reason']}")
    return decision
