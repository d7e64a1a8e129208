"""Latency of top-10 requests to a running MLflow scoring server, from a second process.

    make serve &                      # or any `mlflow models serve` of a registered model
    .venv/bin/python benchmarks/serving_latency.py --url http://127.0.0.1:5001 --requests 300

A bounded, sequential load on loopback: each request is one user with a 20-item history.
Prints median and p99 latency and writes benchmarks/results/serving_latency.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import requests

RESULTS = Path(__file__).resolve().parent / "results" / "serving_latency.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5001")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    session = requests.Session()
    latencies = []
    for i in range(args.warmup + args.requests):
        body = {
            "dataframe_records": [
                {"user_id": int(rng.integers(1, 944)), "history": rng.integers(1, 1683, 20).tolist()}
            ],
            "params": {"k": 10},
        }
        started = time.perf_counter()
        answer = session.post(f"{args.url}/invocations", json=body, timeout=30)
        elapsed = time.perf_counter() - started
        answer.raise_for_status()
        if i >= args.warmup:
            latencies.append(elapsed * 1000)
    result = {
        "requests": args.requests,
        "median_ms": statistics.median(latencies),
        "p99_ms": float(np.percentile(latencies, 99)),
        "mean_ms": statistics.fmean(latencies),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
