"""How much of the CPU's matmul throughput S3Rec finetuning uses, at MovieLens-100k size.

- Model FLOPs: torch's FlopCounterMode counts the matrix products (mm, bmm, addmm, attention)
  of one finetuning step, forward and backward, on a batch the finetuning task draws (the usual
  "model FLOPs" convention: elementwise work, softmax, LayerNorm and Adam count as zero).
- Step time: the median of real steps (batch drawing, forward, backward, Adam), split into those
  phases.
- Roofline, measured in the same process: the GFLOP/s of a large square float32 matmul, and of
  each of the model's own matmul shapes alone.
- Efficiency = model FLOPs / step time / roofline; a profile of a few steps by operator says where
  the rest of the time goes.

Run: .venv/bin/python benchmarks/efficiency.py [--batch-sizes 128 512] [--steps 20]
(writes benchmarks/results/efficiency.json)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from models.s3rec import S3Rec, S3RecConfig  # noqa: E402
from movielens_pipeline.training.s3rec import FinetuneConfig, NextItemTask, _adam  # noqa: E402

RESULTS = common.RESULTS_DIR / "efficiency.json"


def matmul_gflops(m: int, k: int, n: int, repeats: int = 10) -> float:
    """Median GFLOP/s of a float32 (m x k) @ (k x n) product, the output preallocated."""
    a, b, out = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
    torch.mm(a, b, out=out)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b, out=out)
        seconds.append(time.perf_counter() - started)
    return 2 * m * k * n / statistics.median(seconds) / 1e9


def finetuning_step_figures(dataset, model_config: S3RecConfig, batch_size: int, steps: int) -> dict:
    cfg = FinetuneConfig(batch_size=batch_size)
    torch.manual_seed(0)
    model = S3Rec(model_config)
    generator = torch.Generator().manual_seed(0)
    task = NextItemTask(model, dataset, cfg, generator, torch.device("cpu"))
    optimizer = _adam(model, cfg.lr)
    model.train()

    def row_ids():
        return torch.randint(0, task.num_rows, (batch_size,), generator=generator)

    with FlopCounterMode(display=False) as counter:
        task.loss(task.make_batch(row_ids()))["loss"].backward()
    flops = counter.get_total_flops()
    by_operator = {str(op): count for op, count in counter.get_flop_counts()["Global"].items()}

    phases: dict[str, list[float]] = {"batch": [], "forward": [], "backward": [], "adam": []}
    for step in range(steps + 2):  # the first two warm up
        marks = [time.perf_counter()]
        batch = task.make_batch(row_ids())
        marks.append(time.perf_counter())
        loss = task.loss(batch)["loss"]
        marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        marks.append(time.perf_counter())
        optimizer.step()
        marks.append(time.perf_counter())
        if step >= 2:
            for phase, begin, end in zip(phases, marks, marks[1:]):
                phases[phase].append(end - begin)
    step_seconds = statistics.median([sum(parts) for parts in zip(*phases.values())])

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        for _ in range(3):
            loss = task.loss(task.make_batch(row_ids()))["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    events = sorted(profile.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total_self = sum(e.self_cpu_time_total for e in events)
    return {
        "batch_size": batch_size,
        "model_flops_per_step": flops,
        "model_flops_by_operator": by_operator,
        "step_seconds_median": step_seconds,
        "phase_seconds_median": {phase: statistics.median(values) for phase, values in phases.items()},
        "model_gflops_per_second": flops / step_seconds / 1e9,
        "windows_per_second": batch_size / step_seconds,
        "profile_top_self_cpu_share": {e.key: e.self_cpu_time_total / total_self for e in events[:12]},
    }


def model_matmul_shapes(model_config: S3RecConfig, batch_size: int) -> dict[str, tuple[int, int, int]]:
    """(m, k, n) of the step's main products, as the model runs them (forward)."""
    tokens, hidden = batch_size * model_config.max_len, model_config.hidden_size
    return {
        "logits over the catalogue": (tokens, hidden, model_config.num_items + 1),
        "attention projections": (tokens, hidden, hidden),
        "feed-forward": (tokens, hidden, 4 * hidden),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    _, dataset = common.prepare("cpu", args.threads)
    model_config = S3RecConfig(num_items=dataset.num_items, num_attributes=dataset.num_attributes)
    roofline = matmul_gflops(2048, 2048, 2048)
    report = {"roofline_gflops_per_second": roofline, "roofline": "median float32 2048 x 2048 x 2048 torch.mm",
              "model": {"hidden_size": model_config.hidden_size, "num_layers": model_config.num_layers,
                        "max_len": model_config.max_len, "num_items": dataset.num_items, "loss": "ce"},
              "runs": []}  # fmt: skip
    for batch_size in args.batch_sizes:
        figures = finetuning_step_figures(dataset, model_config, batch_size, args.steps)
        figures["efficiency_vs_roofline"] = figures["model_gflops_per_second"] / roofline
        figures["model_shapes_gflops_per_second"] = {
            name: {"m_k_n": shape, "gflops_per_second": matmul_gflops(*shape)}
            for name, shape in model_matmul_shapes(model_config, batch_size).items()
        }
        report["runs"].append(figures)
        phases = {phase: round(seconds * 1e3, 1) for phase, seconds in figures["phase_seconds_median"].items()}
        print(f"batch {batch_size}: {figures['model_flops_per_step'] / 1e9:.2f} GFLOP per step, "
              f"{figures['step_seconds_median'] * 1e3:.0f} ms per step (ms: {phases}) -> "
              f"{figures['model_gflops_per_second']:.1f} GFLOP/s = {figures['efficiency_vs_roofline']:.0%} "
              f"of the {roofline:.1f} GFLOP/s roofline", flush=True)  # fmt: skip
    report |= common.environment(started)
    common.write_report(report, RESULTS)
    print(common.footer(report, RESULTS))


if __name__ == "__main__":
    main()
