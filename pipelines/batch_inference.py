"""Batch recommendations: the registry's @champion (or a named version) scores every known user
(or a list of users) through its served code, the top-k are written as Parquet parts, and the
table is published into a database when the model is still the champion.

  load_served_model (pinned version) → batch_recommend (Parquet parts) → publish_recommendations
"""

from typing import Optional

from zenml import pipeline

from steps.batch_recommend import batch_recommend
from steps.load_served_model import load_served_model
from steps.publish_recommendations import publish_recommendations


@pipeline
def batch_inference_pipeline(
    registered_model_name: str = "movielens-recommender",
    version: Optional[str] = None,
    publish: bool = True,
):
    """``version``: score with this registered version instead of @champion (it is written as an
    artifact, but only the champion may replace a published table)."""
    served_model = load_served_model(registered_model_name, version)
    recommendations = batch_recommend(served_model)
    if publish:
        publish_recommendations(recommendations, served_model)
