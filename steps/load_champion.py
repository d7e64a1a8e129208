from typing import Annotated

from zenml import step

from movielens_pipeline.integrations.lineage import pipeline_run_is_active
from movielens_pipeline.integrations.materializers import RecordMaterializer
from movielens_pipeline.integrations.preflight import check_services
from movielens_pipeline.integrations.tracking import experiment_tracker_name
from movielens_pipeline.serving import registry
from movielens_pipeline.serving.records import ChampionRecord


# Not cached: the registry changes between runs while this step's inputs do not. The experiment
# tracker points MLflow at the stack's store (the registry lives there).
@step(experiment_tracker=experiment_tracker_name(), enable_cache=False, output_materializers=RecordMaterializer)
def load_champion(registered_model_name: str) -> Annotated[ChampionRecord, "champion"]:
    """The registry's current champion (version, architecture, lineage), checked to load, or a
    record that there is none. drift_report and register take it as an input, so each run's
    lineage shows what it compared against; a champion that cannot be loaded stops the run."""
    check_services()
    discarded = registry.discard_unfinished(registered_model_name, pipeline_run_is_active)
    if discarded:
        print(f"Registry: removed versions {discarded} of {registered_model_name} that a failed run left unfinished")
    champion = registry.current_champion(registered_model_name)
    if not champion.exists:
        print(f"Registry: {registered_model_name} has no champion yet")
    else:
        print(f"Registry: comparing against {registered_model_name} v{champion.version} "
              f"({champion.architecture}) @champion")
    return champion
