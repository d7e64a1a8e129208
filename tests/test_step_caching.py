"""Steps that train or build must re-run when the library or model code they use changes.

ZenML hashes only a step function's own source unless its cache policy names more.
"""

import pytest


@pytest.mark.parametrize(
    "step_module, step_name, required",
    [
        ("steps.build_dataset", "build_dataset", {"movielens_pipeline.build", "movielens_pipeline.dataset"}),
        ("steps.s3rec_pretrain", "s3rec_pretrain", {"models.s3rec", "movielens_pipeline.s3rec_training", "movielens_pipeline.training"}),
        ("steps.s3rec_finetune", "s3rec_finetune", {"models.s3rec", "movielens_pipeline.s3rec_training", "movielens_pipeline.training"}),
        ("steps.lrml_train", "lrml_train", {"models.lrml", "movielens_pipeline.lrml_training", "movielens_pipeline.training"}),
    ],
)
def test_cache_key_covers_the_code_a_step_runs(zenml_stack, step_module, step_name, required):
    import importlib

    step = getattr(importlib.import_module(step_module), step_name)
    dependencies = {source.import_path for source in step.configuration.cache_policy.source_dependencies}
    assert required <= dependencies
