from typing import Annotated, Tuple

import mlflow
import pandas as pd
from zenml import log_metadata, save_artifact, step
from zenml.config.cache_policy import CachePolicy
from zenml.types import HTMLString

from movielens_pipeline.data import contracts
from movielens_pipeline.integrations.tracking import experiment_tracker_name, tracking_store_identity


@step(
    experiment_tracker=experiment_tracker_name(),
    cache_policy=CachePolicy(source_dependencies=[contracts], cache_func=tracking_store_identity),
)
def validate_data(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    item_attributes: pd.DataFrame,
    min_interactions_per_user: int = contracts.DEFAULT_MIN_INTERACTIONS_PER_USER,
    require_item_attributes: bool = True,
) -> Tuple[
    Annotated[HTMLString, "validation_report"],
    Annotated[dict, "validation_results"],
]:
    """Check the ingested tables against the Great Expectations suites in data_contracts/."""
    report = contracts.validate_tables(
        interactions,
        items,
        item_attributes,
        min_interactions_per_user=min_interactions_per_user,
        require_item_attributes=require_item_attributes,
    )
    html, results = HTMLString(report.to_html()), report.to_json()
    mlflow.log_text(html, "data_validation/report.html")
    mlflow.log_dict(results, "data_validation/results.json")
    mlflow.set_tag("data_validation", "passed" if report.success else "failed")
    log_metadata(metadata={"contracts_passed": report.success})
    if not report.success:
        # Outputs of a failing step are not stored, so keep the evidence explicitly.
        save_artifact(html, "failed_validation_report")
        save_artifact(results, "failed_validation_results")
        raise contracts.DataContractViolation(report.failure_message())
    return html, results
