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
    assert decision["alias"] == "champion"
    champion = mlflow_client.get_model_version_by_alias("movielens-smoke", "champion")
    assert champion.version == decision["version"]
    assert champion.tags["architecture"] == decision["candidate"]
    assert {"data_fingerprint", "git_commit", "zenml_run_id", "test_ndcg_at_10"} <= set(champion.tags)
