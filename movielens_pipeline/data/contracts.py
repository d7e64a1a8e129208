"""Check the ingested tables against the declarative data contracts in ``data_contracts/``.

Each YAML file there is one Great Expectations (GE) suite for one table: a list of entries
``{expectation: <snake_case GE name>, why: <plain English>, <arguments>...}``. This module turns
them into GE 1.x suites, validates pandas DataFrames in an ephemeral (in-memory) GE context and
summarises the outcome in a ``ValidationReport`` that can be read as JSON, HTML or a message.

Rules GE cannot express directly live in tables derived here (``user_activity``: interactions
per user), validated by their own YAML suite, and in ``{$PARAMETER: name}`` values the runner
fills in (known item ids for cross-table checks, the current time, ...).
"""

from __future__ import annotations

import html
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
import yaml

# Importing GE logs ~200 lines of registration chatter (some of its modules set their own
# logger levels, so raising the package logger's level first does not help): silence records
# below ERROR for the import alone.
logging.disable(logging.WARNING)
try:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
finally:
    logging.disable(logging.NOTSET)

DEFAULT_CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "data_contracts"
# Leave-one-out needs at least a training, a validation and a test interaction per user.
DEFAULT_MIN_INTERACTIONS_PER_USER = 3
# Lists longer than this (the known item ids) are shown as a count in reports.
_LONGEST_LIST_SHOWN = 12


class ContractError(ValueError):
    """A contract file is malformed, or tables and contracts do not match up."""


class DataContractViolation(RuntimeError):
    """Input data breaks a contract in data_contracts/; nothing downstream runs."""


@dataclass(frozen=True)
class ExpectationSpec:
    """One entry of a contract file."""

    expectation: str
    arguments: dict[str, Any]
    why: str


@dataclass(frozen=True)
class Contract:
    """One contract file: the suite for one table (``derived_from`` names the tables it is computed from)."""

    dataset: str
    description: str
    derived_from: tuple[str, ...] | None
    expectations: tuple[ExpectationSpec, ...]
    source: Path


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one expectation, reduced to what a reader needs to find the bad data."""

    dataset: str
    expectation: str
    column: str | None  # several columns are joined with ", "; None for table-level rules
    arguments: dict[str, Any]
    why: str
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    observed_value: Any = None
    details: Any = None
    bad_values: tuple = ()
    bad_rows: tuple = ()
    row_label: str = "row"  # what identifies a row: its position, or e.g. user_id in user_activity
    error: str | None = None  # why GE could not evaluate the rule (e.g. the column does not exist)

    def summary(self) -> str:
        """What GE found, samples aside: an error, a count of unexpected rows or an observed value."""
        if self.error:
            return f"could not be evaluated: {self.error}"
        if self.unexpected_count is not None:
            return f"{self.unexpected_count:,} of {self.element_count:,} rows unexpected"
        if self.observed_value is not None:
            return f"observed {self.observed_value}" + (f"; details {self.details}" if self.details else "")
        return ""

    def describe_failure(self) -> str:
        """One line: which rule failed where, with a sample of the evidence."""
        where = f"{self.dataset}.{self.column}" if self.column else self.dataset
        arguments = ", ".join(f"{name}={value}" for name, value in self.arguments.items())
        evidence = [self.summary()]
        if self.bad_values:
            evidence.append(f"bad values {list(self.bad_values)}")
        if self.bad_rows:
            evidence.append(f"at {self.row_label} {list(self.bad_rows)}")
        return f"{where}: {self.expectation}({arguments}) failed: " + "; ".join(evidence)


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of validating all tables; ``success`` is True only when every expectation passed."""

    outcomes: tuple[ExpectationOutcome, ...]
    row_counts: dict[str, int]
    descriptions: dict[str, str]
    parameters: dict[str, Any]
    validated_at: str
    duration_seconds: float

    @property
    def success(self) -> bool:
        return all(outcome.success for outcome in self.outcomes)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.success]

    def failure_message(self) -> str:
        if self.success:
            return f"All {len(self.outcomes)} data contract expectations passed."
        lines = [f"Data contract broken: {len(self.failures)} of {len(self.outcomes)} expectations failed."]
        for failure in self.failures:
            lines.append(f"- {failure.describe_failure()}")
            lines.append(f"  why it matters: {failure.why}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "validated_at": self.validated_at,
            "duration_seconds": round(self.duration_seconds, 3),
            "row_counts": self.row_counts,
            "parameters": self.parameters,
            "evaluated": len(self.outcomes),
            "failed": len(self.failures),
            "results": [asdict(outcome) for outcome in self.outcomes],
        }

    def to_html(self) -> str:
        """A self-contained page: one table per dataset, failed rules first."""
        verdict = "passed" if self.success else f"failed ({len(self.failures)} of {len(self.outcomes)} expectations)"
        sections = []
        for dataset, row_count in self.row_counts.items():
            outcomes = sorted((o for o in self.outcomes if o.dataset == dataset), key=lambda o: o.success)
            rows = "\n".join(_html_row(outcome) for outcome in outcomes)
            sections.append(
                f"<h2>{_escape(dataset)} <small>{row_count:,} rows</small></h2>\n"
                f"<p>{_escape(self.descriptions[dataset])}</p>\n<table>\n<tr><th>Result</th>"
                "<th>Expectation</th><th>Column</th><th>Arguments</th><th>Found</th><th>Sample bad values</th>"
                f"<th>Sample rows</th><th>Why</th></tr>\n{rows}\n</table>")
        parameters = "".join(f"<li><code>{_escape(name)}</code> = {_escape(value)}</li>"
                             for name, value in self.parameters.items())
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Data contract report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 2em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; font-size: 90%; }}
th {{ background: #eee; }}
tr.failed {{ background: #fde8e8; }}
.verdict-passed {{ color: #176f2c; }} .verdict-failed {{ color: #b00020; }}
</style></head><body>
<h1>Data contract report: <span class="verdict-{'passed' if self.success else 'failed'}">{_escape(verdict)}</span></h1>
<p>Validated at {_escape(self.validated_at)} in {self.duration_seconds:.2f} s.</p>
<h3>Parameters</h3><ul>{parameters}</ul>
{chr(10).join(sections)}
</body></html>
"""


def load_contracts(contracts_dir: str | Path = DEFAULT_CONTRACTS_DIR) -> list[Contract]:
    """Read every ``*.yaml`` suite in ``contracts_dir``, checking its shape (not yet the GE arguments)."""
    files = sorted(Path(contracts_dir).glob("*.yaml"))
    if not files:
        raise ContractError(f"no contract files (*.yaml) in {contracts_dir}")
    contracts = [_parse_contract(file) for file in files]
    datasets = [contract.dataset for contract in contracts]
    repeated = sorted({dataset for dataset in datasets if datasets.count(dataset) > 1})
    if repeated:
        raise ContractError(f"{contracts_dir}: several files describe {repeated}")
    return contracts


def validate_tables(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    item_attributes: pd.DataFrame,
    contracts_dir: str | Path = DEFAULT_CONTRACTS_DIR,
    min_interactions_per_user: int = DEFAULT_MIN_INTERACTIONS_PER_USER,
    require_item_attributes: bool = True,
    as_of: datetime | None = None,
    sample_size: int = 5,
) -> ValidationReport:
    """Validate the three ingested tables (and the tables derived from them) against the contracts.

    ``require_item_attributes=False`` accepts an empty attribute table (plain ratings files have
    none); ``as_of`` is the "now" that no timestamp may exceed (default: the current time);
    ``sample_size`` caps the bad values and rows reported per expectation.
    """
    started = time.perf_counter()
    moment = as_of or datetime.now(timezone.utc)
    tables = {"interactions": interactions, "items": items, "item_attributes": item_attributes}
    contracts = {contract.dataset: contract for contract in load_contracts(contracts_dir)}
    tables.update(_derived_tables(contracts.values(), tables))
    if set(contracts) != set(tables):
        raise ContractError(f"the contracts in {contracts_dir} are for {sorted(contracts)}, the tables are {sorted(tables)}")
    parameters = _suite_parameters(tables, moment, min_interactions_per_user, require_item_attributes)

    outcomes: list[ExpectationOutcome] = []
    # Copy-on-write: GE filters the whole table (every column) for each rule, and with all rows
    # kept pandas would copy it each time (seconds and a table's worth of memory per rule at 32M rows).
    with _quiet_great_expectations(), pd.option_context("mode.copy_on_write", True):
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        datasource = context.data_sources.add_pandas("ingested_tables")
        for dataset, frame in tables.items():
            contract = contracts[dataset]
            batch_definition = datasource.add_dataframe_asset(dataset).add_batch_definition_whole_dataframe("whole table")
            suite = context.suites.add(gx.ExpectationSuite(
                name=dataset, expectations=[_build_expectation(spec, contract) for spec in contract.expectations]))
            result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(
                suite, expectation_parameters=parameters,
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": sample_size})
            # GE reports results in its own order; keep the order of the contract file.
            by_id = {expectation_result.expectation_config.id: expectation_result for expectation_result in result.results}
            outcomes.extend(_outcome(dataset, spec, by_id[expectation.id], frame, parameters)
                            for spec, expectation in zip(contract.expectations, suite.expectations))

    return ValidationReport(
        outcomes=tuple(outcomes),
        row_counts={name: len(frame) for name, frame in tables.items()},
        descriptions={name: contract.description for name, contract in contracts.items()},
        parameters={name: _shown(value) for name, value in parameters.items()},
        validated_at=moment.isoformat(timespec="seconds"),
        duration_seconds=time.perf_counter() - started,
    )


# --- derived tables and parameters ------------------------------------------------------------


def _user_activity(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per user, labelled by user_id, with the number of interactions of that user."""
    interactions = tables["interactions"]
    if "user_id" not in interactions:  # the interactions contract reports the missing column
        return pd.DataFrame({"interaction_count": pd.Series(dtype="int64")}, index=pd.Index([], name="user_id"))
    return interactions.groupby("user_id").size().rename("interaction_count").to_frame()


def _unlisted_items(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Item ids that interactions or item_attributes use but the items table does not list: one
    row per id and table, labelled by where it is first used (``ratings.csv line 7``).

    GE's "in set" rule with every listed id as its set copies that list element by element many
    times per rule (minutes at 87k items), so the lookup is done here, once, with numpy.
    """
    listed = tables["items"]["item_id"].dropna().to_numpy() if "item_id" in tables["items"] else np.zeros(0)
    parts = []
    for name in ("interactions", "item_attributes"):
        frame = tables[name]
        if "item_id" not in frame:  # that table's own contract reports the missing column
            continue
        ids = frame["item_id"]
        unlisted = ids[ids.notna().to_numpy() & ~np.isin(ids.to_numpy(), listed)].drop_duplicates()
        place = frame.index.name or f"{name} row"
        parts.append(pd.DataFrame({"item_id": unlisted.to_numpy(), "used_by": name},
                                  index=[f"{place} {label}" for label in unlisted.index]))  # fmt: skip
    found = pd.concat(parts) if parts else pd.DataFrame({"item_id": pd.Series(dtype="int64"), "used_by": ""})
    found.index.name = "first use"
    return found


_DERIVATIONS: dict[str, Callable[[Mapping[str, pd.DataFrame]], pd.DataFrame]] = {
    "user_activity": _user_activity,
    "unlisted_items": _unlisted_items,
}


def _derived_tables(contracts: Iterable[Contract], tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    derived = {}
    for contract in contracts:
        if contract.derived_from is None:
            continue
        derive = _DERIVATIONS.get(contract.dataset)
        if derive is None or not set(contract.derived_from) <= set(tables):
            raise ContractError(f"{contract.source}: cannot derive {contract.dataset!r} from {contract.derived_from!r}; "
                                f"derivable tables: {sorted(_DERIVATIONS)}")
        derived[contract.dataset] = derive({name: tables[name] for name in contract.derived_from})
    return derived


def _suite_parameters(tables: Mapping[str, pd.DataFrame], moment: datetime,
                      min_interactions_per_user: int, require_item_attributes: bool) -> dict[str, Any]:
    """Values for the ``{$PARAMETER: name}`` placeholders of the contracts (see data_contracts/README.md)."""
    interactions = tables["interactions"]
    has_ratings = "rating" in interactions and bool(interactions["rating"].notna().any())
    return {
        "now_unix_seconds": int(moment.timestamp()),
        "latest_release_year": moment.year + 1,
        "rated_share": 1.0 if has_ratings else 0.0,
        "min_interactions_per_user": min_interactions_per_user,
        "min_attribute_rows": 1 if require_item_attributes else 0,
    }


# --- contract files -> GE expectations --------------------------------------------------------


def _table_names(value: str | list[str] | None) -> tuple[str, ...] | None:
    """``derived_from: interactions`` or ``derived_from: [interactions, items]``."""
    return None if value is None else tuple([value] if isinstance(value, str) else value)


def _parse_contract(file: Path) -> Contract:
    content = yaml.safe_load(file.read_text(encoding="utf-8"))
    if not isinstance(content, dict) or not content.get("dataset") or not isinstance(content.get("expectations"), list):
        raise ContractError(f"{file}: a contract needs a 'dataset' name and a list of 'expectations'")
    specs = []
    for position, entry in enumerate(content["expectations"], start=1):
        if not isinstance(entry, dict) or not entry.get("expectation"):
            raise ContractError(f"{file}: entry {position} has no 'expectation' name")
        arguments = dict(entry)
        name = arguments.pop("expectation")
        why = arguments.pop("why", None)
        if not isinstance(why, str) or not why.strip():
            raise ContractError(f"{file}: entry {position} ({name}) needs a 'why' line saying what it protects")
        specs.append(ExpectationSpec(name, arguments, why.strip()))
    return Contract(dataset=content["dataset"], description=str(content.get("description", "")).strip(),
                    derived_from=_table_names(content.get("derived_from")), expectations=tuple(specs), source=file)


def _build_expectation(spec: ExpectationSpec, contract: Contract) -> gx.expectations.Expectation:
    class_name = "".join(word.capitalize() for word in spec.expectation.split("_"))
    expectation_class = getattr(gx.expectations, class_name, None)
    if not (isinstance(expectation_class, type) and issubclass(expectation_class, gx.expectations.Expectation)):
        raise ContractError(f"{contract.source}: unknown expectation {spec.expectation!r}")
    try:
        return expectation_class(**spec.arguments, meta={"why": spec.why})
    except (TypeError, ValueError) as error:  # pydantic's ValidationError is a ValueError
        raise ContractError(f"{contract.source}: bad arguments for {spec.expectation}: {error}") from None


# --- GE results -> report -----------------------------------------------------------------------


def _outcome(dataset: str, spec: ExpectationSpec, result: Any, frame: pd.DataFrame,
             parameters: Mapping[str, Any]) -> ExpectationOutcome:
    arguments = dict(spec.arguments)
    columns = [arguments.pop("column")] if "column" in arguments else arguments.pop("column_list", [])
    missing_columns = [column for column in columns if column not in frame.columns]
    # GE's own error for a missing column can be an internal one ("list index out of range").
    error = f"the table has no column {missing_columns}" if missing_columns else _exception_message(result.exception_info)
    # GE leaves some numpy scalars in its "JSON" results; a round trip makes them plain Python.
    details = json.loads(json.dumps(result.to_json_dict().get("result") or {}, default=_numpy_to_python))
    row_label = frame.index.name or "row"
    rows = [row[row_label] if isinstance(row, dict) else row for row in details.get("partial_unexpected_index_list", [])]
    bad_values = details.get("partial_unexpected_list", [])
    if not result.success and not rows and "null" in spec.expectation and len(columns) == 1 and not missing_columns:
        # Proportion rules report a share, not rows: point at the first empty cells ourselves.
        empty = frame[columns[0]].isna()
        rows, bad_values = frame.index[empty][:5].tolist(), [None] * min(int(empty.sum()), 5)
    return ExpectationOutcome(
        dataset=dataset,
        expectation=spec.expectation,
        column=", ".join(columns) or None,
        arguments={name: _shown_argument(value, parameters) for name, value in arguments.items()},
        why=spec.why,
        success=bool(result.success),
        element_count=details.get("element_count"),
        unexpected_count=details.get("unexpected_count"),
        observed_value=_shown(details.get("observed_value")),
        details=details.get("details"),
        bad_values=tuple(bad_values),
        bad_rows=tuple(rows),
        row_label=row_label,
        error=error,
    )


def _numpy_to_python(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _exception_message(exception_info: Any) -> str | None:
    """GE nests exception info per metric when a metric fails; return the first message found."""
    if not isinstance(exception_info, dict):
        return None
    if exception_info.get("raised_exception"):
        return str(exception_info.get("exception_message"))
    nested = (_exception_message(value) for value in exception_info.values() if isinstance(value, dict))
    return next((message for message in nested if message), None)


def _shown_argument(value: Any, parameters: Mapping[str, Any]) -> Any:
    if isinstance(value, dict) and "$PARAMETER" in value:
        name = value["$PARAMETER"]
        return f"${name} = {_shown(parameters.get(name))}"
    return _shown(value)


def _shown(value: Any) -> Any:
    if isinstance(value, list) and len(value) > _LONGEST_LIST_SHOWN:
        return f"{len(value)} values"
    return value


def _html_row(outcome: ExpectationOutcome) -> str:
    cells = [
        "passed" if outcome.success else "<b>FAILED</b>",
        _escape(outcome.expectation),
        _escape(outcome.column or "(table)"),
        "<br>".join(f"{_escape(name)}: {_escape(value)}" for name, value in outcome.arguments.items()),
        _escape(outcome.summary()),
        _escape(list(outcome.bad_values) if outcome.bad_values else ""),
        _escape(f"{outcome.row_label} {list(outcome.bad_rows)}" if outcome.bad_rows else ""),
        _escape(outcome.why),
    ]
    css_class = "passed" if outcome.success else "failed"
    return f'<tr class="{css_class}">' + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _escape(value: Any) -> str:
    return html.escape(str(value))


@contextmanager
def _quiet_great_expectations() -> Iterator[None]:
    """GE logs routine chatter at INFO/WARNING; only errors should reach the pipeline's log.

    Some GE modules set their own logger level, so raising the package logger's is not enough.
    """
    names = [name for name in list(logging.root.manager.loggerDict)
             if name == "great_expectations" or name.startswith("great_expectations.")]
    loggers = [logging.getLogger(name) for name in {"great_expectations", *names}]
    previous_levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, previous_levels):
            logger.setLevel(level)
