"""The MLflow registry client: log recommenders as pyfunc models, register them, move the
champion alias, and load registered models back (for the gate and for warm starts)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import AnyType, Array

from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.data.ragged import Ragged
from movielens_pipeline.evaluation.metrics import ScoreFn, full_ranking, per_user_metric
from movielens_pipeline.evaluation.protocols import flat_metrics, split_inputs
from movielens_pipeline.families import family_code_paths, family_of, load_recommender, pretraining_pairs
from movielens_pipeline.serving.promotion import (
    PromotionRule,
    choose_candidate,
    per_user_from_table,
    pretraining_verdict,
    promotion_decision,
    version_description,
)
from movielens_pipeline.serving.records import (
    ChampionRecord,
    PretrainingVerdict,
    RegistrationDecision,
    ServedModelRecord,
)
from movielens_pipeline.training.trained_model import (
    TrainedModel,
    load_trained_model,
    save_trained_model,
)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
MODELS_DIR = PACKAGE_DIR.parent / "models"
SERVING_CODE = Path(__file__).resolve().parent / "pyfunc.py"
# The library and the torch models travel with the model; serving imports only data,
# evaluation, training.trained_model and serving of the library (nothing that needs ZenML).
CODE_PATHS = [str(PACKAGE_DIR), str(MODELS_DIR)]

# register_and_promote's champion_before when the caller compared against no particular champion.
ANY_CHAMPION = object()

SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            # Any type: the pyfunc checks ids itself, so ints, floats and missing user ids (JSON
            # rows without a user become NaN) all reach it and a bad id gets a 400 naming its row
            # and value; MLflow's own per-row check of an array column also cost ~0.1 ms a row.
            ColSpec(AnyType(), "user_id", required=False),
            ColSpec(AnyType(), "history"),
        ]
    ),
    outputs=Schema(
        [
            ColSpec(DataType.long, "user_id", required=False),
            ColSpec(Array(DataType.long), "item_ids"),
            ColSpec(Array(DataType.string), "titles"),
            ColSpec(Array(DataType.double), "scores"),
            ColSpec(DataType.string, "fallback"),
        ]
    ),
    params=ParamSchema([ParamSpec("k", DataType.long, 10), ParamSpec("exclude_seen", DataType.boolean, True)]),
)


def serving_tables(dataset: SequenceDataset) -> dict[str, pd.DataFrame]:
    """What serving needs, by artifact name: items with titles and popularity, the user id map,
    and every item each user rated, flat and in sequence order (their history when a request
    sends none, and what is excluded from their answers)."""
    return {
        "item_map": dataset.item_map.assign(popularity=dataset.item_popularity()[dataset.item_map["item_idx"]]),
        "user_map": dataset.user_map[["user_idx", "user_id"]],
        "user_items": pd.DataFrame({
            "user_idx": np.repeat(dataset.user_indices, np.diff(dataset.offsets)).astype(np.int32),
            "item_idx": dataset.items.astype(np.int32),
        }),
    }  # fmt: skip


def serving_requirements() -> list[str]:
    """The serving code's dependencies at the versions this environment runs (no +cpu labels)."""
    from importlib.metadata import version

    packages = ["torch", "mlflow", "pandas", "pyarrow", "numpy", "safetensors"]
    return [f"{name}=={version(name).split('+')[0]}" for name in packages]


def log_pyfunc(trained: TrainedModel, dataset: SequenceDataset, name: str, run_id: str | None = None) -> str:
    """Log one model as a pyfunc from code (no pickled Python objects); returns its model URI.

    With ``run_id`` it is logged into that (finished) run, the training run, so the registered
    version's source run is where the model was trained, whatever experiment it belongs to (a
    training step from ZenML's cache may have run under another one); otherwise into the active run.
    """
    with (_reopened(run_id) if run_id else nullcontext()), tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_trained_model(trained, tmp / "model")
        artifacts = {"model": str(tmp / "model")}
        for table_name, table in serving_tables(dataset).items():
            table.to_parquet(tmp / f"{table_name}.parquet", index=False)
            artifacts[table_name] = str(tmp / f"{table_name}.parquet")
        example_history = dataset.item_map["item_id"].head(3).astype(int).tolist()
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(SERVING_CODE),
            artifacts=artifacts,
            code_paths=CODE_PATHS + family_code_paths(trained.kind),
            # The served model imports the module that registers its family before it loads.
            model_config={"family_module": family_of(trained.kind).family_module},
            pip_requirements=serving_requirements(),
            signature=SIGNATURE,
            input_example=pd.DataFrame(
                {"user_id": [int(dataset.user_map["user_id"].iloc[0])], "history": [example_history]}
            ),
        )
    return info.model_uri


@contextmanager
def _reopened(run_id: str):
    """``run_id`` active again (nested in the current run), under its own experiment for the time
    being: MLflow refuses to resume a run of another experiment than the active one."""
    active = mlflow.active_run()
    mlflow.set_experiment(experiment_id=mlflow.MlflowClient().get_run(run_id).info.experiment_id)
    try:
        with mlflow.start_run(run_id=run_id, nested=True):
            yield
    finally:
        if active is not None:
            mlflow.set_experiment(experiment_id=active.info.experiment_id)


@dataclass
class RegisteredRecommender:
    """A registered model loaded back from its artifacts (weights via safetensors only)."""

    trained: TrainedModel
    items: pd.DataFrame
    users: pd.DataFrame

    @classmethod
    def download(cls, model_uri: str) -> "RegisteredRecommender":
        local = Path(mlflow.artifacts.download_artifacts(model_uri)) / "artifacts"
        return cls(
            load_trained_model(local / "model"),
            pd.read_parquet(local / "item_map.parquet"),
            pd.read_parquet(local / "user_map.parquet"),
        )

    def score_fn_for(self, dataset: SequenceDataset) -> ScoreFn:
        """Scores in ``dataset``'s index space, whatever index space the model was trained in.

        Items the model never saw score -inf (they can only rank last); users it never saw
        get its popularity scores.
        """
        recommender = load_recommender(self.trained)
        own_item = dict(zip(self.items["item_id"], self.items["item_idx"]))
        own_user = dict(zip(self.users["user_id"], self.users["user_idx"]))
        to_own_item = np.array([0] + [own_item.get(i, 0) for i in dataset.item_map["item_id"]])
        to_own_user = np.array([0] + [own_user.get(u, 0) for u in dataset.user_map["user_id"]])
        column = torch.as_tensor(to_own_item)
        popularity = torch.zeros(len(self.items) + 1)
        popularity[torch.as_tensor(self.items["item_idx"].to_numpy())] = torch.as_tensor(
            self.items["popularity"].to_numpy(dtype=np.float32)
        )

        def scores(user_indices: torch.Tensor, histories) -> torch.Tensor:
            own_users = torch.as_tensor(to_own_user[user_indices.cpu().numpy()])
            rows, items = histories.flat()
            own_items = to_own_item[items]
            known = own_items > 0
            own_histories = Ragged.from_pairs(rows[known], own_items[known], len(histories))
            own_scores = recommender.score_fn(own_users, own_histories).float().cpu()
            if not recommender.uses_history:
                cold = own_users == 0
                own_scores[cold] = popularity[: own_scores.shape[1]].expand(int(cold.sum()), -1)
            out = own_scores[:, column]
            out[:, column == 0] = float("-inf")
            return out

        return scores


def per_user_test_metric(score_fn: ScoreFn, dataset: SequenceDataset, metric: str,
                         users: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Each user's test ``metric`` (every user, or the positions ``users``)."""
    inputs = split_inputs(dataset, "test", users)
    ranking = full_ranking(score_fn, inputs.users, inputs.histories, inputs.targets, dataset.num_items)
    return per_user_metric(ranking.ranks, metric)


class ChampionUnavailableError(RuntimeError):
    """The registry has a champion that cannot be read, loaded or scored: the run stops before
    registering anything (the gate fails closed)."""


def current_champion(name: str) -> ChampionRecord:
    """Which version is ``@champion`` now, checked to load; a record without a version when the
    registry has no such model or no champion yet. Anything else that goes wrong raises."""
    client = mlflow.MlflowClient()
    try:
        registered = client.get_registered_model(name)
    except mlflow.exceptions.MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return ChampionRecord(registered_model=name)
        raise ChampionUnavailableError(f"cannot read registered model {name}: {error}") from error
    version = registered.aliases.get("champion")
    if version is None:
        return ChampionRecord(registered_model=name)
    try:
        details = client.get_model_version(name, version)
        load_recommender(RegisteredRecommender.download(f"models:/{name}/{version}").trained)
    except Exception as error:
        raise ChampionUnavailableError(
            f"{name} v{version} is @champion but cannot be loaded ({type(error).__name__}: {error}); "
            "nothing is registered until it loads again or the alias is moved by hand"
        ) from error
    return ChampionRecord(
        registered_model=name,
        version=str(version),
        architecture=details.tags.get("architecture"),
        zenml_run_id=details.tags.get("zenml_run_id"),
        weights_fingerprint=details.tags.get("weights_fingerprint"),
        data_fingerprint=details.tags.get("data_fingerprint"),
    )


def champion_test_scores(champion: ChampionRecord, dataset: SequenceDataset, metric: str,
                         users: np.ndarray | None = None) -> np.ndarray | None:  # fmt: skip
    """The champion (the pinned version ``champion`` names) re-scored on today's test split, on
    the users (positions) the run's models were evaluated on."""
    if not champion.exists:
        return None
    name, version = champion.registered_model, champion.version
    try:
        model = RegisteredRecommender.download(f"models:/{name}/{version}")
        scores = per_user_test_metric(model.score_fn_for(dataset), dataset, metric, users)
    except Exception as error:
        raise ChampionUnavailableError(
            f"{name} v{version} (@champion) cannot be scored on this run's test split "
            f"({type(error).__name__}: {error}); nothing was registered"
        ) from error
    return scores


def already_registered(name: str, weights: dict[str, str]) -> dict[str, str]:
    """Models whose exact weights (by content fingerprint) a version already holds: model -> version."""
    client = mlflow.MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except mlflow.exceptions.MlflowException:
        return {}
    by_fingerprint = {}
    for version in sorted(_finished(versions), key=lambda v: int(v.version)):
        fingerprint = version.tags.get("weights_fingerprint")
        if fingerprint:
            by_fingerprint.setdefault(fingerprint, str(version.version))
    return {model: by_fingerprint[fp] for model, fp in weights.items() if fp in by_fingerprint}


def register_and_promote(
    name: str,
    model_uris: dict[str, str],
    version_tags: dict[str, dict[str, str]],
    candidate: str,
    alias: str,
    reason: str,
    describe: Callable[[str, str, str], str] | None = None,
    champion_before: str | None | object = ANY_CHAMPION,
) -> tuple[dict[str, str], str, str]:
    """Register one version per model with its tags, then point ``alias`` at the candidate and
    describe each version (``describe(model, alias, reason)``). Returns (versions created, the
    alias given, its reason).

    Promotion is checked and done under the registry's promotion lock (``promotion_lock``): when
    ``alias`` is "champion" and ``@champion`` is no longer ``champion_before`` (the version the
    run compared against), another run moved it meanwhile, and the candidate becomes a
    challenger instead, with a reason naming that run. The alias moves last. All or nothing: if
    any step fails, the versions created here are deleted, the aliases are put back as they
    were, and the error is raised.
    """
    client = mlflow.MlflowClient()
    try:
        aliases_before = dict(client.get_registered_model(name).aliases)
    except mlflow.exceptions.MlflowException:
        aliases_before = {}
    created: dict[str, str] = {}
    try:
        # Versions are "pending" until every one is written: readers skip them, and the next run
        # removes those a run that died left behind (``discard_unfinished``).
        for model, uri in model_uris.items():
            created[model] = str(mlflow.register_model(uri, name, tags=version_tags[model] | PENDING).version)
        for version in created.values():
            client.delete_model_version_tag(name, version, REGISTRATION_TAG)
        with promotion_lock(name):
            if alias == "champion" and champion_before is not ANY_CHAMPION:
                alias, reason = _still_the_champion(client, name, champion_before, reason)
            client.set_model_version_tag(name, created[candidate], "promotion", alias)
            client.set_registered_model_alias(name, alias, created[candidate])
        for model, version in created.items():
            if describe is not None:
                client.update_model_version(name, version, description=describe(model, alias, reason))
    except Exception:
        _restore_aliases(client, name, aliases_before)
        for version in created.values():
            client.delete_model_version(name, version)
        raise
    return created, alias, reason


REGISTRATION_TAG = "registration"
PENDING = {REGISTRATION_TAG: "pending"}


def _finished(versions: list) -> list:
    """The versions whose registration completed (a pending one may lack its siblings)."""
    return [version for version in versions if version.tags.get(REGISTRATION_TAG) != "pending"]


def discard_unfinished(name: str, still_running: Callable[[str], bool]) -> list[str]:
    """Delete the pending versions of ``name`` that runs which are no longer running left behind
    (``still_running(zenml_run_id)``), e.g. when the tracking server went down mid-registration.
    Returns the versions deleted."""
    client = mlflow.MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except mlflow.exceptions.MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    deleted = []
    for version in versions:
        if version.tags.get(REGISTRATION_TAG) == "pending" and not still_running(version.tags.get("zenml_run_id", "")):
            client.delete_model_version(name, version.version)
            deleted.append(str(version.version))
    return deleted


def _still_the_champion(client, name: str, expected: str | None, reason: str) -> tuple[str, str]:
    """("champion", reason) when ``@champion`` is still ``expected``; else ("challenger", why not)."""
    now = client.get_registered_model(name).aliases.get("champion")
    if str(now) == str(expected) or (now is None and expected is None):
        return "champion", reason
    moved_by = client.get_model_version(name, now).tags.get("zenml_run_id", "unknown") if now is not None else "-"
    return "challenger", (
        f"not promoted: @champion moved from {'v' + str(expected) if expected else 'none'} to v{now} (registered by "
        f"ZenML run {moved_by}) while this run trained; its gate compared against a champion that is no "
        f"longer there ({reason})"
    )


class PromotionLockUnavailable(RuntimeError):
    """The registry's promotions cannot be serialised here: nothing is promoted (fail closed)."""


@contextmanager
def promotion_lock(name: str, timeout_seconds: float = 600):
    """Held while a promotion is checked and done, so two runs can never both see the same
    champion and both replace it. A local MLflow store (SQLite or files) locks a file beside it;
    a tracking server locks in the team's PostgreSQL (``MOVIELENS_PROMOTION_LOCK_URL``, a
    SQLAlchemy URL: ``pg_advisory_lock`` on the model's name); anything else fails closed."""
    tracking = mlflow.get_tracking_uri()
    if tracking.startswith(("sqlite:///", "file:")) or "://" not in tracking:
        path = Path(tracking.removeprefix("sqlite:///").removeprefix("file://")).expanduser()
        folder = path.parent if tracking.startswith("sqlite:///") else path
        with _file_lock(folder / f".promotion-{name}.lock", timeout_seconds):
            yield
        return
    url = os.environ.get("MOVIELENS_PROMOTION_LOCK_URL")
    if not url:
        raise PromotionLockUnavailable(
            f"cannot serialise promotions of {name} on {tracking}: set MOVIELENS_PROMOTION_LOCK_URL to the team's "
            "PostgreSQL (make team-stack writes it); nothing was promoted")
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    key = int(hashlib.sha256(name.encode()).hexdigest()[:15], 16)  # fits a signed 64-bit key
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f"SET lock_timeout = '{int(timeout_seconds * 1000)}ms'"))
            connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


@contextmanager
def _file_lock(path: Path, timeout_seconds: float):
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_seconds
    with open(path, "w") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PromotionLockUnavailable(f"{path} stayed locked for {timeout_seconds:.0f} s") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _restore_aliases(client: mlflow.MlflowClient, name: str, aliases_before: dict[str, str]) -> None:
    try:
        now = dict(client.get_registered_model(name).aliases)
    except mlflow.exceptions.MlflowException:
        return
    for alias, version in now.items():
        if aliases_before.get(alias) != version:
            if alias in aliases_before:
                client.set_registered_model_alias(name, alias, aliases_before[alias])
            else:
                client.delete_registered_model_alias(name, alias)


# The registry UI shows a version's tags in one row: architecture first, then the figures and
# identities a reader compares versions by. Every metric and parameter is on the linked source run.
HEADLINE_METRICS = ("test_ndcg_at_10", "test_hit_at_10", "valid_ndcg_at_10")
IDENTITY_TAGS = ("data_fingerprint", "input_fingerprint", "git_commit", "zenml_run_id")


def version_tags_of(model: str, weights_fingerprint: str, run_tags: dict[str, str],
                    metrics: dict[str, float]) -> dict[str, str]:  # fmt: skip
    """At most ten tags: architecture, headline metrics, identities (weights, data, code, run)."""
    return (
        {"architecture": model}
        | {key: f"{metrics[key]:.4f}" for key in HEADLINE_METRICS if key in metrics}
        | {"weights_fingerprint": weights_fingerprint}
        | {key: run_tags[key] for key in IDENTITY_TAGS if key in run_tags}
    )


def register_run(
    name: str,
    trained: dict[str, TrainedModel],
    dataset: SequenceDataset,
    evaluation_metrics: pd.DataFrame,
    per_user_ranks: pd.DataFrame,
    tags: dict[str, str],
    rule: PromotionRule,
    champion: ChampionRecord,
) -> RegistrationDecision:
    """Register a run's models; the one best on validation is the candidate, and the gate
    compares it with ``champion`` (re-scored on today's test split) to pick its alias.

    Models whose identical weights are already registered are not registered again; when that
    is the candidate, nothing moves. The champion is scored before anything is registered.
    """
    candidate = choose_candidate(evaluation_metrics, list(trained), rule.metric)
    fingerprints = {model: weights.weights_fingerprint() for model, weights in trained.items()}
    existing = already_registered(name, fingerprints)
    decided = {"registered_model": name, "candidate": candidate, "champion_before": champion.version,
               "already_registered": existing}  # fmt: skip
    if candidate in existing:
        return RegistrationDecision(
            **decided, version=existing[candidate],
            reason=f"unchanged: {candidate}'s weights are already registered as v{existing[candidate]}; "
                   "nothing registered, no alias moved",
        )  # fmt: skip
    evaluated = np.sort(per_user_ranks["user_idx"].unique())
    champion_scores = champion_test_scores(champion, dataset, rule.metric, evaluated - 1)
    candidate_scores = per_user_from_table(per_user_ranks, candidate, rule.metric)
    promote, reason, stats = promotion_decision(candidate_scores, champion_scores, rule)
    alias = "champion" if promote else "challenger"
    new = {model: weights for model, weights in trained.items() if model not in existing}
    metrics = {model: flat_metrics(evaluation_metrics, model) for model in new}
    data = dataset.stats | {"fingerprint": tags.get("data_fingerprint", dataset.fingerprint())}
    version_tags = {model: version_tags_of(model, fingerprints[model], tags, metrics[model]) for model in new}
    uris = {model: log_pyfunc(weights, dataset, model, weights.summary.get("mlflow_run_id")) for model, weights in new.items()}

    def describe(model: str, alias: str, reason: str) -> str:
        return version_description(model, candidate, alias, reason, metrics[model], data)

    created, alias, reason = register_and_promote(name, uris, version_tags, candidate, alias, reason, describe,
                                                  champion.version)  # fmt: skip
    return RegistrationDecision(**decided, versions=created, version=created[candidate], alias=alias, reason=reason,
                                bootstrap=stats)  # fmt: skip


# A registered-model tag per pretrained model, holding its newest PretrainingVerdict as JSON.
PRETRAINING_VERDICT_TAG = "pretraining_verdict."


def pretraining_verdicts(name: str) -> dict[str, PretrainingVerdict]:
    """The newest pretraining verdict per pretrained model recorded on registered model ``name``
    (none when it does not exist yet). An unreadable registry or tag raises."""
    client = mlflow.MlflowClient()
    try:
        tags = client.get_registered_model(name).tags
    except mlflow.exceptions.MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return {key.removeprefix(PRETRAINING_VERDICT_TAG): PretrainingVerdict.model_validate_json(value)
            for key, value in tags.items() if key.startswith(PRETRAINING_VERDICT_TAG)}  # fmt: skip


def measured_pretraining_verdict(trained: dict[str, TrainedModel], per_user_ranks: pd.DataFrame,
                                 rule: PromotionRule, zenml_run_id: str) -> PretrainingVerdict | None:  # fmt: skip
    """Whether pretraining paid on this run's validation users, when the run trained a pretrained
    model beside its twin without pretraining (None otherwise)."""
    pairs = [(first, second) for first, second in pretraining_pairs(list(trained))
             if trained[first].summary.get("pretrained")]  # fmt: skip
    if not pairs:
        return None
    pretrained, twin = pairs[0]  # one pretrained family: S3Rec
    return pretraining_verdict(per_user_ranks, pretrained, twin, rule, time.strftime("%Y-%m-%d"), zenml_run_id)


def record_pretraining_verdict(name: str, verdict: PretrainingVerdict) -> None:
    """Make ``verdict`` the one ``pretrain: auto`` follows for registered model ``name``."""
    mlflow.MlflowClient().set_registered_model_tag(name, PRETRAINING_VERDICT_TAG + verdict.model,
                                                   verdict.model_dump_json())  # fmt: skip


def previous_model(champion: ChampionRecord, architecture: str) -> RegisteredRecommender | None:
    """The model a warm start continues from: the champion ``load_champion`` recorded when it
    has this architecture, else the newest registered version that does; None when none does."""
    name = champion.registered_model
    if champion.exists and champion.architecture == architecture:
        return RegisteredRecommender.download(f"models:/{name}/{champion.version}")
    client = mlflow.MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except mlflow.exceptions.MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    same = [v for v in _finished(versions) if v.tags.get("architecture") == architecture]
    if not same:
        return None
    newest = max(same, key=lambda v: int(v.version))
    return RegisteredRecommender.download(f"models:/{name}/{newest.version}")


def served_model(name: str, version: str | None = None) -> ServedModelRecord:
    """The version a batch job scores with: ``version``, or the current ``@champion``."""
    client = mlflow.MlflowClient()
    champion = client.get_registered_model(name).aliases.get("champion")
    if version is None:
        if champion is None:
            raise ChampionUnavailableError(f"{name} has no @champion to score with; name a version")
        version = champion
    details = client.get_model_version(name, str(version))
    return ServedModelRecord(
        registered_model=name, version=str(version), model_uri=f"models:/{name}/{version}",
        champion=str(version) == str(champion), architecture=details.tags.get("architecture"),
        data_fingerprint=details.tags.get("data_fingerprint"),
    )  # fmt: skip

