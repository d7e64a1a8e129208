"""Before any step trains: can this run reach every service of its stack, with its credentials?

Each check names the service and its URL in one line (``ServiceUnavailable``):
- the MLflow tracking server (and, through it, its database: a server that answers but cannot
  list experiments has lost its store);
- the artifact store (an object store: one probe object written, read back and removed);
- the ZenML server is checked by the client itself before any step starts.
A local stack (SQLite, local files) has nothing to reach and passes.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
import uuid


class ServiceUnavailable(RuntimeError):
    """A service of the stack is down or refuses this client: nothing has been trained."""


def check_tracking_server(uri: str, username: str | None, password: str | None) -> None:
    if not uri.startswith(("http://", "https://")):
        return
    request = urllib.request.Request(f"{uri}/api/2.0/mlflow/experiments/search", method="POST",
                                     data=json.dumps({"max_results": 1}).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    if username is not None:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=15):
            return
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            who = f"user {username!r}" if username else "anonymous requests"
            raise ServiceUnavailable(f"MLflow tracking server at {uri} refused {who} (HTTP {error.code}): check the "
                                     "credentials (MLFLOW_TRACKING_USERNAME / _PASSWORD, or the tracker's secret)") from None
        raise ServiceUnavailable(f"MLflow tracking server at {uri} answered HTTP {error.code} when listing experiments: "
                                 "its backend database is probably down") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ServiceUnavailable(f"MLflow tracking server at {uri} is not reachable ({reason})") from None


def check_artifact_store(artifact_store) -> None:
    """An object-store artifact store answers a write, a read and a delete of a probe object."""
    path = str(artifact_store.path)
    if "://" not in path:
        return
    probe = f"{path.rstrip('/')}/.preflight/{uuid.uuid4().hex}"
    endpoint = (getattr(artifact_store.config, "client_kwargs", None) or {}).get("endpoint_url", "")
    where = f"{path}" + (f" at {endpoint}" if endpoint else "")
    try:
        with artifact_store.open(probe, "w") as handle:
            handle.write("ok")
        with artifact_store.open(probe, "r") as handle:
            handle.read()
        artifact_store.remove(probe)
    except Exception as error:  # noqa: BLE001 - every client library raises its own kind
        raise ServiceUnavailable(f"artifact store {where} is not usable ({type(error).__name__}: "
                                 f"{str(error)[:200]})") from None


def check_zenml_server() -> None:
    """The ZenML server the client is configured for (a local store needs none)."""
    url = os.environ.get("ZENML_STORE_URL", "")
    if not url.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=15):
            return
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ServiceUnavailable(f"ZenML server at {url} is not reachable ({reason})") from None


def check_services() -> None:
    """Every service of the active stack, in the order a run needs them."""
    check_zenml_server()
    from zenml.client import Client

    stack = Client().active_stack
    tracker = stack.experiment_tracker
    if tracker is not None:
        config = tracker.config
        check_tracking_server(tracker.get_tracking_uri(),
                              os.environ.get("MLFLOW_TRACKING_USERNAME") or getattr(config, "tracking_username", None),
                              os.environ.get("MLFLOW_TRACKING_PASSWORD") or getattr(config, "tracking_password", None))
    check_artifact_store(stack.artifact_store)
