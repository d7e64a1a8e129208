from typing import Annotated, Tuple

import pandas as pd
from zenml import log_metadata, step
from zenml.config.cache_policy import CachePolicy

from movielens_pipeline import build, dataset
from movielens_pipeline.dataset import SequenceDataset
from movielens_pipeline.materializers import SequenceDatasetMaterializer


@step(
    output_materializers={"sequence_dataset": SequenceDatasetMaterializer},
    cache_policy=CachePolicy(source_dependencies=[build, dataset]),
)
def build_dataset(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    item_attributes: pd.DataFrame,
    min_rating: float | None = None,
    user_core: int = 5,
    item_core: int = 5,
    attribute_types: list[str] | None = None,
    min_attribute_items: int = 1,
) -> Tuple[
    Annotated[SequenceDataset, "sequence_dataset"],
    Annotated[pd.DataFrame, "user_id_map"],
    Annotated[pd.DataFrame, "item_id_map"],
]:
    """k-core filter, map ids to contiguous indices, order each user's items by time."""
    config = build.BuildConfig(
        min_rating=min_rating,
        user_core=user_core,
        item_core=item_core,
        attribute_types=attribute_types,
        min_attribute_items=min_attribute_items,
    )
    data = build.build_sequence_dataset(interactions, items, item_attributes, config)
    log_metadata(metadata={"dataset_stats": data.stats})
    return data, data.user_map, data.item_map
