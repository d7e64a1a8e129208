"""Champion gating, re-evaluation of a registered model, and all-or-nothing registration."""

import numpy as np
import pytest

from conftest import REPO_ROOT
from movielens_pipeline.serving import promotion, registry
from movielens_pipeline.serving.records import ChampionRecord


def test_an_empty_registry_promotes_the_candidate():
    promote, reason, _ = promotion.promotion_decision(np.ones(50), None, promotion.PromotionRule())
    assert promote and "no champion" in reason


def test_a_clear_gain_is_promoted_and_noise_is_not():
    rng = np.random.default_rng(0)
    champion = rng.random(900)
    rule = promotion.PromotionRule()
    clearly_better = champion + 0.05 + rng.normal(0, 0.05, 900)
    assert promotion.promotion_decision(clearly_better, champion, rule)[0]
    noise = rng.normal(0, 0.3, 900)
    noisy_tie = champion + noise - noise.mean() + 0.005  # a small mean gain, far inside the noise
    promote, reason, stats = promotion.promotion_decision(noisy_tie, champion, rule)
    assert not promote and "noise" in reason
    assert stats["ci_low"] <= 0
    # Without the significance requirement a small positive gain over the margin is enough.
    lenient = promotion.PromotionRule(require_significance=False)
    assert promotion.promotion_decision(champion + 0.001, champion, lenient)[0]


def test_a_gain_below_the_margin_is_not_promoted():
    champion = np.zeros(100)
    rule = promotion.PromotionRule(min_improvement=0.05, require_significance=False)
    promote, reason, _ = promotion.promotion_decision(champion + 0.01, champion, rule)
    assert not promote and "margin" in reason


def test_the_champion_reevaluated_from_the_registry_matches_the_evaluate_step(smoke_run, mlflow_client):
    run = smoke_run.run
    dataset = run.steps["build_dataset"].outputs["sequence_dataset"][0].load()
    decision = run.steps["register"].outputs["registration"][0].load()
    per_user = run.steps["evaluate"].outputs["per_user_ranks"][0].load()
    champion = registry.RegisteredRecommender.download(f"models:/movielens-smoke/{decision.version}")
    reevaluated = registry.per_user_test_metric(champion.score_fn_for(dataset), dataset, "ndcg_at_10")
    recorded = promotion.per_user_from_table(per_user, decision.candidate, "ndcg_at_10")
    np.testing.assert_allclose(reevaluated, recorded, atol=1e-6)


def smoke_outputs(smoke_run):
    steps = smoke_run.run.steps
    trained = {
        model.summary["name"]: model
        for model in (steps[name].outputs[output][0].load() for name, output in
                      (("s3rec_finetune", "s3rec_model"), ("sasrec_finetune", "s3rec_model"), ("lrml_train", "lrml_model")))
    }  # fmt: skip
    return {
        "dataset": steps["build_dataset"].outputs["sequence_dataset"][0].load(),
        "decision": steps["register"].outputs["registration"][0].load(),
        "per_user": steps["evaluate"].outputs["per_user_ranks"][0].load(),
        "metrics": steps["evaluate"].outputs["evaluation_metrics"][0].load(),
        "trained": trained,
    }


def registry_state(client, name):
    versions = {v.version for v in client.search_model_versions(f"name='{name}'")}
    return versions, dict(client.get_registered_model(name).aliases)


def test_registering_the_same_weights_again_registers_nothing_and_moves_no_alias(smoke_run, mlflow_client):
    out = smoke_outputs(smoke_run)
    before = registry_state(mlflow_client, "movielens-smoke")
    champion = registry.current_champion("movielens-smoke")
    again = registry.register_run(
        "movielens-smoke", out["trained"], out["dataset"], out["metrics"], out["per_user"], {"origin": "test"},
        promotion.PromotionRule(), champion,
    )  # fmt: skip
    assert again.alias is None and again.versions == {}
    assert "unchanged" in again.reason and again.version == out["decision"].version
    assert registry_state(mlflow_client, "movielens-smoke") == before


def test_the_run_records_the_champion_it_compared_against(smoke_run, mlflow_client):
    champion = smoke_run.run.steps["load_champion"].outputs["champion"][0].load()
    decision = smoke_outputs(smoke_run)["decision"]
    # The shared smoke run is the first run on an empty registry.
    assert champion == ChampionRecord(registered_model="movielens-smoke") and not champion.exists
    assert decision.champion_before is None and decision.alias == "champion"


def test_the_candidate_is_the_best_model_on_validation_not_on_test():
    import pandas as pd

    table = pd.DataFrame({
        "model": ["a", "a", "b", "b"], "split": ["valid", "test", "valid", "test"],
        "ndcg_at_10": [0.30, 0.10, 0.20, 0.40],
    })  # fmt: skip
    assert promotion.choose_candidate(table, ["a", "b"], "ndcg_at_10") == "a"


def test_a_failed_registration_leaves_no_version_behind_and_the_aliases_as_they_were(smoke_run, mlflow_client):
    out = smoke_outputs(smoke_run)
    name = out["decision"].candidate
    before = registry_state(mlflow_client, "movielens-smoke")
    uri = f"models:/movielens-smoke/{out['decision'].version}"
    tags = {name: {"origin": "test"}, "broken": {}}
    with pytest.raises(Exception):  # the second model's source does not exist
        registry.register_and_promote("movielens-smoke", {name: uri, "broken": "runs:/0000/not-there"}, tags, name,
                                      "champion", "test")  # fmt: skip
    assert registry_state(mlflow_client, "movielens-smoke") == before
    with pytest.raises(Exception):  # every version registers, then the alias cannot be set
        registry.register_and_promote("movielens-smoke", {name: uri}, tags, name, "latest", "test")
    assert registry_state(mlflow_client, "movielens-smoke") == before


def test_a_champion_that_cannot_be_loaded_stops_registration(smoke_run, mlflow_client):
    """Fails closed: a broken champion is never taken for "no champion yet"."""
    import shutil
    from urllib.parse import urlparse

    import mlflow

    out = smoke_outputs(smoke_run)
    name = "movielens-broken-champion"
    with mlflow.start_run():
        uri = registry.log_pyfunc(out["trained"]["lrml"], out["dataset"], "lrml")
    version = mlflow.register_model(uri, name).version
    mlflow_client.set_registered_model_alias(name, "champion", version)
    assert registry.current_champion(name).version == str(version)  # it loads; now break it in the store
    stored = urlparse(mlflow.get_logged_model(uri.rsplit("/", 1)[-1]).artifact_location).path
    shutil.rmtree(f"{stored}/artifacts/model")
    with pytest.raises(registry.ChampionUnavailableError, match=f"{name} v{version} is @champion but cannot be loaded"):
        registry.current_champion(name)
    before = registry_state(mlflow_client, name)
    champion = ChampionRecord(registered_model=name, version=str(version))
    with pytest.raises(registry.ChampionUnavailableError, match="nothing was registered"):
        registry.register_run(name, {"lrml": out["trained"]["lrml"]}, out["dataset"], out["metrics"], out["per_user"],
                              {}, promotion.PromotionRule(), champion)  # fmt: skip
    assert registry_state(mlflow_client, name) == before


def test_a_candidate_whose_champion_moved_during_its_run_is_not_promoted(smoke_run, mlflow_client):
    """The run compared against "no champion" (as load_champion saw it), but another run promoted
    one meanwhile: promotion re-checks under the lock, and the candidate stays a challenger."""
    import dataclasses

    out = smoke_outputs(smoke_run)
    champion_now = str(mlflow_client.get_model_version_by_alias("movielens-smoke", "champion").version)
    lrml = out["trained"]["lrml"]
    changed = dataclasses.replace(lrml, state_dict={k: v + 1e-3 for k, v in lrml.state_dict.items()},
                                  summary=dict(lrml.summary))  # new weights: not registered yet
    stale = ChampionRecord(registered_model="movielens-smoke")
    decision = registry.register_run("movielens-smoke", {"lrml": changed}, out["dataset"], out["metrics"],
                                     out["per_user"], {"zenml_run_id": "test"}, promotion.PromotionRule(), stale)
    assert decision.alias == "challenger" and decision.versions["lrml"] != champion_now
    assert f"@champion moved from none to v{champion_now}" in decision.reason
    assert str(mlflow_client.get_model_version_by_alias("movielens-smoke", "champion").version) == champion_now
    description = mlflow_client.get_model_version("movielens-smoke", decision.versions["lrml"]).description
    assert "Not promoted (@challenger)" in description and "moved" in description


def test_the_promotion_lock_lets_one_process_in_at_a_time(tmp_path):
    import subprocess
    import sys
    import time

    holder = subprocess.Popen([sys.executable, "-c", f"""
import mlflow, sys, time
sys.path.insert(0, {str(REPO_ROOT)!r})
from movielens_pipeline.serving.registry import promotion_lock
mlflow.set_tracking_uri("sqlite:///{tmp_path}/mlflow.db")
with promotion_lock("m"):
    print("held", flush=True)
    time.sleep(3)
"""], stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        started = time.monotonic()
        with registry.promotion_lock("m"):
            waited = time.monotonic() - started
    finally:
        mlflow.set_tracking_uri(previous)
        holder.wait()
    assert waited > 1.5


def test_promotion_fails_closed_where_it_cannot_be_serialised(monkeypatch):
    import mlflow

    previous = mlflow.get_tracking_uri()
    monkeypatch.delenv("MOVIELENS_PROMOTION_LOCK_URL", raising=False)
    mlflow.set_tracking_uri("http://127.0.0.1:9")
    try:
        with pytest.raises(registry.PromotionLockUnavailable, match="MOVIELENS_PROMOTION_LOCK_URL"):
            with registry.promotion_lock("m"):
                pass
    finally:
        mlflow.set_tracking_uri(previous)
