"""End-to-end through ZenML on the embedded MovieLens-100k: data steps, training, registry."""



def test_data_steps_produce_the_built_dataset(smoke_run):
    run = smoke_run.run
    dataset = run.steps["build_dataset"].outputs["sequence_dataset"][0].load()
    assert dataset.num_users == 943
    assert 1000 < dataset.num_items <= 1682
    assert {"genre", "decade", "director", "writer"} <= set(dataset.attribute_types())
    item_map = run.steps["build_dataset"].outputs["item_id_map"][0].load()
    assert item_map["item_idx"].tolist() == list(range(1, dataset.num_items + 1))
    report = run.steps["validate_data"].outputs["validation_results"][0].load()
    assert report["success"] is True


def test_every_model_is_evaluated_and_logged_to_mlflow(smoke_run, mlflow_client):
    table = smoke_run.run.steps["evaluate"].outputs["evaluation_metrics"][0].load()
    assert set(table["model"]) == {"s3rec", "sasrec_no_pretraining", "lrml", "popularity", "ease"}
    test_rows = table[table["split"] == "test"].set_index("model")
    # Popularity is a real baseline: any sane ranking of ML-100k puts it well above random.
    random_hit_at_10 = 10 / 1349
    assert test_rows.loc["popularity", "hit_at_10"] > 3 * random_hit_at_10
    client = mlflow_client
    runs = client.search_runs(
        [client.get_experiment_by_name("movielens-smoke").experiment_id],
        filter_string="tags.model = 'lrml'",
    )
    assert runs and "test_ndcg_at_10" in runs[0].data.metrics


def test_first_run_promotes_its_best_model_to_champion(smoke_run, mlflow_client):
    decision = smoke_run.run.steps["register"].outputs["registration"][0].load()
    assert decision.alias == "champion"
    champion = mlflow_client.get_model_version_by_alias("movielens-smoke", "champion")
    assert str(champion.version) == decision.version
    assert champion.tags["architecture"] == decision.candidate
    assert {"data_fingerprint", "git_commit", "zenml_run_id", "test_ndcg_at_10"} <= set(champion.tags)


def test_a_run_ends_with_its_results_the_registry_decision_and_where_mlflow_is(smoke_run, zenml_stack):
    """What `make run` prints last, from the process that ran the pipeline (its marker: any part of
    the run's name)."""
    from movielens_pipeline.integrations.run_pipeline import closing_report

    text = closing_report(smoke_run.run.name, "make mlflow-ui STACK=local")
    table = smoke_run.run.steps["evaluate"].outputs["evaluation_metrics"][0].load()
    best = table[table["split"] == "test"].sort_values("ndcg_at_10").iloc[-1]
    assert f"ZenML run {smoke_run.run.name}: completed" in text
    assert f"{best['ndcg_at_10']:.4f}" in text and "Registry: movielens-smoke versions" in text
    assert text.endswith(f"MLflow tracking URI: sqlite:///{zenml_stack.resolve() / 'mlflow.db'}  "
                         "(browse it with: make mlflow-ui STACK=local)")  # fmt: skip


def test_every_version_reads_well_and_links_to_the_run_that_trained_it(smoke_run, mlflow_client):
    decision = smoke_run.run.steps["register"].outputs["registration"][0].load()
    for model, version in decision.versions.items():
        details = mlflow_client.get_model_version("movielens-smoke", version)
        assert len(details.tags) <= 10 and next(iter(details.tags)) == "architecture"
        # The source run is the model's training run: its curves, parameters and metrics are there.
        training_run = mlflow_client.get_run(details.run_id)
        assert training_run.data.tags["model"] == model and "test_ndcg_at_10" in training_run.data.metrics
        description = details.description
        assert f"Test NDCG@10 {training_run.data.metrics['test_ndcg_at_10']:.4f}" in description
        assert "interactions of" in description
        verdict = "Promoted to @champion" if model == decision.candidate else "Not a candidate"
        assert verdict in description
    baselines = mlflow_client.search_runs(
        [mlflow_client.get_experiment_by_name("movielens-smoke").experiment_id], filter_string="tags.baseline = 'true'"
    )
    ease = next(run for run in baselines if run.data.tags["model"] == "ease")
    assert {"l2", "memory_mb", "covered_items"} <= set(ease.data.params)


def test_a_rerun_on_unchanged_data_reads_the_data_again_and_reuses_everything_after_it(smoke_run, tmp_path):
    """ingest_ratings always runs (new drops may have arrived); its tables carry a content hash,
    so every step downstream of unchanged data comes from the cache and nothing is retrained.
    load_champion, drift_report and register read the registry, whose state is not a step input:
    they run, and register, finding the same weights already registered, registers nothing."""
    import yaml
    from zenml.client import Client
    from zenml.enums import ExecutionStatus

    from conftest import REPO_ROOT
    from pipelines.training import training_pipeline

    config = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    config.pop("enable_cache")
    config_path = tmp_path / "cached.yaml"
    config_path.write_text(yaml.safe_dump(config))
    rerun = training_pipeline.with_options(config_path=str(config_path))()
    statuses = {name: step.status for name, step in Client().get_pipeline_run(rerun.id).steps.items()}
    always_run = {"load_champion", "ingest_ratings", "drift_report", "register"}
    assert all(statuses[name] == ExecutionStatus.COMPLETED for name in always_run)
    assert {name: status for name, status in statuses.items() if name not in always_run} == {
        name: ExecutionStatus.CACHED for name in set(statuses) - always_run
    }
    assert set(statuses) >= {"validate_data", "build_dataset", "s3rec_pretrain", "s3rec_finetune", "lrml_train"}
    decision = Client().get_pipeline_run(rerun.id).steps["register"].outputs["registration"][0].load()
    assert decision.alias is None and decision.versions == {} and "unchanged" in decision.reason


def test_a_model_from_the_cache_registers_whatever_experiment_trained_it(smoke_run, tmp_path, mlflow_client):
    """A run under another MLflow experiment, on the same data, with only S3Rec's settings changed:
    LRML comes from ZenML's cache, its training run lives in the first experiment, and register
    logs the served model into that run (MLflow refuses to reopen a run of another experiment
    unless the active experiment follows it)."""
    import yaml
    from zenml.client import Client
    from zenml.enums import ExecutionStatus

    from conftest import MLFLOW_DIR, REPO_ROOT
    from movielens_pipeline.integrations.stack import ensure_experiments
    from pipelines.training import training_pipeline

    config = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    config.pop("enable_cache")
    config["settings"]["experiment_tracker.mlflow"]["experiment_name"] = "movielens-smoke-elsewhere"
    config["parameters"] |= {"registered_model_name": "movielens-smoke-elsewhere", "models": ["s3rec", "lrml"]}
    config["steps"]["s3rec_finetune"]["parameters"]["finetuning"]["epochs"] = 1
    ensure_experiments(MLFLOW_DIR, ["movielens-smoke-elsewhere"])
    config_path = tmp_path / "elsewhere.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run = Client().get_pipeline_run(training_pipeline.with_options(config_path=str(config_path))().id)
    assert run.steps["lrml_train"].status == ExecutionStatus.CACHED
    assert run.steps["s3rec_finetune"].status == ExecutionStatus.COMPLETED
    decision = run.steps["register"].outputs["registration"][0].load()
    lrml = mlflow_client.get_model_version("movielens-smoke-elsewhere", decision.versions["lrml"])
    # The cached LRML was trained by an earlier run (the smoke run, or another test's on the same
    # data): its version's source run is that training run, in that run's experiment.
    elsewhere = mlflow_client.get_experiment_by_name("movielens-smoke-elsewhere").experiment_id
    trained_in = mlflow_client.get_run(lrml.run_id)
    assert trained_in.info.experiment_id != elsewhere
    assert trained_in.data.tags["model"] == "lrml" and "lrml_best_valid_ndcg_at_10" in trained_in.data.metrics
    assert set(decision.versions) == {"s3rec", "lrml"}
