from typing import Optional

from zenml import step

from movielens_pipeline.integrations.tracking import beside_tracking_store, experiment_tracker_name
from movielens_pipeline.serving import batch, registry
from movielens_pipeline.serving.records import ServedModelRecord


@step(experiment_tracker=experiment_tracker_name(), enable_cache=False)
def publish_recommendations(
    recommendations: batch.RecommendationTable,
    served_model: ServedModelRecord,
    table: str = "recommendations",
    database_url: Optional[str] = None,
) -> None:
    """Replace ``table`` in the database (SQLAlchemy URL; default: SQLite beside the MLflow store)
    with the batch, in one transaction. Only the model that is @champion now may replace a table
    that exists: anything else is refused, and the published table stays as it was."""
    url = database_url or beside_tracking_store("recommendations.db")
    is_champion = registry.current_champion(served_model.registered_model).version == served_model.version
    rows = batch.publish(recommendations.folder, url, table, served_model.registered_model, served_model.version,
                         is_champion, recommendations.data_fingerprint, recommendations.k)  # fmt: skip
    print(f"Published {rows:,} rows as table {table} of {batch.shown_url(url)}")
