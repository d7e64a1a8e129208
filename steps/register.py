from typing import Annotated, List

import mlflow
import pandas as pd
from zenml import get_step_context, step

from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.integrations.materializers import RecordMaterializer
from movielens_pipeline.integrations.tracking import experiment_tracker_name, git_commit
from movielens_pipeline.serving import registry
from movielens_pipeline.serving.promotion import PromotionRule
from movielens_pipeline.serving.records import ChampionRecord, RegistrationDecision
from movielens_pipeline.training.trained_model import TrainedModel


@step(experiment_tracker=experiment_tracker_name(), enable_cache=False, output_materializers=RecordMaterializer)
def register(
    sequence_dataset: SequenceDataset,
    trained_models: List[TrainedModel],
    evaluation_metrics: pd.DataFrame,
    per_user_ranks: pd.DataFrame,
    input_fingerprint: str,
    registered_model_name: str,
    champion: ChampionRecord,
    promotion: PromotionRule = PromotionRule(),
    pretraining_plan: str = "",
    records_pretraining_verdict: bool = False,
) -> Annotated[RegistrationDecision, "registration"]:
    """Register the run's models; the best on validation becomes champion only if it beats
    ``champion`` (the one load_champion recorded) on today's test split.

    ``pretraining_plan``: what ``pretrain`` made the run train (reported). With
    ``records_pretraining_verdict``, also record on the registered model whether pretraining
    paid on validation, for later runs with ``pretrain: auto`` to follow."""
    trained = {model.summary["name"]: model for model in trained_models}
    tags = {
        "data_fingerprint": sequence_dataset.fingerprint(),
        "input_fingerprint": input_fingerprint,
        "git_commit": git_commit(),
        "zenml_run_id": str(get_step_context().pipeline_run.id),
    }
    verdict = None
    if records_pretraining_verdict:
        verdict = registry.measured_pretraining_verdict(trained, per_user_ranks, promotion, tags["zenml_run_id"])
    decision = registry.register_run(
        registered_model_name, trained, sequence_dataset, evaluation_metrics, per_user_ranks, tags, promotion,
        champion,
    ).model_copy(update={"pretraining_plan": pretraining_plan, "pretraining_verdict": verdict})  # fmt: skip
    # Recorded once the registration stands: a run that fails before leaves the next one measuring.
    if verdict is not None:
        registry.record_pretraining_verdict(registered_model_name, verdict)
    mlflow.log_dict(decision.model_dump(), "registration/decision.json")
    pretraining_tags = {"pretraining_plan": pretraining_plan[:5000]} if pretraining_plan else {}
    if verdict is not None:
        pretraining_tags["pretraining_pays"] = str(verdict.pays).lower()
    mlflow.set_tags({"promotion": str(decision.alias), "promotion_reason": decision.reason} | tags | pretraining_tags)
    print(decision.summary())
    return decision
