"""Look-ups through ZenML's lineage."""

from __future__ import annotations

import pandas as pd


def training_interactions(zenml_run_id: str) -> pd.DataFrame:
    """The interactions a pipeline run trained on (its ingest_ratings output)."""
    from zenml.client import Client

    run = Client().get_pipeline_run(zenml_run_id)
    return run.steps["ingest_ratings"].outputs["interactions"][0].load()


def pipeline_run_is_active(zenml_run_id: str) -> bool:
    """Whether that ZenML run is still going (unknown ids count as ended)."""
    from zenml.client import Client
    from zenml.enums import ExecutionStatus

    try:
        run = Client().get_pipeline_run(zenml_run_id)
    except (KeyError, ValueError):
        return False
    return run.status in (ExecutionStatus.RUNNING, ExecutionStatus.INITIALIZING)

