from typing import Annotated, Optional

from zenml import step

from movielens_pipeline.integrations.materializers import RecordMaterializer
from movielens_pipeline.integrations.tracking import experiment_tracker_name
from movielens_pipeline.serving import registry
from movielens_pipeline.serving.records import ServedModelRecord


# Not cached: which version is @champion changes between runs while the parameters do not.
@step(experiment_tracker=experiment_tracker_name(), enable_cache=False, output_materializers=RecordMaterializer)
def load_served_model(registered_model_name: str, version: Optional[str] = None) -> Annotated[ServedModelRecord, "served_model"]:
    """The registered version to score with (``version``, or the current @champion), pinned for
    the whole job."""
    served = registry.served_model(registered_model_name, version)
    print(f"Batch recommendations from {served.registered_model} v{served.version} ({served.architecture})"
          + (" @champion" if served.champion else ""))
    return served
