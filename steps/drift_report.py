from typing import Annotated, Optional

import mlflow
import pandas as pd
from zenml import log_metadata, step
from zenml.types import HTMLString

from movielens_pipeline.data import drift
from movielens_pipeline.integrations.lineage import champion_training_interactions
from movielens_pipeline.integrations.tracking import experiment_tracker_name


@step(experiment_tracker=experiment_tracker_name(), enable_cache=False)
def drift_report(
    interactions: pd.DataFrame,
    registered_model_name: str = "movielens-recommender",
    thresholds: Optional[dict[str, Optional[float]]] = None,
) -> Annotated[HTMLString, "drift_report"]:
    """New data against the data the current champion was trained on."""
    reference = champion_training_interactions(registered_model_name)
    if reference is None:
        message = f"No champion of {registered_model_name} yet: nothing to compare the data with."
        print(message)
        return HTMLString(f"<html><body><p>{message}</p></body></html>")
    report = drift.drift_report(reference, interactions)
    mlflow.log_metrics({k: v for k, v in report.metrics().items() if v == v})  # NaN: no ratings
    html = report.to_html(thresholds)
    mlflow.log_text(html, "drift/report.html")
    alerts = report.alerts(thresholds)
    mlflow.set_tag("drift_alerts", "; ".join(alerts) or "none")
    log_metadata(metadata={"drift": report.metrics(), "drift_alerts": alerts})
    print(report.summary(thresholds))
    return HTMLString(html)
