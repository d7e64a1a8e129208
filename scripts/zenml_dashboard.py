"""The ZenML dashboard over the project's own ZenML store, on 127.0.0.1 (what `make dashboard` runs).

    .venv-dashboard/bin/python scripts/zenml_dashboard.py --store-url URL --local-stores DIR [--port 8237]

Runs in its own environment (.venv-dashboard, with zenml[server] at the pipeline's ZenML version)
so the pipeline's pinned packages stay as they are. It serves the SQLite store the pipeline
writes to, without logging the pipeline's client in to a server: runs keep working whether the
dashboard is up or not. Local only: no authentication, bound to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import tempfile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-url", required=True, help="the pipeline's ZenML store (sqlite:///...)")
    parser.add_argument("--local-stores", required=True, help="the pipeline's ZenML local stores folder")
    parser.add_argument("--port", type=int, default=8237)
    args = parser.parse_args()
    # The server's own global configuration lives apart from the pipeline's (never changed here).
    os.environ.update({
        "ZENML_CONFIG_PATH": tempfile.mkdtemp(prefix="zenml-dashboard-"),
        "ZENML_STORE_URL": args.store_url,
        "ZENML_LOCAL_STORES_PATH": args.local_stores,
        "ZENML_SERVER": "true",
        "ZENML_SERVER_DEPLOYMENT_TYPE": "local",
        "ZENML_SERVER_AUTH_SCHEME": "NO_AUTH",
        "ZENML_SERVER_ALLOW_LOCAL_FILE_ACCESS": "true",
        "ZENML_SERVER_AUTO_ACTIVATE": "true",
        "ZENML_DISABLE_DATABASE_MIGRATION": "true",  # the pipeline's ZenML owns the schema
        "ZENML_ANALYTICS_OPT_IN": "false",
    })  # fmt: skip
    import uvicorn
    from zenml.constants import ZEN_SERVER_ENTRYPOINT

    print(f"ZenML dashboard on http://127.0.0.1:{args.port} (store {args.store_url}); Ctrl+C stops it")
    uvicorn.run(ZEN_SERVER_ENTRYPOINT, host="127.0.0.1", port=args.port, log_level="warning", server_header=False)


if __name__ == "__main__":
    main()
