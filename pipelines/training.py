"""The training DAG.

  load_champion (the registry's @champion, checked to load) ──→ drift_report, register
  ingest_ratings → validate_data ─┬→ drift_report (ratings that arrived since the champion)
                                  └→ build_dataset ─┬→ s3rec_pretrain → s3rec_finetune ──┐
                                                    ├→ sasrec_finetune (no pretraining) ──┼→ evaluate → register
                                                    └→ lrml_train ────────────────────────┘

One training branch per name in ``models`` (``movielens_pipeline.families`` says which steps
train each); evaluate and register take them all as one list. A model listed in ``pod_training``
trains on several pods of the Kubernetes step operator instead: ``<step>_pods`` (a command step)
then ``<step>`` (collect_pod_training), e.g. build_dataset → lrml_train_pods → lrml_train.
"""

from zenml import pipeline
from zenml.utils import source_utils

from movielens_pipeline.families import model_spec
from movielens_pipeline.integrations.pod_training import checked_parameters, pod_trainings
from movielens_pipeline.integrations.tracking import planned_pretraining
from movielens_pipeline.training.pretraining_plan import PretrainSetting
from steps.build_dataset import build_dataset
from steps.collect_pod_training import collect_pod_training
from steps.drift_report import drift_report
from steps.evaluate import evaluate
from steps.ingest_ratings import ingest_ratings
from steps.load_champion import load_champion
from steps.register import register
from steps.train_on_pods import train_on_pods
from steps.validate_data import validate_data

DEFAULT_MODELS = ("s3rec", "sasrec_no_pretraining", "lrml")


@pipeline
def training_pipeline(
    registered_model_name: str = "movielens-recommender",
    models: list[str] = list(DEFAULT_MODELS),
    pretrain: PretrainSetting = "auto",
    pretraining_verdict_days: int = 30,
    warm_start: bool = False,
    pod_training: dict[str, dict] = {},
):
    """Train, evaluate and register the listed models on the configured data.

    ``models``: names of ``movielens_pipeline.families`` entries (``s3rec``, ``sasrec_no_pretraining``
    (the same finetuning without pretraining: what pretraining buys), ``lrml``, ``bpr``).
    ``pretrain``: ``auto`` trains s3rec and sasrec_no_pretraining side by side until the registry
    holds a verdict on whether pretraining pays on validation, then only the one it favours, and
    measures again once the verdict is older than ``pretraining_verdict_days``
    (``training.pretraining_plan``); ``true`` trains the models as listed, pretrained; ``false``
    skips S3Rec's pretraining: finetuning then starts from scratch or, with ``warm_start``, from
    the registered model's weights (every model continues from the registry's model of its own
    name, the champion first; load_champion says which).
    ``pod_training``: model name -> ``{pods, processes_per_pod, parameters}``
    (``integrations.pod_training.PodTraining``), for models trained on several Kubernetes pods.
    """
    plan = planned_pretraining(registered_model_name, models, pretrain, pretraining_verdict_days)
    print(f"Pretraining: {plan.explanation}")
    models = list(plan.models)
    on_pods = pod_trainings(pod_training, models)
    if on_pods and warm_start:
        raise ValueError("pod_training starts from fresh weights: it cannot be combined with warm_start")
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
        if spec.pretrain_step is not None and plan.pretrain:
            if spec.pretrain_step not in pretrained:
                pretrained[spec.pretrain_step] = source_utils.load(spec.pretrain_step)(sequence_dataset)
            inputs["pretrained"] = pretrained[spec.pretrain_step]
        if name in on_pods:
            trained_models.append(_trained_on_pods(name, spec, sequence_dataset, inputs.get("pretrained"), on_pods[name]))
            continue
        train = source_utils.load(spec.train_step)
        trained_models.append(train(sequence_dataset, **inputs, **spec.parameters,
                                    warm_start_champion=warm_start_champion, id=spec.step_id))  # fmt: skip

    metrics, per_user, _, _ = evaluate(sequence_dataset, trained_models)
    register(
        sequence_dataset, trained_models, metrics, per_user, input_fingerprint, registered_model_name, champion,
        pretraining_plan=plan.explanation, records_pretraining_verdict=plan.records_verdict and not warm_start,
    )  # fmt: skip


def _trained_on_pods(name: str, spec, sequence_dataset, pretrained, training):
    step_id = spec.step_id or spec.train_step.rsplit(".", 1)[1]
    parameters = checked_parameters(source_utils.load(spec.train_step), training.parameters)
    pods = train_on_pods(name, step_id, _artifact_name(sequence_dataset), _artifact_name(pretrained), training)
    pods(after=[artifact.invocation_id for artifact in (sequence_dataset, pretrained) if artifact is not None])
    collect = collect_pod_training.with_options(enable_cache=False)
    return collect(sequence_dataset, model_name=name, pods=training.pods, processes_per_pod=training.processes_per_pod,
                   parameters=parameters, id=step_id, after=f"{step_id}_pods")  # fmt: skip


def _artifact_name(artifact) -> str | None:
    return f"{artifact.invocation_id}:{artifact.output_name}" if artifact is not None else None
