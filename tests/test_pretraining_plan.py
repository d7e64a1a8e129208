"""``pretrain: auto``: pretraining keeps its cost only where validation shows it pays."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from movielens_pipeline.serving.promotion import PromotionRule, pretraining_verdict
from movielens_pipeline.serving.records import PretrainingVerdict
from movielens_pipeline.training.pretraining_plan import plan_pretraining

MODELS = ["s3rec", "sasrec_no_pretraining", "lrml"]
TODAY = date(2026, 12, 3)


def _ranks(valid_pretrained, valid_without, test_pretrained, test_without) -> pd.DataFrame:
    """A per-user rank table like evaluate's, for the two S3Rec variants on both splits."""
    frames = []
    for model, split, ranks in (("s3rec", "valid", valid_pretrained), ("sasrec_no_pretraining", "valid", valid_without),
                                ("s3rec", "test", test_pretrained), ("sasrec_no_pretraining", "test", test_without)):  # fmt: skip
        frames.append(pd.DataFrame({"user_idx": np.arange(1, len(ranks) + 1), "model": model, "split": split,
                                    "protocol": "full", "rank": ranks}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _verdict(pays: bool, decided_on: str = "2026-12-01") -> PretrainingVerdict:
    return PretrainingVerdict(model="s3rec", without_pretraining="sasrec_no_pretraining", pays=pays, metric="ndcg_at_10",
                              gain=0.01 if pays else 0.001, confidence=0.95, ci_low=0.004 if pays else -0.004,
                              ci_high=0.016 if pays else 0.006, users=900, decided_on=decided_on)  # fmt: skip


def test_pretraining_pays_only_with_a_validation_gain_beyond_noise():
    rng = np.random.default_rng(0)
    users = 900
    weaker = rng.integers(0, 60, users)
    stronger = np.maximum(weaker - rng.integers(0, 12, users), 0)  # ranks the held-out item higher for most users
    rule = PromotionRule()
    # Decided on validation alone: test says the opposite here and is not looked at.
    verdict = pretraining_verdict(_ranks(stronger, weaker, weaker, stronger), "s3rec", "sasrec_no_pretraining",
                                  rule, "2026-12-03")  # fmt: skip
    assert verdict.pays and verdict.gain > 0 and verdict.ci_low > 0 and verdict.users == users
    reshuffled = rng.permutation(weaker)  # the same figures, no pairing: a level comparison within noise
    tie = pretraining_verdict(_ranks(reshuffled, weaker, stronger, weaker), "s3rec", "sasrec_no_pretraining",
                              rule, "2026-12-03")  # fmt: skip
    assert not tie.pays and tie.ci_low <= 0 < tie.ci_high
    assert "does not pay" in tie.summary() and "900 users" in tie.summary()


def test_auto_trains_both_until_a_verdict_is_recorded_then_only_the_one_it_favours():
    first = plan_pretraining(MODELS, "auto", {}, TODAY, 30)
    assert first.models == tuple(MODELS) and first.pretrain and first.records_verdict
    assert "no pretraining verdict recorded yet" in first.explanation

    pays = plan_pretraining(MODELS, "auto", {"s3rec": _verdict(True)}, TODAY, 30)
    assert pays.models == ("s3rec", "lrml") and pays.pretrain and not pays.records_verdict
    assert "sasrec_no_pretraining is skipped" in pays.explanation

    does_not = plan_pretraining(MODELS, "auto", {"s3rec": _verdict(False)}, TODAY, 30)
    assert does_not.models == ("sasrec_no_pretraining", "lrml") and not does_not.records_verdict
    assert "pretraining is skipped" in does_not.explanation
    # A list without the twin: the verdict still stands for s3rec.
    alone = plan_pretraining(["s3rec", "lrml"], "auto", {"s3rec": _verdict(False)}, TODAY, 30)
    assert alone.models == ("sasrec_no_pretraining", "lrml")


def test_auto_measures_again_when_the_verdict_is_old_or_cannot_be_read():
    old = plan_pretraining(MODELS, "auto", {"s3rec": _verdict(False, "2026-10-01")}, TODAY, 30)
    assert old.models == tuple(MODELS) and old.records_verdict and "older than 30 days" in old.explanation
    unreadable = plan_pretraining(MODELS, "auto", {}, TODAY, 30, unreadable="ConnectionError: refused")
    assert unreadable.models == tuple(MODELS) and "could not be read (ConnectionError: refused)" in unreadable.explanation
    # Nothing to measure with: s3rec pretrains, and no verdict is recorded.
    unmeasured = plan_pretraining(["s3rec", "lrml"], "auto", {}, TODAY, 30)
    assert unmeasured.models == ("s3rec", "lrml") and unmeasured.pretrain and not unmeasured.records_verdict


def test_true_and_false_train_the_models_as_listed_whatever_the_verdict():
    for setting in (True, False):
        plan = plan_pretraining(MODELS, setting, {"s3rec": _verdict(False)}, TODAY, 30)
        assert plan.models == tuple(MODELS) and plan.pretrain is setting
        assert plan.records_verdict is setting  # without pretraining the two are the same training
    with pytest.raises(ValueError, match="pretrain must be true, false or auto, got 'sometimes'"):
        plan_pretraining(MODELS, "sometimes", {}, TODAY, 30)
    with pytest.raises(ValueError, match="unknown model 'sasrec'"):
        plan_pretraining(["sasrec"], "auto", {}, TODAY, 30)


def test_a_run_that_trains_both_records_the_verdict_and_an_auto_run_follows_it(smoke_run, mlflow_client, tmp_path):
    """The smoke run (pretrain: true, both variants) records the verdict on the registered model;
    a run with pretrain: auto then trains only the variant it favours (from the cache here) and
    reports why, in the run's registration record and on register's MLflow run."""
    import yaml
    from zenml.client import Client

    from conftest import REPO_ROOT
    from movielens_pipeline.serving.registry import pretraining_verdicts
    from pipelines.training import training_pipeline

    decision = smoke_run.run.steps["register"].outputs["registration"][0].load()
    recorded = pretraining_verdicts("movielens-smoke")["s3rec"]
    # Other tests may rerun the smoke configuration from the cache: it measures the same verdict and
    # records it again under its own run id.
    assert recorded.model_copy(update={"zenml_run_id": str(smoke_run.run.id)}) == decision.pretraining_verdict
    measured_by = Client().get_pipeline_run(recorded.zenml_run_id)
    assert measured_by.steps["register"].outputs["registration"][0].load().pretraining_verdict == recorded
    assert decision.pretraining_plan == "pretrain: true" and "Recorded for pretrain: auto" in decision.summary()

    config = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    config.pop("enable_cache")
    config["parameters"]["pretrain"] = "auto"
    config_path = tmp_path / "auto.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run = Client().get_pipeline_run(training_pipeline.with_options(config_path=str(config_path))().id)
    kept, skipped = ("s3rec_finetune", "sasrec_finetune") if recorded.pays else ("sasrec_finetune", "s3rec_finetune")
    assert kept in run.steps and skipped not in run.steps
    assert ("s3rec_pretrain" in run.steps) is recorded.pays
    auto = run.steps["register"].outputs["registration"][0].load()
    assert auto.pretraining_plan.startswith("pretrain: auto: " + recorded.summary())
    assert auto.pretraining_verdict is None  # one variant alone measures nothing
    runs = mlflow_client.search_runs(
        [mlflow_client.get_experiment_by_name("movielens-smoke").experiment_id],
        filter_string=f"tags.zenml_run_id = '{run.id}'",
    )  # fmt: skip
    assert [r.data.tags["pretraining_plan"] for r in runs if "pretraining_plan" in r.data.tags] == [auto.pretraining_plan]


def test_a_verdict_that_cannot_be_read_makes_the_run_measure_again(zenml_stack, mlflow_client):
    from movielens_pipeline.integrations.tracking import planned_pretraining

    mlflow_client.create_registered_model("verdict-garbled")
    mlflow_client.set_registered_model_tag("verdict-garbled", "pretraining_verdict.s3rec", "{not json")
    plan = planned_pretraining("verdict-garbled", MODELS, "auto", 30)
    assert plan.models == tuple(MODELS) and plan.records_verdict
    assert "could not be read (ValidationError" in plan.explanation
    fresh = planned_pretraining("verdict-never-recorded", MODELS, "auto", 30)
    assert fresh.models == tuple(MODELS) and "no pretraining verdict recorded yet" in fresh.explanation
