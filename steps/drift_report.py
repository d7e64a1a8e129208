from typing import Annotated, Optional

import mlflow
import pandas as pd
from zenml import log_metadata, step
from zenml.types import HTMLString

from movielens_pipeline.data import drift
from movielens_pipeline.integrations.lineage import training_interactions
from movielens_pipeline.integrations.tracking import experiment_tracker_name
from movielens_pipeline.serving.records import ChampionRecord


@step(experiment_tracker=experiment_tracker_name(), enable_cache=False)
def drift_report(
    interactions: pd.DataFrame,
    champion: ChampionRecord,
    thresholds: Optional[dict[str, Optional[float]]] = None,
) -> Annotated[HTMLString, "drift_report"]:
    """The ratings that arrived since the champion was trained, against its training data."""
    if not champion.exists:
        return _note(f"No champion of {champion.registered_model} yet: nothing to compare the data with.")
    reference = training_interactions(champion.zenml_run_id)
    arrived = drift.new_interactions(reference, interactions)
    if arrived.empty:
        return _note(f"No ratings arrived since v{champion.version} (@champion) was trained.")
    report = drift.drift_report(reference, arrived)
    mlflow.log_metrics({k: v for k, v in report.metrics().items() if v == v})  # NaN: no ratings
    html = report.to_html(thresholds)
    mlflow.log_text(html, "drift/report.html")
    alerts = report.alerts(thresholds)
    mlflow.set_tag("drift_alerts", "; ".join(alerts) or "none")
    log_metadata(metadata={"drift": report.metrics(), "drift_alerts": alerts, "new_ratings": len(arrived)})
    print(report.summary(thresholds))
    return HTMLString(html)


def _note(message: str) -> HTMLString:
    print(message)
    return HTMLString(f"<html><body><p>{message}</p></body></html>")
