"""Champion gating, re-evaluation of a registered model, and all-or-nothing registration."""

import numpy as np
import pytest

from movielens_pipeline.evaluation.protocols import flat_metrics
from movielens_pipeline.serving import promotion, registry


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
    champion = registry.RegisteredRecommender.download(f"models:/movielens-smoke/{decision['version']}")
    reevaluated = registry.per_user_test_metric(champion.score_fn_for(dataset), dataset, "ndcg_at_10")
    recorded = promotion.per_user_from_table(per_user, decision["candidate"], "ndcg_at_10")
    np.testing.assert_allclose(reevaluated, recorded, atol=1e-6)


def test_the_same_model_again_does_not_take_the_champion_alias(smoke_run, mlflow_client):
    run = smoke_run.run
    dataset = run.steps["build_dataset"].outputs["sequence_dataset"][0].load()
    decision = run.steps["register"].outputs["registration"][0].load()
    per_user = run.steps["evaluate"].outputs["per_user_ranks"][0].load()
    metrics = run.steps["evaluate"].outputs["evaluation_metrics"][0].load()
    name = decision["candidate"]
    champion_before = mlflow_client.get_model_version_by_alias("movielens-smoke", "champion").version
    uri = f"models:/movielens-smoke/{decision['version']}"
    again = registry.register_and_promote(
        "movielens-smoke", {name: uri}, {name: flat_metrics(metrics, name)}, {"origin": "test"},
        name, promotion.per_user_from_table(per_user, name, "ndcg_at_10"), dataset, promotion.PromotionRule(),
    )  # fmt: skip
    assert again["alias"] == "challenger"
    assert mlflow_client.get_model_version_by_alias("movielens-smoke", "champion").version == champion_before
    assert mlflow_client.get_model_version_by_alias("movielens-smoke", "challenger").version == again["version"]


def test_a_failed_registration_leaves_no_version_behind(smoke_run, mlflow_client):
    run = smoke_run.run
    dataset = run.steps["build_dataset"].outputs["sequence_dataset"][0].load()
    decision = run.steps["register"].outputs["registration"][0].load()
    per_user = run.steps["evaluate"].outputs["per_user_ranks"][0].load()
    name = decision["candidate"]
    versions_before = {v.version for v in mlflow_client.search_model_versions("name='movielens-smoke'")}
    aliases_before = mlflow_client.get_registered_model("movielens-smoke").aliases
    uris = {name: f"models:/movielens-smoke/{decision['version']}", "broken": "runs:/0000/not-there"}
    with pytest.raises(Exception):
        registry.register_and_promote(
            "movielens-smoke", uris, {name: {}, "broken": {}}, {}, name,
            promotion.per_user_from_table(per_user, name, "ndcg_at_10"), dataset, promotion.PromotionRule(),
        )  # fmt: skip
    versions_after = {v.version for v in mlflow_client.search_model_versions("name='movielens-smoke'")}
    assert versions_after == versions_before
    assert mlflow_client.get_registered_model("movielens-smoke").aliases == aliases_before
