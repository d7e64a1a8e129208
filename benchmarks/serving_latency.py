"""Latency of top-10 requests to a running MLflow scoring server, from a second process.

    make serve &                      # or any `mlflow models serve` of a registered model
    .venv/bin/python benchmarks/serving_latency.py --url http://127.0.0.1:5001 --requests 300
    .venv/bin/python benchmarks/serving_latency.py --clients 8 --requests 2000 --results team_serving.json

Load on loopback: each request is one user with a 20-item history; ``--clients`` threads send
``--requests`` requests in all, each client with its own connection. Prints median and p99
latency and the errors (any answer but 200), and writes benchmarks/results/<--results>.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def client(url: str, count: int, warmup: int, seed: int) -> tuple[list[float], int]:
    """``count`` timed requests after ``warmup`` untimed ones; (latencies in ms, errors)."""
    rng = np.random.default_rng(seed)
    session = requests.Session()
    latencies, errors = [], 0
    for i in range(warmup + count):
        body = {
            "dataframe_records": [{"user_id": int(rng.integers(1, 944)), "history": rng.integers(1, 1683, 20).tolist()}],
            "params": {"k": 10},
        }
        started = time.perf_counter()
        try:
            ok = session.post(f"{url}/invocations", json=body, timeout=60).status_code == 200
        except requests.RequestException:
            ok = False
        elapsed = time.perf_counter() - started
        if i >= warmup:
            latencies.append(elapsed * 1000)
            errors += not ok
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5001")
    parser.add_argument("--requests", type=int, default=300, help="timed requests, all clients together")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests per client first")
    parser.add_argument("--results", default="serving_latency.json")
    args = parser.parse_args()
    shares = [args.requests // args.clients + (i < args.requests % args.clients) for i in range(args.clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        done = list(pool.map(lambda i: client(args.url, shares[i], args.warmup, i), range(args.clients)))
    latencies = [ms for part, _ in done for ms in part]
    result = {
        "url": args.url,
        "clients": args.clients,
        "requests": len(latencies),
        "errors": sum(errors for _, errors in done),
        "median_ms": statistics.median(latencies),
        "p99_ms": float(np.percentile(latencies, 99)),
        "mean_ms": statistics.fmean(latencies),
        "wall_seconds": time.perf_counter() - started,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / args.results).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
