import tempfile
from typing import Annotated, Optional

import mlflow
from zenml import step

from movielens_pipeline.integrations.materializers import RecommendationTableMaterializer
from movielens_pipeline.integrations.tracking import experiment_tracker_name
from movielens_pipeline.serving import batch
from movielens_pipeline.serving.records import ServedModelRecord


@step(experiment_tracker=experiment_tracker_name(), enable_cache=False,
      output_materializers=RecommendationTableMaterializer)  # fmt: skip
def batch_recommend(
    served_model: ServedModelRecord,
    k: int = 10,
    users_file: Optional[str] = None,
    rows_per_part: int = batch.MAX_ROWS,
) -> Annotated[batch.RecommendationTable, "recommendations"]:
    """Every known user's top-``k`` (or the users listed in ``users_file``, CSV or Parquet with a
    user_id column), scored by the registered model through its served code, in Parquet parts of
    ``rows_per_part`` users. Unknown users get popularity's items, flagged in ``fallback``."""
    model = mlflow.pyfunc.load_model(served_model.model_uri)
    users = batch.read_user_list(users_file) if users_file else batch.known_user_ids(model)
    folder = tempfile.mkdtemp(prefix="recommendations-")
    summary = batch.write_recommendations(model, users, k, folder, rows_per_part)
    mlflow.log_params({"registered_model": served_model.registered_model, "model_version": served_model.version,
                       "k": k, "users_file": users_file or "every known user"})  # fmt: skip
    mlflow.log_metrics({"rows": summary.rows, "users": summary.users, "fallback_users": summary.fallback_users})
    print(f"Wrote {summary.rows:,} recommendations for {summary.users:,} users "
          f"({summary.fallback_users:,} answered by popularity) in {summary.parts} Parquet parts")
    return batch.RecommendationTable(folder, served_model.registered_model, served_model.version, k,
                                     served_model.data_fingerprint or "", summary)  # fmt: skip
