"""S3Rec as published: the paper's own data (LastFM, Toys_and_Games from the authors' repository),
its protocol, its setting and this project's, with and without pretraining, beside strong
baselines (EASE with its L2 chosen on validation, BPR-MF, LRML, popularity).

Settings (each S3Rec variant finetuned from the same pretraining of its seed, or from scratch):
- ``paper``: the authors' finetuning (BCE with one sampled negative per position, batch 256,
  lr 1e-3, one row per user, patience 10 on validation MRR against 99 sampled negatives);
- ``project``: this project's finetuning defaults (``FinetuneConfig()``).
Pretraining, one per seed: the paper's defaults (AAP 0.2, MIP 1, MAP 1, SP 0.5, mask 0.2, batch
100, lr 1e-3, ``--pretrain-epochs``, 150 in the paper) on ``--pretrain-rows`` (``prefixes``: every
prefix of the last 50 training items, as the authors' code; ``last``: one row per user), or the
authors' released epoch-150 checkpoint (``--official-checkpoints``, a folder holding
``<name>-epochs-150.pt``; mapped by ``training.official_checkpoint``) as the ``official`` variant.

Protocol: leave-one-out (last item test, second-to-last validation), seen items excluded; full
ranking over every item (ties count against the target) and the paper's 99 negatives drawn
uniformly outside the user's whole sequence (one seeded draw for every model). MRR counts ranks
below 20 under full ranking (the rest add under 1/21 each) and every rank among the 100 under
the sampled protocol.

Every finished model is kept in ``--work`` (ranks per user as .npz, figures as .json), so a run
that stops resumes where it was (a pretraining from its last finished epoch); delete a file to
recompute it. The report pairs each pretrained variant with the one without pretraining per user
(NDCG@10 averaged over the seeds) in a bootstrap.

Run: .venv/bin/python benchmarks/s3rec_paper.py --datasets LastFM --seeds 42 1 2 [--settings paper project]
     [--variants none pretrained default_pretraining official]  (``official`` needs --official-checkpoints)
     [--user-fractions 0.1 0.25 0.5 1]  (a seeded share of the users, each with its own pretraining)
     [--drop-last 1]  (every user's last item removed first: the split one item earlier, same users)
     [--model max_len=100 hidden_dropout=0.3]  (an architecture sweep, without pretraining)
     [--pretraining-fit]  (each pretraining's and the authors' checkpoint's losses on one fixed draw)
     [--default-pretraining-epochs 10]  (the pipeline's pretraining at another length)
     [--device cuda] [--pretrain-minutes M]  (S3Rec trains on the GPU; a wall-clock cap on each pretraining)
     [--pretrain-snapshots 20 40]  (with --pretrain-epochs 150: also the 20- and 40-epoch pretrainings, on the way)
     [--results benchmarks/results/other.json]
(writes benchmarks/results/s3rec_paper.json and s3rec_paper.png, or --results and its plots)
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from models.s3rec import S3Rec  # noqa: E402
from movielens_pipeline.data.dataset import SequenceDataset  # noqa: E402
from movielens_pipeline.evaluation.protocols import PROTOCOLS, paired_bootstrap  # noqa: E402
from movielens_pipeline.families import load_recommender  # noqa: E402
from movielens_pipeline.training.checkpoints import CheckpointStore, config_fingerprint  # noqa: E402
from movielens_pipeline.training.official_checkpoint import load_official_checkpoint  # noqa: E402
from movielens_pipeline.training.pairwise import BPRTrainConfig, LRMLTrainConfig, train_bpr, train_lrml  # noqa: E402
from movielens_pipeline.training.runtime import pick_device  # noqa: E402
from movielens_pipeline.training.s3rec import (  # noqa: E402
    FinetuneConfig,
    PretrainConfig,
    S3RecHyperparameters,
    finetune,
    pretrain,
    pretraining_losses,
    s3rec_config,
)
from movielens_pipeline.training.trained_model import load_trained_model, save_trained_model  # noqa: E402

RESULTS = common.RESULTS_DIR / "s3rec_paper.json"
DEFAULT_WORK = Path(__file__).resolve().parents[1] / ".cache" / "s3rec_paper"

# NDCG@10 / HR@10 on exactly these files (see ../shared/reference/models.md).
PUBLISHED = {
    "LastFM": {
        "sampled": {"sasrec": (0.2605, 0.4587), "s3rec": (0.3577, 0.6083)},
        "full": {"sasrec": (0.0390, 0.0688), "s3rec": (0.0427, 0.0743), "best later work (BSARec)": (0.0435, None)},
    },
    "Toys_and_Games": {
        "sampled": {"sasrec": (0.3081, 0.4659), "s3rec": (0.3695, 0.5593)},
        "full": {"sasrec": (0.0374, 0.0675), "s3rec": (0.0376, 0.0700), "best later work (ICSRec)": (0.0657, None)},
    },
}

SETTINGS = {
    "paper": FinetuneConfig(loss="bce", batch_size=256, lr=1e-3, rows="last", validation_metric="sampled_mrr",
                            validation_users=1_000_000),
    "project": FinetuneConfig(),
}


# Where finetuning starts: from scratch, this seed's own pretraining with the paper's settings,
# this seed's pretraining with the pipeline's defaults (``PretrainConfig()``), the authors' checkpoint.
VARIANTS = ("none", "pretrained", "default_pretraining", "official")


def paper_pretraining(epochs: int, rows: str, seed: int, max_minutes: float | None = None) -> PretrainConfig:
    return PretrainConfig(epochs=epochs, batch_size=100, lr=1e-3, mask_prob=0.2, aap_weight=0.2, mip_weight=1.0,
                          map_weight=1.0, sp_weight=0.5, rows=rows, seed=seed, max_minutes=max_minutes)  # fmt: skip


def time_cap_label(cfg: PretrainConfig) -> str:
    """A pretraining's wall-clock cap in run names: a capped pretraining stops early, so it never
    shares a finished model or figures with the full one."""
    return f"max{cfg.max_minutes:g}min" if cfg.max_minutes is not None else ""


class SnapshottingCheckpoints(CheckpointStore):
    """A pretraining's per-epoch checkpoints that also leave, at each epoch of ``snapshots``, a
    finished checkpoint of the pretraining that stops at that epoch: the first N epochs of a longer
    pretraining are the same computation (no schedule depends on the epoch count), so an N-epoch
    pretraining then finetunes from it without training again."""

    def __init__(self, root: Path, job: str, fingerprint: str, snapshots: dict[int, CheckpointStore]):
        super().__init__(root, job, fingerprint)
        self.snapshots = snapshots

    def save(self, state: dict) -> None:
        super().save(state)
        snapshot = self.snapshots.get(state["epoch"])
        if snapshot is not None and not snapshot.path.exists():  # an earlier run's snapshot stands
            snapshot.save(state | {"finished": True})


def pretrained_weights(store: common.Store, dataset, model_config, seed: int, cfg: PretrainConfig, name: str,
                       device: torch.device,
                       snapshots: dict[int, tuple[PretrainConfig, str]] | None = None):  # fmt: skip
    """This seed's pretraining (trained once, kept in the store for every setting). A killed one
    resumes after its last finished epoch (the checkpoint is keyed by its config and the data).
    ``snapshots``: {epoch: (config, name)} of shorter pretrainings to leave finished on the way."""

    def checkpoints_of(cfg: PretrainConfig, name: str) -> tuple[Path, str, str]:
        return store.folder / "checkpoints", f"{name}-seed{seed}", config_fingerprint(cfg, model_config, dataset.stats)

    folder = store.folder / f"{name}-seed{seed}"
    if (folder / "model.json").exists():
        return load_trained_model(folder)
    shorter = {epoch: CheckpointStore(*checkpoints_of(*run)) for epoch, run in (snapshots or {}).items()}
    checkpoints = SnapshottingCheckpoints(*checkpoints_of(cfg, name), shorter)
    trained, wall = common.timed(pretrain, dataset, model_config, cfg, device, checkpoints=checkpoints)
    trained.summary["wall_seconds"] = wall
    save_trained_model(trained, folder)
    return trained


def s3rec_runs(store: common.Store, dataset: SequenceDataset, name: str, seed: int, args) -> None:
    overrides = dict(item.split("=", 1) for item in args.model)
    model_config = s3rec_config(dataset, S3RecHyperparameters(**overrides))
    # Runs of another architecture are kept under their own names; the report pairs a pretrained
    # variant with the default architecture's none, so sweep architectures without pretraining.
    architecture = "".join(f"-{key}{value}" for key, value in sorted(overrides.items()))

    def paper_run(epochs: int) -> tuple[PretrainConfig, str]:
        cfg = paper_pretraining(epochs, args.pretrain_rows, seed, args.pretrain_minutes)
        return cfg, f"pretrained-{cfg.rows}-{cfg.epochs}{time_cap_label(cfg)}{architecture}"

    paper, paper_name = paper_run(args.pretrain_epochs)
    snapshots = {epochs: paper_run(epochs) for epochs in args.pretrain_snapshots if epochs < args.pretrain_epochs}
    # The pipeline's pretraining at another length is named after its epochs (the default's name has none).
    default = PretrainConfig(seed=seed, epochs=args.default_pretraining_epochs)
    default_epochs = default.epochs if default.epochs != PretrainConfig().epochs else ""
    starts = {
        "none": lambda: None,
        "pretrained": lambda: pretrained_weights(store, dataset, model_config, seed, paper, paper_name, args.device,
                                                 snapshots),
        "default_pretraining": lambda: pretrained_weights(
            store, dataset, model_config, seed, default, f"default-pretraining{default_epochs}{architecture}",
            args.device),
    }  # fmt: skip
    checkpoint = args.official_checkpoints / f"{name}-epochs-150.pt" if args.official_checkpoints else None
    if checkpoint is not None and checkpoint.exists():
        starts["official"] = lambda: load_official_checkpoint(checkpoint, dataset, S3Rec(model_config))
    for setting in args.settings:
        for variant, start in starts.items():
            if variant not in args.variants:
                continue
            key = f"s3rec-{setting}-{variant}" + (f"-{paper.rows}{paper.epochs}{time_cap_label(paper)}"
                                                  if variant == "pretrained" else "")
            key += str(default_epochs) if variant == "default_pretraining" else ""
            key += f"{architecture}-seed{seed}"

            def make():
                initial = start()
                cfg = SETTINGS[setting].model_copy(update={"seed": seed} | (
                    {"epochs": args.finetune_epochs} if args.finetune_epochs else {}))
                trained, wall = common.timed(finetune, dataset, model_config, cfg, args.device, pretrained=initial)
                figures, ranks = common.evaluate_both_protocols(key, load_recommender(trained).score_fn, dataset)
                pretraining = initial.summary if initial is not None else {}
                return figures | {"finetune_seconds": wall, "pretrain_seconds": pretraining.get("wall_seconds", 0.0),
                                  "pretrain_epochs": pretraining.get("epochs_run"), "device": str(args.device),
                                  "best_epoch": trained.summary["best_epoch"],
                                  "epochs_run": trained.summary["epochs_run"]}, ranks  # fmt: skip

            common.run_or_load(store, key, make)


def pretraining_fit(store: common.Store, dataset: SequenceDataset, name: str, args) -> dict[str, dict]:
    """The paper's pretraining losses (per row, on every prefix row, one fixed draw, dropout off)
    of every pretraining in the store, of the authors' checkpoint and of an untrained model."""
    model_config = s3rec_config(dataset)
    starts = {"untrained": None}
    for saved in sorted(store.folder.glob("*/model.json")):  # the store keeps only pretrainings as folders
        starts[saved.parent.name] = load_trained_model(saved.parent)
    checkpoint = args.official_checkpoints / f"{name}-epochs-150.pt" if args.official_checkpoints else None
    if checkpoint is not None and checkpoint.exists():
        starts["official"] = load_official_checkpoint(checkpoint, dataset, S3Rec(model_config))
    fits = {}
    for start, trained in starts.items():
        model = S3Rec(model_config)
        if trained is not None:
            model.load_state_dict(trained.state_dict)
        fits[start] = pretraining_losses(model, dataset, paper_pretraining(1, "prefixes", seed=0))
        logging.info("%s %s pretraining losses: %s", name, start, fits[start])
    return fits


def baseline_runs(store: common.Store, dataset: SequenceDataset, seeds: list[int], parts: list[str]) -> None:
    if "baselines" in parts:
        common.baselines(store, dataset)
    trainers = {"lrml": (train_lrml, LRMLTrainConfig), "bpr": (train_bpr, BPRTrainConfig)}
    for model in ("lrml", "bpr"):
        if model not in parts:
            continue
        train, config_type = trainers[model]
        for seed in seeds:
            def make(train=train, config_type=config_type, seed=seed, model=model):
                trained, wall = common.timed(train, dataset, None, config_type(seed=seed))
                figures, ranks = common.evaluate_both_protocols(model, load_recommender(trained).score_fn, dataset,
                                                                history_free=True)  # fmt: skip
                return figures | {"train_seconds": wall, "best_epoch": trained.summary["best_epoch"]}, ranks

            common.run_or_load(store, f"{model}-seed{seed}", make)


def summarise(store: common.Store, dataset: SequenceDataset) -> dict:
    """Mean figures over seeds per model, and each pretrained variant against no pretraining over
    the seeds both have."""
    history = np.diff(dataset.offsets) - 1
    groups: dict[str, dict[str, tuple]] = {}
    for meta in sorted(store.folder.glob("*.json")):
        base, _, seed = meta.stem.partition("-seed")
        groups.setdefault(base, {})[seed] = store.get(meta.stem)
    models = {}
    for base, by_seed in groups.items():
        figures = [f for f, _ in by_seed.values()]
        numeric = [k for k, v in figures[0].items() if isinstance(v, (int, float))]
        models[base] = {"seeds": len(figures)} | {k: statistics.fmean(f[k] for f in figures) for k in numeric} | {
            f"{k}_per_seed": [f[k] for f in figures] for k in ("ndcg_at_10", "sampled_ndcg_at_10")}
    comparisons, against_ease, against_default = {}, {}, {}
    ease = _per_user_ndcg_mean(groups["ease"].values(), "test_full") if "ease" in groups else None
    for base, by_seed in groups.items():
        run = RUN_NAME.match(base)
        if run is None:
            continue
        if ease is not None:
            against_ease[base] = paired_bootstrap(_per_user_ndcg_mean(by_seed.values(), "test_full"), ease)
        # The pipeline's pretraining at another length against its default length, over the seeds both have.
        default = groups.get(f"s3rec-{run['setting']}-default_pretraining{run['architecture']}", {})
        if re.fullmatch(r"default_pretraining\d+", run["variant"]):
            shared = sorted(by_seed.keys() & default.keys())
            if shared:
                against_default[base] = {"seeds": shared} | paired_bootstrap(
                    _per_user_ndcg_mean([by_seed[s] for s in shared], "test_full"),
                    _per_user_ndcg_mean([default[s] for s in shared], "test_full"))  # fmt: skip
        # Each pretrained variant against no pretraining of the same setting and architecture.
        reference = groups.get(f"s3rec-{run['setting']}-none{run['architecture']}", {})
        seeds = sorted(by_seed.keys() & reference.keys())
        if run["variant"] == "none" or not seeds:
            continue
        comparisons[base] = {"seeds": seeds}
        for protocol in PROTOCOLS:
            treated = _per_user_ndcg_mean([by_seed[s] for s in seeds], f"test_{protocol}")
            control = _per_user_ndcg_mean([reference[s] for s in seeds], f"test_{protocol}")
            comparisons[base][protocol] = paired_bootstrap(treated, control)
            comparisons[base][f"{protocol}_by_history_length"] = _by_history_length(treated, control, history)
    return {"dataset": dataset.stats, "models": models, "pretrained_minus_none": comparisons,
            "minus_ease_full": against_ease, "minus_default_pretraining_full": against_default}


# s3rec-<setting>-<variant>[-<rows><epochs>[max<minutes>min]][-<field><value>...], as s3rec_runs names its runs.
RUN_NAME = re.compile(r"^s3rec-(?P<setting>[a-z]+)-"
                      r"(?P<variant>none|default_pretraining\d*|official|pretrained-[a-z]+\d+(max[\d.]+min)?)"
                      r"(?P<architecture>(-[a-z_]+[\d.]+)*)$")


# Users grouped by the items their test prediction sees (both datasets keep users with 5 or more).
HISTORY_LENGTH_GROUPS = ((4, 4), (5, 7), (8, 15), (16, 49), (50, None))


def _by_history_length(treated: np.ndarray, control: np.ndarray, history: np.ndarray) -> list[dict]:
    """Pretrained minus none within each history-length group: where pretraining pays."""
    rows = []
    for low, high in HISTORY_LENGTH_GROUPS:
        members = (history >= low) & (history <= (high or history.max()))
        if members.any():
            label = str(low) if high == low else f"{low}-{high}" if high else f"{low}+"
            rows.append({"history": label, "users": int(members.sum()), "none": float(control[members].mean()),
                         "pretrained": float(treated[members].mean())}
                        | paired_bootstrap(treated[members], control[members]))  # fmt: skip
    return rows


def _per_user_ndcg_mean(runs, split_protocol: str) -> np.ndarray:
    """Per-user NDCG@10 averaged over the seeds of one model."""
    values = [np.where(r[split_protocol] < 10, 1.0 / np.log2(r[split_protocol] + 2.0), 0.0) for _, r in runs]
    return np.mean(values, axis=0)


def in_natural_order(names) -> list[str]:
    """Run names with their numbers compared as numbers: prefixes20 before prefixes100."""
    return sorted(names, key=lambda name: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)])


def print_table(name: str, summary: dict) -> None:
    print(f"\n{name}: {summary['dataset']['num_users']:,} users, {summary['dataset']['num_items']:,} items, "
          f"{summary['dataset']['num_interactions']:,} interactions; test, seen items excluded")  # fmt: skip
    header = f"{'model':<44}{'seeds':>6}" + "".join(f"{h:>9}" for h in ("HR@10", "NDCG@10", "MRR", "sHR@10",
                                                                          "sNDCG@10", "sMRR"))  # fmt: skip
    print(header)
    for model in in_natural_order(summary["models"]):
        f = summary["models"][model]
        print(f"{model:<44}{f['seeds']:>6}" + "".join(
            f"{f[k]:>9.4f}" for k in ("hit_at_10", "ndcg_at_10", "mrr", "sampled_hit_at_10", "sampled_ndcg_at_10",
                                      "sampled_mrr")))  # fmt: skip
    for protocol in PROTOCOLS if "user_fraction" not in summary["dataset"] else ():
        for model, (ndcg, hit) in PUBLISHED.get(name, {}).get(protocol, {}).items():
            label = f"published {model} ({protocol})"
            print(f"{label:<50}" + ("" if protocol == "full" else " " * 27) + f"{hit or float('nan'):>9.4f}{ndcg:>9.4f}")
    for model, comparison in summary["pretrained_minus_none"].items():
        for protocol in PROTOCOLS:
            c = comparison[protocol]
            print(f"{model} - none ({protocol} NDCG@10, seeds {', '.join(comparison['seeds'])}): "
                  f"{c['mean_difference']:+.4f} (95% CI {c['ci_low']:+.4f} .. {c['ci_high']:+.4f})")  # fmt: skip
            for group in comparison[f"{protocol}_by_history_length"]:
                print(f"    history {group['history']:>6} ({group['users']:>6,} users): {group['none']:.4f} -> "
                      f"{group['pretrained']:.4f}, {group['mean_difference']:+.4f} "
                      f"({group['ci_low']:+.4f} .. {group['ci_high']:+.4f})")  # fmt: skip
    for model, c in summary.get("minus_default_pretraining_full", {}).items():
        print(f"{model} - default_pretraining (full NDCG@10, seeds {', '.join(c['seeds'])}): "
              f"{c['mean_difference']:+.4f} (95% CI {c['ci_low']:+.4f} .. {c['ci_high']:+.4f})")  # fmt: skip
    for model, c in summary.get("minus_ease_full", {}).items():
        print(f"{model} - EASE (full NDCG@10, mean over its seeds): {c['mean_difference']:+.4f} "
              f"(95% CI {c['ci_low']:+.4f} .. {c['ci_high']:+.4f})")  # fmt: skip


def plot(summaries: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(summaries), 2, figsize=(12, 3.2 * len(summaries)), squeeze=False)
    for row, (name, summary) in enumerate(summaries.items()):
        for column, protocol in enumerate(PROTOCOLS):
            ax = axes[row][column]
            key = "ndcg_at_10" if protocol == "full" else "sampled_ndcg_at_10"
            models = in_natural_order(summary["models"])
            values = [summary["models"][m][key] for m in models]
            ax.barh(models, values, color=["#4c72b0" if m.startswith("s3rec") else "#999999" for m in models])
            for label, (ndcg, _) in PUBLISHED.get(name, {}).get(protocol, {}).items():
                ax.axvline(ndcg, linestyle="--", linewidth=1, color="#c44e52")
                ax.text(ndcg, len(models) - 0.5, f" {label}", fontsize=7, color="#c44e52", rotation=90, va="top")
            ax.set_title(f"{name}: test NDCG@10, {protocol} ranking", fontsize=9)
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_user_fractions(summaries: dict[str, dict], path: Path) -> None:
    """Full-ranking NDCG@10 with and without each pretraining against the share of users kept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_fractions = {name: s for name, s in summaries.items() if s.get("user_fractions")}
    if not with_fractions:
        return
    fig, axes = plt.subplots(1, len(with_fractions), figsize=(6 * len(with_fractions), 3.6), squeeze=False)
    for ax, (name, summary) in zip(axes[0], with_fractions.items()):
        points = [*summary["user_fractions"].values(), summary]  # keep_users records each share in its stats
        for model in sorted({m for s in points for m in s["models"] if m.startswith("s3rec-project")}):
            curve = sorted((100 * s["dataset"].get("user_fraction", 1.0), s["models"][model]["ndcg_at_10"])
                           for s in points if model in s["models"])  # fmt: skip
            ax.plot(*zip(*curve), marker="o", label=model.removeprefix("s3rec-project-"))
        ax.set_xlabel("share of users kept (%)")
        ax.set_ylabel("test NDCG@10, full ranking")
        ax.set_title(f"{name}: project setting, pretraining on the kept users only", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _fraction_folder(fraction: float) -> str:
    return "" if fraction == 1 else f"users-{round(fraction * 100):03d}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=common.S3REC_DATA)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="finished models are kept here")
    parser.add_argument("--datasets", nargs="+", default=["LastFM", "Toys_and_Games"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--parts", nargs="+", default=["s3rec", "baselines", "lrml", "bpr"],
                        choices=["s3rec", "baselines", "lrml", "bpr"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--pretrain-epochs", type=int, default=150)
    parser.add_argument("--default-pretraining-epochs", type=int, default=PretrainConfig().epochs,
                        help="epochs of the default_pretraining variant (the pipeline's pretraining)")
    parser.add_argument("--pretrain-minutes", type=float, default=None,
                        help="wall-clock cap on each pretraining (its epochs run are reported)")
    parser.add_argument("--pretrain-snapshots", type=int, nargs="*", default=[], metavar="EPOCHS",
                        help="leave the paper's pretraining at these epochs as finished pretrainings of that length "
                             "(finetuned later with --pretrain-epochs EPOCHS, without pretraining again)")
    parser.add_argument("--pretrain-rows", default="prefixes", choices=["prefixes", "last", "windows"])
    parser.add_argument("--device", default="cpu", help="where S3Rec trains: cpu, cuda or auto (evaluation: CPU)")
    parser.add_argument("--official-checkpoints", type=Path, default=None,
                        help="folder with the authors' <name>-epochs-150.pt (finetuned as the 'official' variant)")
    parser.add_argument("--model", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="S3Rec architecture overrides, e.g. max_len=100 hidden_dropout=0.3")
    parser.add_argument("--user-fractions", type=float, nargs="+", default=[1.0],
                        help="shares of the users to train and evaluate on (a seeded draw; 1: all)")
    parser.add_argument("--drop-last", type=int, default=0,
                        help="drop each user's last N items first: the split N items earlier in time (same users)")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="cap on finetuning epochs (smoke runs)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--report-only", action="store_true", help="summarise what the work folder holds")
    parser.add_argument("--pretraining-fit", action="store_true",
                        help="also report how well each pretraining (and the authors' checkpoint) fits the paper's objectives")
    parser.add_argument("--results", type=Path, default=None,
                        help=f"report JSON (its plots are written beside it, named after it); {RESULTS.name} for the "
                             "default --work, required for any other, so that its runs never merge into that report")
    args = parser.parse_args()
    if args.results is None and args.work.resolve() != DEFAULT_WORK:
        parser.error(f"--work {args.work} needs --results: {RESULTS} reports the default work folder only")
    if args.drop_last and args.work.resolve() == DEFAULT_WORK:
        parser.error("--drop-last needs its own --work: the default one holds the published split's runs")
    args.results = args.results or RESULTS
    args.device = pick_device(args.device)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    summaries = {}
    for name in args.datasets:
        dataset = common.drop_last_items(common.load_benchmark_dataset(args.data_dir, name), args.drop_last)
        for fraction in args.user_fractions:
            kept = dataset if fraction == 1 else common.keep_users(dataset, fraction)
            store = common.Store(args.work / name / _fraction_folder(fraction))
            if not args.report_only:
                if "s3rec" in args.parts:
                    for seed in args.seeds:
                        s3rec_runs(store, kept, name, seed, args)
                baseline_runs(store, kept, args.seeds, args.parts)
        summaries[name] = summarise(common.Store(args.work / name), dataset) | {"published": PUBLISHED.get(name, {})}
        if args.pretraining_fit:
            summaries[name]["pretraining_fit"] = pretraining_fit(common.Store(args.work / name), dataset, name, args)
        print_table(name, summaries[name])
        # Every share of users run so far, each with its own pretraining on that share only.
        for folder in sorted((args.work / name).glob("users-*")):
            fraction = float(folder.name.split("-")[1]) / 100
            summary = summarise(common.Store(folder), common.keep_users(dataset, fraction))
            summaries[name].setdefault("user_fractions", {})[folder.name] = summary
            print_table(name, summary)
    results = args.results
    existing = json.loads(results.read_text()) if results.exists() else {}
    report = existing | {
        "protocol": "leave-one-out; full ranking (seen items excluded, pessimistic ties) and 99 sampled negatives",
        "settings": {name: cfg.as_dict() for name, cfg in SETTINGS.items()},
        "pretraining": paper_pretraining(args.pretrain_epochs, args.pretrain_rows, 0).as_dict() | {"seed": "per run"},
        "datasets": existing.get("datasets", {}) | summaries,
    } | common.environment(started)
    common.write_report(report, results)
    plot(report["datasets"], results.with_suffix(".png"))
    plot_user_fractions(report["datasets"], results.with_name(f"{results.stem}_user_fractions.png"))
    print(common.footer(report, results))


if __name__ == "__main__":
    main()
