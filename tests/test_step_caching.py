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


@pytest.mark.parametrize(
    "step_module, step_name",
    [("steps.validate_data", "validate_data"), ("steps.s3rec_finetune", "s3rec_finetune"),
     ("steps.lrml_train", "lrml_train"), ("steps.evaluate", "evaluate")],
)  # fmt: skip
def test_cached_steps_that_log_to_mlflow_key_on_the_tracking_store(zenml_stack, step_module, step_name):
    import importlib

    step = getattr(importlib.import_module(step_module), step_name)
    assert step.configuration.cache_policy.cache_func.import_path == (
        "movielens_pipeline.integrations.tracking.tracking_store_identity"
    )


def test_tracking_store_identity_tells_stores_apart_even_at_the_same_path(tmp_path):
    """A step cached against one store must not be reused against another, whose runs differ."""
    import shutil
    import subprocess
    import sys

    from movielens_pipeline.integrations.tracking import store_identity

    first, second = (f"sqlite:///{tmp_path / name}/mlflow.db" for name in ("a", "b"))
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    before = store_identity(first)
    assert before == store_identity(first)  # the same store keeps its identity
    assert before != store_identity(second)
    shutil.rmtree(tmp_path / "a")  # the store deleted and made again at the same path, by a new
    (tmp_path / "a").mkdir()  # process (this one keeps MLflow's handle on the deleted file)
    again = subprocess.run([sys.executable, "-c", "import sys; from movielens_pipeline.integrations.tracking import "
                            "store_identity; print(store_identity(sys.argv[1]))", first],
                           capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]  # fmt: skip
    assert again.startswith(first) and again != before
    unreachable = "no-such-scheme://store"  # a store MLflow cannot open: never the same key twice
    assert store_identity(unreachable) != store_identity(unreachable)
