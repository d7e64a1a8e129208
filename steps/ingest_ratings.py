from typing import Annotated, Tuple

import pandas as pd
from zenml import log_metadata, step

from movielens_pipeline import sources


# Not cached: a source file may change under the same parameters; the steps after it are
# cached on the content of what it reads.
@step(enable_cache=False)
def ingest_ratings(
    source: dict | None = None,
) -> Tuple[
    Annotated[pd.DataFrame, "interactions"],
    Annotated[pd.DataFrame, "items"],
    Annotated[pd.DataFrame, "item_attributes"],
]:
    """Read ratings, item titles and item attributes from the configured source."""
    source = source or {"kind": "embedded"}
    raw = sources.load_source(source)
    log_metadata(
        metadata={
            "source": {k: str(v) for k, v in source.items()},
            "interactions": len(raw.interactions),
            "users": int(raw.interactions["user_id"].nunique()),
            "items": len(raw.items),
            "attribute_types": sorted(raw.item_attributes["attribute_type"].unique().tolist()),
        }
    )
    return raw.interactions, raw.items, raw.item_attributes
