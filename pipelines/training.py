"""The training DAG.

  load_champion (the registry's @champion, checked to load) ──→ drift_report, register
  ingest_ratings → validate_data ─┬→ drift_report (ratings that arrived since the champion)
                                  └→ build_dataset ─┬→ s3rec_pretrain → s3rec_finetune ──┐
                                                    ├→ sasrec_finetune (no pretraining) ──┼→ evaluate → register
                                                    └→ lrml_train ────────────────────────┘

One training branch per name in ``models`` (``movielens_pipeline.families`` says which steps
train each); evaluate and register take them all as one list.
"""

from zenml import pipeline
from zenml.utils import source_utils

from movielens_pipeline.families import model_spec
from steps.build_dataset import build_dataset
from steps.drift_report import drift_report
from steps.evaluate import evaluate
from steps.ingest_ratings import ingest_ratings
from steps.load_champion import load_champion
from steps.register import register
from steps.validate_data import validate_data

DEFAULT_MODELS = ("s3rec", "sasrec_no_pretraining", "lrml")


@pipeline
def training_pipeline(
    registered_model_name: str = "movielens-recommender",
    models: list[str] = list(DEFAULT_MODELS),
    pretrain: bool = True,
    warm_start: bool = False,
):
    """Train, evaluate and register the listed models on the configured data.

    ``models``: names of ``movielens_pipeline.families`` entries (``s3rec``, ``sasrec_no_pretraining``
    (the same finetuning without pretraining, so every run shows what pretraining buys), ``lrml``,
    ``bpr``). ``pretrain=False`` skips S3Rec's pretraining: finetuning then starts from scratch
    or, with ``warm_start``, from the registered model's weights (every model continues from the
    registry's model of its own name, the champion first; load_champion says which).
    """
    champion = load_champion(registered_model_name)
    interactions, items, item_attributes, input_fingerprint = ingest_ratings()
    validate_data(interactions, items, item_attributes)
    drift_report(interactions, champion, after="validate_data")
    sequence_dataset, _, _ = build_dataset(interactions, items, item_attributes, after="validate_data")

    warm_start_champion = champion if warm_start else None
    pretrained = {}  # one pretraining per pretraining step, shared by the models that start from it
    trained_models = []
    for name in models:
        spec = model_spec(name)
        inputs = {}
        if spec.pretrain_step is not None and pretrain:
            if spec.pretrain_step not in pretrained:
                pretrained[spec.pretrain_step] = source_utils.load(spec.pretrain_step)(sequence_dataset)
            inputs["pretrained"] = pretrained[spec.pretrain_step]
        train = source_utils.load(spec.train_step)
        trained_models.append(train(sequence_dataset, **inputs, **spec.parameters,
                                    warm_start_champion=warm_start_champion, id=spec.step_id))  # fmt: skip

    metrics, per_user, _, _ = evaluate(sequence_dataset, trained_models)
    register(
        sequence_dataset, trained_models, metrics, per_user, input_fingerprint, registered_model_name, champion,
    )  # fmt: skip
