"""The training DAG.

    ingest_ratings → validate_data → build_dataset ─┬→ s3rec_pretrain → s3rec_finetune ─┬→ evaluate → register
                                                    └→ lrml_train ─────────────────────┘
"""

from zenml import pipeline

from steps.build_dataset import build_dataset
from steps.ingest_ratings import ingest_ratings
from steps.validate_data import validate_data


@pipeline
def training_pipeline():
    interactions, items, item_attributes = ingest_ratings()
    validate_data(interactions, items, item_attributes)
    sequence_dataset, _, _ = build_dataset(
        interactions, items, item_attributes, after="validate_data"
    )
    return sequence_dataset
