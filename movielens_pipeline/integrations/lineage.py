"""Look-ups across the registry and ZenML's lineage."""

from __future__ import annotations

from typing import Optional

import mlflow
import pandas as pd


def champion_training_interactions(registered_model_name: str) -> Optional[pd.DataFrame]:
    """The interactions the current champion was trained on, through the run that registered it;
    None when the registry has no champion."""
    from zenml.client import Client

    client = mlflow.MlflowClient()
    try:
        champion = client.get_model_version_by_alias(registered_model_name, "champion")
    except mlflow.exceptions.MlflowException:
        return None
    run = Client().get_pipeline_run(champion.tags["zenml_run_id"])
    return run.steps["ingest_ratings"].outputs["interactions"][0].load()
