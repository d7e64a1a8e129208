from typing import Annotated, Tuple

import pandas as pd
from zenml import log_metadata, step
from zenml.config.cache_policy import CachePolicy

from movielens_pipeline.data import build, dataset
from movielens_pipeline.data.build import BuildConfig
from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.integrations.materializers import SequenceDatasetMaterializer


@step(
    output_materializers={"sequence_dataset": SequenceDatasetMaterializer},
    cache_policy=CachePolicy(source_dependencies=[build, dataset]),
)
def build_dataset(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    item_attributes: pd.DataFrame,
    config: BuildConfig = BuildConfig(),
) -> Tuple[
    Annotated[SequenceDataset, "sequence_dataset"],
    Annotated[pd.DataFrame, "user_id_map"],
    Annotated[pd.DataFrame, "item_id_map"],
]:
    """k-core filter, map ids to contiguous indices, order each user's items by time."""
    data = build.build_sequence_dataset(interactions, items, item_attributes, config)
    log_metadata(metadata={"dataset_stats": data.stats})
    return data, data.user_map, data.item_map
