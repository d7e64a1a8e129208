"""Human-readable results: the comparison page and chart, and the console table `make run` prints."""

from __future__ import annotations

import base64
import io

import pandas as pd

HEADLINE = ["hit_at_10", "ndcg_at_10", "mrr_at_10", "hit_at_20", "ndcg_at_20", "coverage_at_10"]
SAMPLED = ["sampled_hit_at_10", "sampled_ndcg_at_10"]


def format_results(table: pd.DataFrame) -> str:
    """The test tables ``make run`` ends with; baselines are marked, since they are never registered."""
    from movielens_pipeline.evaluation.baselines import BASELINES

    test = table[table["split"] == "test"].set_index("model").sort_values("ndcg_at_10", ascending=False)
    test.index = [f"{name} (baseline)" if name in BASELINES else name for name in test.index]
    with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 160):
        return (
            "Test, full ranking over all items, seen items excluded (headline):\n"
            f"{test[HEADLINE].to_string()}\n\n"
            "Test, target vs 99 sampled unseen items (papers' protocol):\n"
            f"{test[SAMPLED].to_string()}\n\n"
            "Baselines are for comparison and never registered; the registry candidate is the trained "
            "model best on validation NDCG@10."
        )


def comparison_chart_png(table: pd.DataFrame, split: str = "test") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table[table["split"] == split].set_index("model")
    columns = ["hit_at_10", "ndcg_at_10", "sampled_hit_at_10", "sampled_ndcg_at_10"]
    fig, ax = plt.subplots(figsize=(9, 4))
    rows[columns].plot.bar(ax=ax, rot=0)
    ax.set_ylabel("score")
    ax.set_title(f"{split}: full ranking (seen excluded) vs 99 sampled negatives")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def comparison_html(table: pd.DataFrame, bootstrap: dict, chart_png: bytes, notes: dict[str, str] | None = None) -> str:
    def section(split: str, prefix: str, title: str) -> str:
        rows = table[table["split"] == split].set_index("model")
        columns = [c for c in rows.columns if c.startswith(prefix) and "_at_" in c]
        if prefix == "":
            columns = [c for c in rows.columns if not c.startswith("sampled_") and c != "split"]
        return f"<h3>{title}</h3>" + rows[columns].to_html(float_format=lambda v: f"{v:.4f}")

    chart = base64.b64encode(chart_png).decode()
    verdict = ""
    if bootstrap:
        verdict = (
            f"<p>Best on test {bootstrap['metric']}: <b>{bootstrap['best']}</b>, ahead of "
            f"{bootstrap['runner_up']} by {bootstrap['mean_difference']:.4f} "
            f"(95% paired bootstrap CI {bootstrap['ci_low']:.4f} to {bootstrap['ci_high']:.4f}).</p>"
        )
    verdict += "".join(f"<p>{name}: {text}.</p>" for name, text in (notes or {}).items())
    short = table.get("sampled_users_with_fewer_negatives")
    if short is not None and short.max() > 0:
        verdict += (f"<p>Sampled protocol: {int(short.max())} users have fewer than 99 unseen items and are "
                    "ranked against all of them.</p>")
    return (
        "<html><head><meta charset='utf-8'><style>body{font-family:sans-serif}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "</style></head><body><h2>Model comparison</h2>"
        + verdict
        + section("test", "", "Test, full ranking over all items, seen items excluded (headline)")
        + section("test", "sampled_", "Test, 99 sampled negatives per user (papers' protocol)")
        + section("valid", "", "Validation, full ranking")
        + f"<img src='data:image/png;base64,{chart}'/></body></html>"
    )


def png_to_image(png: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(png))
