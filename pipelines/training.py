"""The training DAG.

  load_champion (the registry's @champion, checked to load) ──→ drift_report, register
  ingest_ratings → validate_data ─┬→ drift_report (ratings that arrived since the champion)
                                  └→ build_dataset ─┬→ s3rec_pretrain → s3rec_finetune ──┐
                                                    ├→ sasrec_finetune (no pretraining) ──┼→ evaluate → register
                                                    └→ lrml_train ────────────────────────┘
"""

from zenml import pipeline

from steps.build_dataset import build_dataset
from steps.drift_report import drift_report
from steps.evaluate import evaluate
from steps.ingest_ratings import ingest_ratings
from steps.load_champion import load_champion
from steps.lrml_train import lrml_train
from steps.register import register
from steps.s3rec_finetune import s3rec_finetune
from steps.s3rec_pretrain import s3rec_pretrain
from steps.validate_data import validate_data


@pipeline
def training_pipeline(
    registered_model_name: str = "movielens-recommender",
    pretrain: bool = True,
    compare_without_pretraining: bool = True,
    warm_start: bool = False,
):
    """Train, evaluate and register every model on the configured data.

    ``pretrain=False`` skips S3Rec's pretraining: finetuning then starts from scratch (the
    SASRec-style ablation) or, with ``warm_start``, from the registered model's weights (S3Rec
    and LRML both continue from the champion's architecture-mates; load_champion says which).
    ``compare_without_pretraining`` also trains that ablation beside the pretrained model, so
    every run shows what pretraining buys.
    """
    champion = load_champion(registered_model_name)
    interactions, items, item_attributes, input_fingerprint = ingest_ratings()
    validate_data(interactions, items, item_attributes)
    drift_report(interactions, champion, after="validate_data")
    sequence_dataset, _, _ = build_dataset(interactions, items, item_attributes, after="validate_data")

    pretrained = s3rec_pretrain(sequence_dataset) if pretrain else None
    warm_start_champion = champion if warm_start else None
    s3rec_model = s3rec_finetune(sequence_dataset, pretrained, warm_start_champion=warm_start_champion)
    sasrec_model = None
    if pretrain and compare_without_pretraining:
        sasrec_model = s3rec_finetune(
            sequence_dataset, None, model_name="sasrec_no_pretraining", id="sasrec_finetune"
        )
    lrml_model = lrml_train(sequence_dataset, warm_start_champion=warm_start_champion)

    metrics, per_user, _, _ = evaluate(sequence_dataset, s3rec_model, lrml_model, sasrec_model)
    register(
        sequence_dataset, s3rec_model, lrml_model, metrics, per_user, input_fingerprint,
        registered_model_name, champion, sasrec_model,
    )  # fmt: skip
