"""Steps that train or build must re-run when the library or model code they use changes.

ZenML hashes only a step function's own source unless its cache policy names more.
"""

import pytest

LOOP = {"movielens_pipeline.training.loop", "movielens_pipeline.training.checkpoints"}


@pytest.mark.parametrize(
    "step_module, step_name, required",
    [
        ("steps.build_dataset", "build_dataset", {"movielens_pipeline.data.build", "movielens_pipeline.data.dataset"}),
        ("steps.validate_data", "validate_data", {"movielens_pipeline.data.contracts"}),
        ("steps.s3rec_pretrain", "s3rec_pretrain",
         LOOP | {"models.s3rec", "movielens_pipeline.training.s3rec", "movielens_pipeline.training.sequence_batches"}),
        ("steps.s3rec_finetune", "s3rec_finetune",
         LOOP | {"models.s3rec", "movielens_pipeline.training.s3rec", "movielens_pipeline.evaluation.metrics"}),
        ("steps.lrml_train", "lrml_train", LOOP | {"models.lrml", "movielens_pipeline.training.pairwise"}),
        ("steps.evaluate", "evaluate", {"movielens_pipeline.evaluation.protocols", "movielens_pipeline.evaluation.scorers"}),
    ],
)  # fmt: skip
def test_cache_key_covers_the_code_a_step_runs(zenml_stack, step_module, step_name, required):
    import importlib

    step = getattr(importlib.import_module(step_module), step_name)
    dependencies = {source.import_path for source in step.configuration.cache_policy.source_dependencies}
    assert required <= dependencies
