from dataclasses import replace
from typing import Annotated, Optional, Tuple

import pandas as pd
from zenml import log_metadata, save_artifact, step
from zenml.types import HTMLString

from movielens_pipeline import drops, sources
from movielens_pipeline.materializers import HashedDataFrameMaterializer


# Not cached: a source file or the drops folder may change under the same parameters. Its tables
# carry a content hash, so the steps after it stay cached while the data is unchanged.
@step(
    enable_cache=False,
    output_materializers={name: HashedDataFrameMaterializer for name in ("interactions", "items", "item_attributes")},
)
def ingest_ratings(
    source: Optional[dict] = None,
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
    source = source or {"kind": "embedded"}
    raw = sources.load_source(source)
    if until_timestamp is not None:
        raw = replace(raw, interactions=raw.interactions[raw.interactions["timestamp"] <= until_timestamp])
    outcomes = []
    if drops_dir:
        raw, outcomes = drops.apply_drops(raw, drops_dir)
        for outcome in outcomes:
            if not outcome.accepted:
                print(f"Rejected rating drop {outcome.name}: {outcome.reason}")
                save_artifact(HTMLString(outcome.report_html or outcome.reason), "rejected_drop_report")
    fingerprint = drops.input_fingerprint(source, {"until_timestamp": until_timestamp}, outcomes)
    log_metadata(
        metadata={
            "source": {k: str(v) for k, v in source.items()},
            "input_fingerprint": fingerprint,
            "drops": {o.name: {"sha256": o.sha256, "rows": o.rows, "accepted": o.accepted} for o in outcomes},
            "interactions": len(raw.interactions),
            "users": int(raw.interactions["user_id"].nunique()),
            "items": len(raw.items),
            "attribute_types": sorted(raw.item_attributes["attribute_type"].unique().tolist()),
        }
    )
    return raw.interactions, raw.items, raw.item_attributes, fingerprint
