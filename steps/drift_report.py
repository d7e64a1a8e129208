from typing import Annotated, Optional

import mlflow
import pandas as pd
from zenml import log_metadata, step
from zenml.client import Client
from zenml.types import HTMLString

from movielens_pipeline import drift
from movielens_pipeline.tracking import experiment_tracker_name


def champion_training_interactions(registered_model_name: str) -> Optional[pd.DataFrame]:
    """The interactions the current champion was trained on, through ZenML's lineage."""
    client = mlflow.MlflowClient()
    try:
        champion = client.get_model_version_by_alias(registered_model_name, "champion")
    except mlflow.exceptions.MlflowException:
        return None
    run = Client().get_pipeline_run(champion.tags["zenml_run_id"])
    return run.steps["ingest_ratings"].outputs["interactions"][0].load()


@step(experiment_tracker=experiment_tracker_name(), enable_cache=False)
def drift_report(
    interactions: pd.DataFrame,
    registered_model_name: str = "movielens-recommender",
    thresholds: Optional[dict] = None,
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
