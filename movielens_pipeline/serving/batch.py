"""Batch recommendations: every known user's (or a given list's) top-k from a registered model,
through the served model itself (the same code and request contract as ``mlflow models serve``),
written as Parquet parts of at most ``rows_per_part`` users, so memory stays bounded at any
number of users; and publication of such a table into a database.

Columns: ``user_id, rank, item_id, title, score, fallback`` (rank from 1; ``fallback`` is
"popularity" where the model had nothing to go on, e.g. a user id it does not know, else "").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from movielens_pipeline.serving.pyfunc import MAX_ROWS

COLUMNS = ("user_id", "rank", "item_id", "title", "score", "fallback")
SCHEMA = pa.schema([("user_id", pa.int64()), ("rank", pa.int16()), ("item_id", pa.int64()), ("title", pa.string()),
                    ("score", pa.float64()), ("fallback", pa.string())])  # fmt: skip


def known_user_ids(model) -> np.ndarray:
    """The user ids a loaded pyfunc recommender knows, ascending."""
    return np.sort(np.fromiter(model.unwrap_python_model().user_index, dtype=np.int64))


def read_user_list(path: str | Path) -> np.ndarray:
    """User ids from a file: CSV with a ``user_id`` column (or a single column), or Parquet."""
    path = Path(path)
    frame = pd.read_parquet(path) if path.suffix.lower() in {".parquet", ".pq"} else pd.read_csv(path)
    column = "user_id" if "user_id" in frame.columns else frame.columns[0]
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (values % 1 != 0)
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise ValueError(f"{path.name} line {line}, column {column}: {frame[column].iloc[line - 2]!r} is not a user id")
    return values.astype(np.int64).to_numpy()


def answers_as_rows(answers: pd.DataFrame) -> pd.DataFrame:
    """The pyfunc's answer (one row per user with lists) as one row per recommended item."""
    counts = answers["item_ids"].map(len).to_numpy()
    return pd.DataFrame({
        "user_id": np.repeat(answers["user_id"].to_numpy(dtype=np.int64), counts),
        "rank": np.concatenate([np.arange(1, n + 1) for n in counts]).astype(np.int16) if len(counts) else [],
        "item_id": np.concatenate(answers["item_ids"].map(np.asarray).tolist()).astype(np.int64) if len(counts) else [],
        "title": np.concatenate(answers["titles"].map(np.asarray).tolist()) if len(counts) else [],
        "score": np.concatenate(answers["scores"].map(np.asarray).tolist()).astype(float) if len(counts) else [],
        "fallback": np.repeat(answers["fallback"].to_numpy(), counts),
    })  # fmt: skip


@dataclass
class BatchSummary:
    rows: int
    users: int
    fallback_users: int
    parts: int


@dataclass
class RecommendationTable:
    """A written batch: the Parquet parts in ``folder`` and what made them."""

    folder: str
    registered_model: str
    version: str
    k: int
    data_fingerprint: str
    summary: BatchSummary

    def read(self) -> pd.DataFrame:
        """The whole table (small batches, tests): part by part is how large ones are read."""
        return pd.read_parquet(self.folder)


def write_recommendations(model, user_ids: Iterable[int] | np.ndarray, k: int, folder: str | Path,
                          rows_per_part: int = MAX_ROWS) -> BatchSummary:  # fmt: skip
    """Score ``user_ids`` (their stored histories) ``rows_per_part`` at a time with the loaded
    pyfunc ``model`` and write each batch's top-``k`` as ``part-NNNNN.parquet`` in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    user_ids = np.asarray(user_ids, dtype=np.int64)
    rows = fallback_users = parts = 0
    for start in range(0, len(user_ids), rows_per_part):
        batch = user_ids[start : start + rows_per_part]
        request = pd.DataFrame({"user_id": batch, "history": [[] for _ in batch]})
        answers = model.predict(request, params={"k": k})
        table = answers_as_rows(answers)
        pq.write_table(pa.Table.from_pandas(table, schema=SCHEMA, preserve_index=False),
                       folder / f"part-{parts:05d}.parquet")  # fmt: skip
        rows, parts = rows + len(table), parts + 1
        fallback_users += int((answers["fallback"] != "").sum())
    return BatchSummary(rows=rows, users=len(user_ids), fallback_users=fallback_users, parts=parts)


# --- publication ------------------------------------------------------------------------------

PUBLICATIONS = "published_recommendations"  # one row per published table: which model made it


def shown_url(url: str) -> str:
    """A database URL fit for a log: the password masked."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class PublicationRefused(RuntimeError):
    """A published table would be overwritten by a model that is not the registry's champion."""


def publish(folder: str | Path, database_url: str, table: str, registered_model: str, version: str,
            is_champion: bool, data_fingerprint: str, k: int) -> int:  # fmt: skip
    """Replace ``table`` in the database with the Parquet parts in ``folder``, part by part into a
    staging table that takes the table's place in one transaction (readers see the old table or
    the new one, never half). A table that exists is only replaced by the champion's
    recommendations. Returns the rows written."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    staging = f"{table}__staging"
    with engine.begin() as connection:
        publications = _publications_table(sa.MetaData())
        publications.create(connection, checkfirst=True)
        existing = connection.execute(sa.select(publications).where(publications.c.table_name == table)).first()
    if existing is not None and not is_champion:
        raise PublicationRefused(
            f"{table} holds {existing.registered_model} v{existing.version}'s recommendations; "
            f"{registered_model} v{version} is not @champion, so it does not replace them")
    rows = 0
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP TABLE IF EXISTS "{staging}"'))
    for part in sorted(Path(folder).glob("part-*.parquet")):
        frame = pd.read_parquet(part)
        frame.to_sql(staging, engine, if_exists="append", index=False)
        rows += len(frame)
    with engine.begin() as connection:
        publications = _publications_table(sa.MetaData())
        connection.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        connection.execute(sa.text(f'ALTER TABLE "{staging}" RENAME TO "{table}"'))
        connection.execute(sa.delete(publications).where(publications.c.table_name == table))
        connection.execute(sa.insert(publications).values(
            table_name=table, registered_model=registered_model, version=str(version), champion=is_champion,
            data_fingerprint=data_fingerprint, k=k, rows=rows, published_at=dt.datetime.now(dt.timezone.utc)))
    engine.dispose()
    return rows


def _publications_table(metadata):
    import sqlalchemy as sa

    return sa.Table(
        PUBLICATIONS, metadata,
        sa.Column("table_name", sa.String(200), primary_key=True),
        sa.Column("registered_model", sa.String(200)), sa.Column("version", sa.String(20)),
        sa.Column("champion", sa.Boolean), sa.Column("data_fingerprint", sa.String(64)), sa.Column("k", sa.Integer),
        sa.Column("rows", sa.BigInteger), sa.Column("published_at", sa.DateTime(timezone=True)),
    )  # fmt: skip
