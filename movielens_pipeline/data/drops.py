"""New rating drops on top of the base data: each file is checked on its own before it is used.

A drop is a CSV or Parquet file in the drops folder with the interactions schema (user_id,
item_id, rating, timestamp). Drops are applied in file-name order. A drop that breaks the
interactions contract (or names items the catalogue does not know) is rejected whole, with its
report, and the drops after it are still used: nothing of a rejected drop reaches training.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from movielens_pipeline.data import contracts
from movielens_pipeline.data.local_files import load_ratings_file
from movielens_pipeline.data.raw import RawData, SourceError

DROP_SUFFIXES = {".csv", ".parquet", ".pq"}
DROP_COLUMNS = {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp"}


@dataclass
class DropOutcome:
    name: str
    sha256: str
    rows: int
    accepted: bool
    reason: str  # empty when accepted
    report_html: str | None = None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def drop_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"drops folder {folder} does not exist")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in DROP_SUFFIXES)


def apply_drops(base: RawData, folder: str | Path) -> tuple[RawData, list[DropOutcome]]:
    """The base data plus every drop that passes its contract; one outcome per drop file."""
    accepted_frames, outcomes = [], []
    for path in drop_files(folder):
        sha = file_sha256(path)
        try:
            drop = load_ratings_file(path, columns=DROP_COLUMNS).interactions
        except (SourceError, ValueError, KeyError) as error:
            outcomes.append(DropOutcome(path.name, sha, 0, False, f"unreadable: {error}"))
            continue
        report = contracts.validate_tables(
            drop, base.items, base.item_attributes,
            min_interactions_per_user=1,  # a week's drop may hold one rating of a user
            require_item_attributes=False,
        )  # fmt: skip
        if report.success:
            accepted_frames.append(drop)
            outcomes.append(DropOutcome(path.name, sha, len(drop), True, ""))
        else:
            outcomes.append(
                DropOutcome(path.name, sha, len(drop), False, report.failure_message(), report.to_html())
            )
    if not accepted_frames:
        return base, outcomes
    merged = pd.concat([base.interactions, *accepted_frames], ignore_index=True)
    # A drop may resend events the base already has; keep one copy of each.
    merged = merged.drop_duplicates(["user_id", "item_id", "timestamp"], keep="first").reset_index(drop=True)
    return replace(base, interactions=merged), outcomes


def input_fingerprint(source: dict, base_filter: dict, outcomes: list[DropOutcome]) -> str:
    """Identifies exactly which inputs a run trained on: the source spec and the accepted drops."""
    accepted = [(o.name, o.sha256) for o in outcomes if o.accepted]
    blob = json.dumps({"source": source, "filter": base_filter, "drops": accepted}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Ingested:
    """What a run reads: the source's tables plus accepted drops, each drop's outcome, and the
    fingerprint that identifies exactly these inputs."""

    source: dict
    raw: RawData
    drops: list[DropOutcome]
    input_fingerprint: str

    def summary(self) -> dict[str, Any]:
        interactions = self.raw.interactions
        return {
            "source": {k: str(v) for k, v in self.source.items()},
            "input_fingerprint": self.input_fingerprint,
            "drops": {o.name: {"sha256": o.sha256, "rows": o.rows, "accepted": o.accepted} for o in self.drops},
            "interactions": len(interactions),
            "users": int(interactions["user_id"].nunique()),
            "items": len(self.raw.items),
            "attribute_types": sorted(self.raw.item_attributes["attribute_type"].unique().tolist()),
        }


def ingest(base: RawData, source: dict, drops_dir: str | Path | None, until_timestamp: int | None) -> Ingested:
    """The base data (up to ``until_timestamp`` when set: backtests, replays) plus every valid drop."""
    if until_timestamp is not None:
        base = replace(base, interactions=base.interactions[base.interactions["timestamp"] <= until_timestamp])
    outcomes: list[DropOutcome] = []
    if drops_dir:
        base, outcomes = apply_drops(base, drops_dir)
    fingerprint = input_fingerprint(source, {"until_timestamp": until_timestamp}, outcomes)
    return Ingested(source, base, outcomes, fingerprint)
