"""The team's servers install the versions the clients run (read from requirements.txt), so a
client and the ZenML or MLflow server it talks to never disagree on a version."""

from importlib.metadata import version


def test_the_team_servers_install_the_versions_the_clients_run():
    from movielens_pipeline.integrations.team_stack import SERVER_PACKAGES, SERVICES_PACKAGES

    assert f"zenml[server]=={version('zenml')}" in SERVER_PACKAGES
    assert f"mlflow[auth]=={version('mlflow')}" in SERVICES_PACKAGES
    assert {f"{name}=={version(name)}" for name in ("s3fs", "boto3", "aws-profile-manager")} <= set(SERVER_PACKAGES)
