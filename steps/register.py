from typing import Annotated, Optional

import mlflow
import pandas as pd
from zenml import get_step_context, log_metadata, step

from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.integrations.tracking import experiment_tracker_name, git_commit
from movielens_pipeline.serving import registry
from movielens_pipeline.serving.promotion import PromotionRule, decision_summary
from movielens_pipeline.training.trained_model import TrainedModel


@step(experiment_tracker=experiment_tracker_name(), enable_cache=False)
def register(
    sequence_dataset: SequenceDataset,
    s3rec_model: TrainedModel,
    lrml_model: TrainedModel,
    evaluation_metrics: pd.DataFrame,
    per_user_ranks: pd.DataFrame,
    input_fingerprint: str,
    registered_model_name: str,
    champion: dict,
    sasrec_model: Optional[TrainedModel] = None,
    promotion: PromotionRule = PromotionRule(),
) -> Annotated[dict, "registration"]:
    """Register the run's models; the best on validation becomes champion only if it beats
    ``champion`` (the one load_champion recorded) on today's test split."""
    trained = {m.summary["name"]: m for m in (s3rec_model, sasrec_model, lrml_model) if m is not None}
    tags = {
        "data_fingerprint": sequence_dataset.fingerprint(),
        "input_fingerprint": input_fingerprint,
        "git_commit": git_commit(),
        "zenml_run_id": str(get_step_context().pipeline_run.id),
    }
    decision = registry.register_run(
        registered_model_name, trained, sequence_dataset, evaluation_metrics, per_user_ranks, tags, promotion,
        champion,
    )  # fmt: skip
    mlflow.log_dict(decision, "registration/decision.json")
    mlflow.set_tags({"promotion": str(decision["alias"]), "promotion_reason": decision["reason"]} | tags)
    log_metadata(metadata={"registration": decision})
    print(decision_summary(decision))
    return decision
