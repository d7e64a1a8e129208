"""Data contracts: good data passes, each kind of bad data fails on the rule meant to catch it."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import yaml

from movielens_pipeline.data.contracts import (
    DEFAULT_CONTRACTS_DIR,
    ContractError,
    ValidationReport,
    load_contracts,
    validate_tables,
)
from movielens_pipeline.data.embedded import (
    KG_RELATION_BY_ATTRIBUTE,
    load_embedded_ml100k,
)

AS_OF = datetime(2024, 1, 1, tzinfo=timezone.utc)
Tables = dict[str, pd.DataFrame]


def good_tables() -> Tables:
    """Two users with three interactions each, three movies, a few facts about them."""
    return {
        "interactions": pd.DataFrame({
            "user_id": np.array([1, 1, 1, 2, 2, 2], dtype="int64"),
            "item_id": np.array([10, 20, 30, 10, 20, 30], dtype="int64"),
            "rating": [4.0, 3.5, 5.0, 1.0, 0.5, 2.0],
            "timestamp": np.array([881250949, 881250950, 881250951, 891717742, 891717743, 891717744], dtype="int64"),
        }),
        "items": pd.DataFrame({
            "item_id": np.array([10, 20, 30], dtype="int64"),
            "title": pd.array(["Heat", "Toy Story", "Unknown Film"], dtype="string"),
            "year": pd.array([1995, 1995, None], dtype="Int64"),
        }),
        "item_attributes": pd.DataFrame({
            "item_id": np.array([10, 10, 20, 20, 10], dtype="int64"),
            "attribute_type": pd.array(["genre", "decade", "genre", "decade", "director"], dtype="string"),
            "value": pd.array(["Crime", "1990s", "Animation", "1990s", "m.0bxtg"], dtype="string"),
        }),
    }


def validate(tables: Tables, **options) -> ValidationReport:
    return validate_tables(tables["interactions"], tables["items"], tables["item_attributes"], as_of=AS_OF, **options)


def failed_rules(report: ValidationReport) -> set[tuple[str, str, str | None]]:
    return {(failure.dataset, failure.expectation, failure.column) for failure in report.failures}


def test_good_data_passes() -> None:
    report = validate(good_tables())
    assert report.success, report.failure_message()
    assert report.row_counts == {"interactions": 6, "items": 3, "item_attributes": 5, "user_activity": 2,
                                 "unlisted_items": 0}  # fmt: skip
    assert report.failure_message().startswith("All ")


def test_implicit_feedback_without_ratings_passes() -> None:
    tables = good_tables()
    tables["interactions"]["rating"] = np.nan
    assert validate(tables).success


def test_empty_attributes_pass_only_when_not_required() -> None:
    tables = good_tables()
    tables["item_attributes"] = tables["item_attributes"].iloc[:0]
    assert validate(tables, require_item_attributes=False).success
    assert failed_rules(validate(tables)) == {
        ("item_attributes", "expect_table_row_count_to_be_between", None)}


def set_cell(table: str, row: int, column: str, value, dtype: str | None = None) -> Callable[[Tables], None]:
    def mutate(tables: Tables) -> None:
        frame = tables[table]
        if dtype:
            frame[column] = frame[column].astype(dtype)
        frame.loc[row, column] = value
    return mutate


def append_row(table: str, row: int) -> Callable[[Tables], None]:
    def mutate(tables: Tables) -> None:
        tables[table] = pd.concat([tables[table], tables[table].iloc[[row]]], ignore_index=True)
    return mutate


def drop_user_rows(user_id: int, keep: int) -> Callable[[Tables], None]:
    def mutate(tables: Tables) -> None:
        interactions = tables["interactions"]
        others = interactions[interactions["user_id"] != user_id]
        tables["interactions"] = pd.concat([others, interactions[interactions["user_id"] == user_id].head(keep)],
                                           ignore_index=True)
    return mutate


def rename_column(table: str, old: str, new: str) -> Callable[[Tables], None]:
    def mutate(tables: Tables) -> None:
        tables[table] = tables[table].rename(columns={old: new})
    return mutate


# (mutation, failing rule (dataset, expectation, column), evidence the message must show)
BAD_DATA = {
    "null user id": (set_cell("interactions", 4, "user_id", None, dtype="Int64"),
                     ("interactions", "expect_column_values_to_not_be_null", "user_id"), "at row [4]"),
    "rating out of range": (set_cell("interactions", 2, "rating", 7.0),
                            ("interactions", "expect_column_values_to_be_between", "rating"), "bad values [7.0]"),
    "rating not a half star": (set_cell("interactions", 2, "rating", 3.7),
                               ("interactions", "expect_column_values_to_be_in_set", "rating"), "bad values [3.7]"),
    "some ratings missing": (set_cell("interactions", 1, "rating", np.nan),
                             ("interactions", "expect_column_proportion_of_non_null_values_to_be_between", "rating"),
                             "observed 0.833"),
    "duplicate interaction": (append_row("interactions", 1),
                              ("interactions", "expect_compound_columns_to_be_unique", "user_id, item_id, timestamp"),
                              "'timestamp': 881250950"),
    "timestamp in milliseconds": (set_cell("interactions", 3, "timestamp", 891717742000),
                                  ("interactions", "expect_column_values_to_be_between", "timestamp"),
                                  "bad values [891717742000]"),
    "timestamp before 1995": (set_cell("interactions", 0, "timestamp", 5),
                              ("interactions", "expect_column_values_to_be_between", "timestamp"), "bad values [5]"),
    "interaction with unknown item": (set_cell("interactions", 5, "item_id", 99),
                                      ("unlisted_items", "expect_column_values_to_be_null", "item_id"), "bad values [99]"),
    "user with too few interactions": (drop_user_rows(2, keep=2),
                                       ("user_activity", "expect_column_values_to_be_between", "interaction_count"),
                                       "bad values [2]; at user_id [2]"),
    "attribute of unknown item": (set_cell("item_attributes", 4, "item_id", 404),
                                  ("unlisted_items", "expect_column_values_to_be_null", "item_id"), "bad values [404]"),
    "attribute type that is a number": (set_cell("item_attributes", 0, "attribute_type", "1995"),
                                        ("item_attributes", "expect_column_values_to_match_regex", "attribute_type"),
                                        "bad values ['1995']"),
    "badly written decade": (set_cell("item_attributes", 1, "value", "90s"),
                             ("item_attributes", "expect_column_values_to_match_regex", "value"), "bad values ['90s']"),
    "duplicate attribute": (append_row("item_attributes", 0),
                            ("item_attributes", "expect_compound_columns_to_be_unique", "item_id, attribute_type, value"),
                            "'value': 'Crime'"),
    "empty title": (set_cell("items", 1, "title", ""),
                    ("items", "expect_column_values_to_match_regex", "title"), "bad values ['']"),
    "missing title": (set_cell("items", 1, "title", None),
                      ("items", "expect_column_values_to_not_be_null", "title"), "at row [1]"),
    "duplicate item id": (set_cell("items", 2, "item_id", 20),
                          ("items", "expect_column_values_to_be_unique", "item_id"), "bad values [20, 20]"),
    "year as decimals": (set_cell("items", 0, "year", 1995.0, dtype="float64"),
                         ("items", "expect_column_values_to_be_of_type", "year"), "observed float64"),
    "user id as text": (set_cell("interactions", 0, "user_id", "u1", dtype="object"),
                        ("interactions", "expect_column_values_to_be_of_type", "user_id"), "bad values ['u1', 1,"),
    "missing column": (rename_column("interactions", "timestamp", "time"),
                       ("interactions", "expect_table_columns_to_match_set", None), "'missing': ['timestamp']"),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_fails_on_the_rule_meant_to_catch_it(case: str) -> None:
    mutate, rule, evidence = BAD_DATA[case]
    tables = good_tables()
    mutate(tables)
    report = validate(tables)
    assert not report.success
    assert rule in failed_rules(report)
    dataset, expectation, column = rule
    line = next(line for line in report.failure_message().splitlines()
                if line.startswith(f"- {dataset}.{column}: {expectation}(" if column else f"- {dataset}: {expectation}("))
    assert evidence in line


def test_missing_column_is_reported_on_every_rule_that_reads_it() -> None:
    tables = good_tables()
    rename_column("interactions", "timestamp", "time")(tables)
    message = validate(tables).failure_message()
    assert "interactions.timestamp: expect_column_values_to_not_be_null() failed: could not be evaluated: " \
           "the table has no column ['timestamp']" in message


def test_report_json_and_html() -> None:
    tables = good_tables()
    set_cell("items", 1, "title", "<script>")(tables)
    set_cell("interactions", 2, "rating", 7.0)(tables)
    report = validate(tables)
    document = json.loads(json.dumps(report.to_json()))
    assert document["success"] is False and document["failed"] == len(report.failures)
    failed = [result for result in document["results"] if not result["success"]]
    assert {"dataset": "interactions", "column": "rating", "bad_values": [7.0], "bad_rows": [2]}.items() <= failed[0].items()
    page = report.to_html()
    assert page.startswith("<!DOCTYPE html>") and "FAILED" in page
    assert "<script>" not in page  # data is escaped, and the page loads nothing from outside
    assert "http" not in page


def test_real_ml100k_passes_the_contracts() -> None:
    raw = load_embedded_ml100k()
    report = validate_tables(raw.interactions, raw.items, raw.item_attributes)
    assert report.success, report.failure_message()


def test_every_attribute_type_a_loader_can_produce_is_allowed() -> None:
    contract = next(contract for contract in load_contracts() if contract.dataset == "item_attributes")
    pattern = next(spec.arguments["regex"] for spec in contract.expectations
                   if spec.expectation == "expect_column_values_to_match_regex" and spec.arguments["column"] == "attribute_type")
    produced = {"genre", "decade", "attribute", "brand", "sub genre", *KG_RELATION_BY_ATTRIBUTE}
    assert all(re.fullmatch(pattern, name) for name in produced)
    assert not any(re.fullmatch(pattern, name) for name in ("", " genre", "1990", "genre\t"))


def test_every_contract_entry_explains_itself() -> None:
    contracts = load_contracts()
    assert {contract.dataset for contract in contracts} == {"interactions", "items", "item_attributes", "user_activity", "unlisted_items"}
    assert all(len(spec.why) > 20 for contract in contracts for spec in contract.expectations)


def copy_contracts_with(tmp_path: Path, file_name: str, entry: dict) -> Path:
    folder = tmp_path / "contracts"
    shutil.copytree(DEFAULT_CONTRACTS_DIR, folder)
    contract = yaml.safe_load((folder / file_name).read_text())
    contract["expectations"].append(entry)
    (folder / file_name).write_text(yaml.safe_dump(contract))
    return folder


@pytest.mark.parametrize("entry, message", [
    ({"expectation": "expect_column_values_to_be_pretty", "column": "title", "why": "Because."}, "unknown expectation"),
    ({"expectation": "expect_column_values_to_not_be_null", "column": "title"}, "needs a 'why' line"),
    ({"expectation": "expect_column_values_to_not_be_null", "colum": "title", "why": "Typo."}, "bad arguments"),
])
def test_malformed_contract_is_rejected(tmp_path: Path, entry: dict, message: str) -> None:
    folder = copy_contracts_with(tmp_path, "items.yaml", entry)
    tables = good_tables()
    with pytest.raises(ContractError, match=message):
        validate(tables, contracts_dir=folder)
