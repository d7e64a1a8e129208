from typing import Annotated, Optional, Tuple

import pandas as pd
from zenml import log_metadata, save_artifact, step
from zenml.types import HTMLString

from movielens_pipeline.data import drops
from movielens_pipeline.data.sources import EmbeddedSource, SourceSpec
from movielens_pipeline.integrations.materializers import HashedDataFrameMaterializer

TABLES = ("interactions", "items", "item_attributes")


# Not cached: a source file or the drops folder may change under the same parameters. Its tables
# carry a content hash, so the steps after it stay cached while the data is unchanged.
@step(enable_cache=False, output_materializers={name: HashedDataFrameMaterializer for name in TABLES})
def ingest_ratings(
    # kind set explicitly: ZenML stores a default with its unset fields left out, and the union
    # needs `kind` to tell the sources apart when a config does not name one.
    source: SourceSpec = EmbeddedSource(kind="embedded"),
    drops_dir: Optional[str] = None,
    until_timestamp: Optional[int] = None,
) -> Tuple[
    Annotated[pd.DataFrame, "interactions"],
    Annotated[pd.DataFrame, "items"],
    Annotated[pd.DataFrame, "item_attributes"],
    Annotated[str, "input_fingerprint"],
]:
    """Read ratings, titles and attributes from the source, plus every valid new rating drop.

    ``until_timestamp`` keeps only base interactions up to that moment (backtests, replays).
    """
    ingested = drops.ingest(source.load(), source.as_dict(), drops_dir, until_timestamp)
    for outcome in ingested.drops:
        if not outcome.accepted:
            print(f"Rejected rating drop {outcome.name}: {outcome.reason}")
            save_artifact(HTMLString(outcome.report_html or outcome.reason), "rejected_drop_report")
    log_metadata(metadata=ingested.summary())
    data = ingested.raw
    return data.interactions, data.items, data.item_attributes, ingested.input_fingerprint

