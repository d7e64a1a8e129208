"""Cost of every step against the number of ratings, on MovieLens-shaped synthetic data.

    .venv/bin/python benchmarks/scale.py --sizes 1000000 4000000 16000000 32000000

For each size: generate the data (ml-32m layout), then ingest, validate, build, evaluate each
model (both protocols, both splits, all users), register, answer a 1,000-row serving
request (median of 15; the same request through the full [rows, items] score matrix is timed
beside it as a reference), and write every user's top-10 as the batch-inference pipeline does
(``--stages batch``, after ``serve``: the served model's Parquet parts, rows/s). Every stage runs in a fresh process that reads its inputs from disk, so its peak RSS
is its own (inputs included). Trained weights do not change these costs, so S3Rec and LRML are
evaluated and served untrained. Results: benchmarks/results/scale.json and scale.png (log-log).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

RESULTS = common.RESULTS_DIR / "scale.json"
CHART = common.RESULTS_DIR / "scale.png"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _open_in(folder: Path):
    return lambda name, mode: open(folder / name, mode)


def stage_generate(work: Path, ratings: int) -> dict:
    from movielens_pipeline.data.synthetic import write_synthetic

    write_synthetic(work / "source", ratings)
    return {}


def stage_ingest(work: Path) -> dict:
    from movielens_pipeline.data.sources import load_source

    raw = load_source({"kind": "grouplens", "path": str(work / "source")})
    for name in ("interactions", "items", "item_attributes"):
        getattr(raw, name).to_parquet(work / f"{name}.parquet")
    return {"interactions": len(raw.interactions)}


def _raw(work: Path):
    import pandas as pd

    return [pd.read_parquet(work / f"{name}.parquet") for name in ("interactions", "items", "item_attributes")]


def stage_validate(work: Path) -> dict:
    from movielens_pipeline.data.contracts import validate_tables

    report = validate_tables(*_raw(work))
    return {"passed": report.success}


def stage_build(work: Path) -> dict:
    from movielens_pipeline.data.build import build_sequence_dataset
    from movielens_pipeline.data.dataset import write_dataset

    data = build_sequence_dataset(*_raw(work))
    (work / "dataset").mkdir(exist_ok=True)
    write_dataset(data, _open_in(work / "dataset"))
    return {"users": data.num_users, "items": data.num_items}


def _untrained(name: str, dataset):
    """A model of the default architecture, untrained, as a TrainedModel."""
    from dataclasses import asdict

    from models.lrml import LRML
    from models.s3rec import S3Rec
    from movielens_pipeline.training.pairwise import lrml_config
    from movielens_pipeline.training.s3rec import s3rec_config
    from movielens_pipeline.training.trained_model import TrainedModel

    if name == "s3rec":
        config = s3rec_config(dataset)
        return TrainedModel("s3rec", asdict(config), S3Rec(config).state_dict(), summary={"name": name})
    config = lrml_config(dataset)
    return TrainedModel("lrml", {"model": asdict(config)}, LRML(config).state_dict(), summary={"name": name})


def stage_evaluate(work: Path, model: str, max_users: int | None = None) -> dict:
    from movielens_pipeline.data.dataset import read_dataset
    from movielens_pipeline import families
    from movielens_pipeline.evaluation import baselines, protocols

    dataset = read_dataset(_open_in(work / "dataset"))
    loaded = time.perf_counter()
    history_free = []  # as the evaluate step: a model that ignores histories is scored once for both splits
    if model == "popularity":
        score_fn, note = baselines.popularity_score_fn(dataset), ""
    elif model == "ease":
        ease = baselines.fit_ease(dataset)
        score_fn, note = baselines.ease_score_fn(ease), ease.note()
    else:
        recommender = families.load_recommender(_untrained(model, dataset))
        score_fn, note = recommender.score_fn, ""
        if not recommender.uses_history:
            history_free = [model]
    evaluations = protocols.evaluate_models({model: score_fn}, dataset, max_users=max_users, history_free=history_free)
    ranked = len(evaluations[0].users)
    seconds = time.perf_counter() - loaded
    return {"evaluate_seconds_without_loading": seconds, "note": note, "users_ranked": ranked,
            "projected_seconds_all_users": seconds * dataset.num_users / ranked}  # fmt: skip


def stage_register_and_serve(work: Path) -> dict:
    import mlflow
    import numpy as np
    import pandas as pd

    from movielens_pipeline.data.dataset import read_dataset
    from movielens_pipeline.serving.registry import log_pyfunc

    import shutil

    dataset = read_dataset(_open_in(work / "dataset"))
    for leftover in ("mlflow.db", "artifacts", "served"):  # a kept work folder's earlier registry
        path = work / leftover
        path.unlink() if path.is_file() else shutil.rmtree(path, ignore_errors=True)
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    # Artifacts in the work folder too, not in ./mlruns of whatever folder the benchmark ran from.
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("scale", (work / "artifacts").as_uri()))
    started = time.perf_counter()
    with mlflow.start_run():
        uri = log_pyfunc(_untrained("s3rec", dataset), dataset, "s3rec")
    version = mlflow.register_model(uri, "scale").version
    register_seconds = time.perf_counter() - started
    local = Path(mlflow.artifacts.download_artifacts(f"models:/scale/{version}", dst_path=str(work / "served")))
    artifact_mb = sum(f.stat().st_size for f in local.rglob("*") if f.is_file()) / 2**20
    model = mlflow.pyfunc.load_model(str(local))
    rng = np.random.default_rng(0)
    users = dataset.user_map["user_id"].to_numpy()[rng.integers(0, dataset.num_users, 1000)]
    items = dataset.item_map["item_id"].to_numpy()
    request = pd.DataFrame({"user_id": users.tolist(), "history": [items[rng.integers(0, len(items), 30)].tolist()
                                                                    for _ in range(1000)]})  # fmt: skip
    served = model.unwrap_python_model()

    def median_seconds(repeats: int = 15, warmup: int = 2) -> float:
        timings = []
        for i in range(warmup + repeats):
            began = time.perf_counter()
            model.predict(request, params={"k": 10})
            if i >= warmup:
                timings.append(time.perf_counter() - began)
        return float(np.median(timings))

    block_wise = median_seconds()
    # Reference, same request and process: the full [rows, items] score matrix, then top-k.
    scorer = served.recommender.score_fn
    served.recommender.score_fn = lambda users, histories: scorer(users, histories)  # not a DotProductScorer
    full_matrix = median_seconds()
    return {"register_seconds": register_seconds, "artifact_mb": artifact_mb,
            "serve_1000_rows_seconds_median": block_wise,
            "serve_1000_rows_full_score_matrix_seconds_median": full_matrix}  # fmt: skip


def stage_batch(work: Path) -> dict:
    """Every known user's top-10 through the model ``serve`` registered, as batch inference writes it."""
    import shutil

    import mlflow

    from movielens_pipeline.serving.batch import known_user_ids, write_recommendations

    model = mlflow.pyfunc.load_model(str(work / "served"))
    users = known_user_ids(model)
    shutil.rmtree(work / "batch", ignore_errors=True)
    started = time.perf_counter()
    summary = write_recommendations(model, users, 10, work / "batch")
    seconds = time.perf_counter() - started
    return {"users": summary.users, "rows": summary.rows, "parts": summary.parts,
            "rows_per_second": summary.rows / seconds, "write_seconds": seconds}  # fmt: skip


def _run(stage, *args) -> dict:
    started = time.perf_counter()
    result = stage(*args)
    return result | {"seconds": time.perf_counter() - started, "peak_rss_mb": _peak_rss_mb()}


def in_fresh_process(stage, *args) -> dict:
    """``stage`` in a new process, which may start workers of its own (a Pool's, daemonic, may not)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_run, stage, *args).result()


def chart(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(int(s) for s in results)
    stages = list(results[str(sizes[0])])
    fig, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    for stage in stages:
        present = [s for s in sizes if stage in results[str(s)]]
        time_axis.plot(present, [results[str(s)][stage]["seconds"] for s in present], marker="o", label=stage)
        memory_axis.plot(present, [results[str(s)][stage]["peak_rss_mb"] for s in present], marker="o", label=stage)
    reference = [sizes[0], sizes[-1]]
    for axis, label in ((time_axis, "wall seconds"), (memory_axis, "peak RSS, MB")):
        low = min(line.get_ydata().min() for line in axis.get_lines())
        axis.plot(reference, [low, low * reference[1] / reference[0]], "k--", linewidth=0.8, label="linear")
        axis.set(xscale="log", yscale="log", xlabel="ratings", ylabel=label)
    memory_axis.legend(fontsize=7)
    fig.suptitle("cost per step against ratings (2 cores)")
    fig.tight_layout()
    fig.savefig(CHART, dpi=100)


def _report(size: int, name: str, result: dict) -> dict:
    extra = {k: v for k, v in result.items() if k not in ("seconds", "peak_rss_mb")}
    print(f"{size:>11,} {name:<22}{result['seconds']:>8.1f} s {result['peak_rss_mb']:>8.0f} MB  {extra}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--models", nargs="+", default=["popularity", "ease", "lrml", "s3rec"])
    parser.add_argument("--stages", nargs="+", default=["data", "evaluate", "serve"],
                        help="data (generate, ingest, validate, build), evaluate, serve, batch")  # fmt: skip
    parser.add_argument("--work", type=Path, help="keep each size's files under WORK/SIZE and reuse them")
    parser.add_argument("--max-users", nargs="*", default=[], metavar="MODEL=N",
                        help="rank a seeded sample of N users for MODEL (its cost is then projected to all users)")
    args = parser.parse_args()
    started = time.perf_counter()
    results = json.loads(RESULTS.read_text())["sizes"] if RESULTS.exists() else {}
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix=f"scale-{size}-") as tmp:
            work = args.work / str(size) if args.work else Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            row = {}
            if "data" in args.stages:
                if not (work / "source" / "ratings.csv").exists():
                    row["generate"] = in_fresh_process(stage_generate, work, size)
                for name, stage in (("ingest", stage_ingest), ("validate", stage_validate), ("build", stage_build)):
                    row[name] = _report(size, name, in_fresh_process(stage, work))
            if "evaluate" in args.stages:
                max_users = {model: int(n) for model, n in (pair.split("=") for pair in args.max_users)}
                for model in args.models:
                    row[f"evaluate {model}"] = _report(size, f"evaluate {model}",
                                                       in_fresh_process(stage_evaluate, work, model, max_users.get(model)))
            if "serve" in args.stages:
                row["register + serve"] = _report(size, "register + serve", in_fresh_process(stage_register_and_serve, work))
            if "batch" in args.stages:
                row["batch top-10"] = _report(size, "batch top-10", in_fresh_process(stage_batch, work))
        results[str(size)] = results.get(str(size), {}) | row
        common.write_report({"sizes": results} | common.environment(started), RESULTS)
    chart(results)


if __name__ == "__main__":
    main()
