"""Broken input files stop the run before anything is trained or registered, and the message names
the file, the line (or the key that identifies the row), the column and the offending value.

Each case starts from a small valid MovieLens-style folder (ratings.csv + movies.csv, the
ml-25m/ml-32m layout) or file and breaks one thing at a known line.
"""

import zipfile

import pandas as pd
import pytest
import yaml

from conftest import REPO_ROOT

HEADER = "userId,movieId,rating,timestamp"
# 4 users x 4 ratings of 4 movies, from 2000-01-01 on: valid in every respect.
GOOD_ROWS = [f"{u},{m},{(u + m) % 5 + 1}.0,{946684800 + 60 * (4 * u + m)}" for u in range(1, 5) for m in (1, 2, 3, 4)]
MOVIES = "movieId,title,genres\n1,Heat (1995),Action|Crime\n2,Up (2009),Animation\n3,Alien (1979),Horror\n4,Big (1988),Comedy\n"


def ratings_with(line_5: str | None = None, header: str = HEADER, extra: list[str] = ()) -> str:
    """ratings.csv text whose line 5 is ``line_5`` (line 1 is the header)."""
    rows = list(GOOD_ROWS)
    if line_5 is not None:
        rows[3] = line_5
    return "\n".join([header, *rows, *extra]) + "\n"


def folder(tmp_path, ratings: str | bytes, movies: str = MOVIES) -> dict:
    (tmp_path / "ratings.csv").write_bytes(ratings if isinstance(ratings, bytes) else ratings.encode())
    (tmp_path / "movies.csv").write_text(movies)
    return {"kind": "grouplens", "path": str(tmp_path)}


def dat_folder(tmp_path, bad_line: str) -> dict:
    lines = [row.replace(",", "::") for row in GOOD_ROWS]
    lines[2] = bad_line
    (tmp_path / "ratings.dat").write_text("\n".join(lines) + "\n", encoding="latin1")
    (tmp_path / "movies.dat").write_text("1::Heat (1995)::Action\n2::Up (2009)::Animation\n3::Alien (1979)::Horror\n"
                                         "4::Big (1988)::Comedy\n", encoding="latin1")  # fmt: skip
    return {"kind": "grouplens", "path": str(tmp_path)}


def ratings_file(tmp_path, frame: pd.DataFrame, suffix: str = ".csv") -> dict:
    path = tmp_path / f"mine{suffix}"
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_csv(path, index=False)
    return {"kind": "ratings_file", "path": str(path),
            "columns": {"user": "user", "item": "item", "rating": "stars", "timestamp": "time"}}  # fmt: skip


def plain_frame(**changes) -> pd.DataFrame:
    frame = pd.DataFrame([dict(zip(("user", "item", "stars", "time"), map(float, row.split(",")))) for row in GOOD_ROWS])
    frame = frame.astype({"user": "int64", "item": "int64", "time": "int64"})
    for column, (row, value) in changes.items():
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
    return frame


def sequences(tmp_path, lines: str, attributes: str = '{"1": [1], "2": [2]}') -> dict:
    """Sequence files in the S3Rec authors' format: Seq.txt (a user per line) and its attributes."""
    (tmp_path / "Seq.txt").write_text(lines)
    (tmp_path / "Seq_item2attributes.json").write_text(attributes)
    return {"kind": "sequences", "path": str(tmp_path), "name": "Seq"}


def with_attributes(tmp_path, attributes: str) -> dict:
    """A valid ratings file plus the item-attributes file ``attributes`` (movie, genres)."""
    spec = ratings_file(tmp_path, plain_frame())
    (tmp_path / "attrs.csv").write_text(attributes)
    return spec | {"attributes": {"path": str(tmp_path / "attrs.csv"), "item_column": "movie"}}


GOOD_SEQUENCES = "".join(f"{user} 1 2 3 4\n" for user in range(1, 5))


def zip_with_escape(tmp_path) -> dict:
    path = tmp_path / "ml-evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ml-evil/ratings.csv", ratings_with())
        archive.writestr("ml-evil/movies.csv", MOVIES)
        archive.writestr("../../x", "not for us")
    return {"kind": "grouplens", "path": str(path)}


# (case, source builder, substrings the failure message must hold)
CASES = [
    ("id overflows int64", lambda t: folder(t, ratings_with("99999999999999999999,1,4.0,946684800")),
     ["ratings.csv line 5, column userId", "'99999999999999999999'", "does not fit in a 64-bit integer"]),
    ("text timestamp", lambda t: folder(t, ratings_with("1,4,4.0,yesterday")),
     ["ratings.csv line 5, column timestamp", "'yesterday'"]),
    ("decimal user id", lambda t: folder(t, ratings_with("1.5,4,4.0,946684800")),
     ["ratings.csv line 5, column userId", "'1.5'"]),
    ("text item id", lambda t: folder(t, ratings_with("1,Heat,4.0,946684800")),
     ["ratings.csv line 5, column movieId", "'Heat'"]),
    ("text rating", lambda t: folder(t, ratings_with("1,4,four,946684800")),
     ["ratings.csv line 5, column rating", "'four'", "is not a number"]),
    ("empty rating among ratings", lambda t: folder(t, ratings_with("1,4,,946684900")),
     ["interactions.rating", "ratings.csv line [5]"]),
    ("binary garbage", lambda t: folder(t, ratings_with().encode() + b"\x00\x01\xff\xfe\x80 garbage\n"),
     ["ratings.csv line 18", "not utf8 text", "\\xff\\xfe"]),
    ("too many fields", lambda t: folder(t, ratings_with("1,4,4.0,946684800,7")),
     ["ratings.csv line 5", "5 fields where 4 were expected", "'1,4,4.0,946684800,7'"]),
    ("too few fields", lambda t: folder(t, ratings_with("1,4,946684800")),
     ["ratings.csv line 5", "3 fields where 4 were expected", "'1,4,946684800'"]),
    ("missing column", lambda t: folder(t, ratings_with(header="userId,movieId,stars,timestamp")),
     ["ratings.csv header (line 1)", "no column ['rating']"]),
    ("rating off the scale", lambda t: folder(t, ratings_with("1,4,9.0,946684900")),
     ["interactions.rating", "bad values [9.0]", "ratings.csv line [5]"]),
    ("negative rating", lambda t: folder(t, ratings_with("1,4,-2.0,946684900")),
     ["interactions.rating", "bad values [-2.0]", "ratings.csv line [5]"]),
    ("rating between half stars", lambda t: folder(t, ratings_with("1,4,3.7,946684900")),
     ["interactions.rating", "bad values [3.7]", "ratings.csv line [5]"]),
    ("timestamp in milliseconds", lambda t: folder(t, ratings_with("1,4,4.0,946684900000")),
     ["interactions.timestamp", "bad values [946684900000]", "ratings.csv line [5]"]),
    ("timestamp before MovieLens", lambda t: folder(t, ratings_with("1,4,4.0,86400")),
     ["interactions.timestamp", "bad values [86400]", "ratings.csv line [5]"]),
    ("timestamp in the future", lambda t: folder(t, ratings_with("1,4,4.0,4102444800")),
     ["interactions.timestamp", "bad values [4102444800]", "ratings.csv line [5]"]),
    ("zero user id", lambda t: folder(t, ratings_with("0,4,4.0,946684900")),
     ["interactions.user_id", "bad values [0]", "ratings.csv line [5]"]),
    ("movie missing from movies.csv", lambda t: folder(t, ratings_with("1,77,4.0,946684900")),
     ["unlisted_items.item_id", "bad values [77]", "first use ['ratings.csv line 5']"]),
    ("the same event twice", lambda t: folder(t, ratings_with(extra=[GOOD_ROWS[0]])),
     ["interactions.user_id, item_id, timestamp", "ratings.csv line [2, 18]"]),
    ("duplicate movie id", lambda t: folder(t, ratings_with(), MOVIES + "4,Big Again (1990),Comedy\n"),
     ["items.item_id", "bad values [4, 4]", "movies.csv line [5, 6]"]),
    ("text movie id in movies.csv", lambda t: folder(t, ratings_with(), MOVIES.replace("3,Alien", "three,Alien")),
     ["movies.csv line 4, column movieId", "'three'"]),
    ("release year far in the future", lambda t: folder(t, ratings_with(), MOVIES.replace("(2009)", "(2509)")),
     ["items.year", "bad values [2509]", "movies.csv line [3]"]),
    ("archive member outside its root", zip_with_escape, ["ml-evil.zip", "'../../x'", "points outside the archive"]),
    (".dat line without enough fields", lambda t: dat_folder(t, "1::3::4.0"),
     ["ratings.dat", "line 3", "'1::3::4.0'"]),
    (".dat text in a number column", lambda t: dat_folder(t, "1::3::4.0::noon"),
     ["ratings.dat line 3, column timestamp", "'noon'"]),
    ("ratings file: unparsable date", lambda t: ratings_file(t, plain_frame(time=(3, "2020-13-45"))),
     ["mine.csv line [5], column time", "'2020-13-45'"]),
    ("ratings file: text user id", lambda t: ratings_file(t, plain_frame(user=(3, "bob"))),
     ["mine.csv line [5], column user", "'bob'"]),
    ("parquet: empty user id", lambda t: ratings_file(t, plain_frame(user=(3, None)), ".parquet"),
     ["mine.parquet row [4], column user", "(empty)"]),
    ("sequence file: text item", lambda t: sequences(t, GOOD_SEQUENCES + "5 1 two 3\n"),
     ["Seq.txt line 5, field 3 (item 2)", "'two'", "is not a whole number"]),
    ("sequence file: a user on two lines", lambda t: sequences(t, GOOD_SEQUENCES + "2 3 4\n"),
     ["Seq.txt lines [2, 5]", "user 2 has two lines"]),
    ("sequence file: item id zero", lambda t: sequences(t, GOOD_SEQUENCES + "5 1 0 3\n"),
     ["interactions.item_id", "bad values [0]", "Seq.txt line [5]"]),
    ("sequence attributes: not JSON", lambda t: sequences(t, GOOD_SEQUENCES, '{"1": [1]'),
     ["Seq_item2attributes.json: not valid JSON"]),
    ("sequence attributes: an item no one has", lambda t: sequences(t, GOOD_SEQUENCES, '{"1": [1], "77": [2]}'),
     ["unlisted_items.item_id", "bad values [77]", "first use ['Seq_item2attributes.json key 77']"]),
    ("attributes file: an item not in the ratings", lambda t: with_attributes(t, "movie,genres\n1,Action\n77,Drama\n"),
     ["unlisted_items.item_id", "bad values [77]", "first use ['attrs.csv line 3']"]),
    ("attributes file: an empty value in a cell", lambda t: with_attributes(t, "movie,genres\n1,Action\n2,Drama||War\n"),
     ["item_attributes.value", "bad values ['']", "attrs.csv line [3]"]),
    ("attributes file: text item id", lambda t: with_attributes(t, "movie,genres\n1,Action\nfour,Drama\n"),
     ["attrs.csv line [3], column movie", "'four'"]),
    ("a user with a single rating", lambda t: folder(t, ratings_with(extra=["9,1,4.0,946684900"])),
     ["user_activity", "user_id [9]"]),
    ("nothing survives k-core filtering", lambda t: folder(t, ratings_with()),
     ["nothing is left to train on", "16 interactions of 4 users and 4 items", "at least 5 interactions"]),
]


# One case per step that can refuse the data (ingest, the contracts, the build) and per source
# kind with its own reader, run through the whole pipeline; every case's message is checked on the
# functions those steps call (test_each_broken_input_is_refused_with_a_message_that_points_at_it).
THROUGH_THE_PIPELINE = ("id overflows int64", "rating off the scale", "nothing survives k-core filtering",
                        "sequence file: text item", "attributes file: an item not in the ratings",
                        ".dat text in a number column")  # fmt: skip
PIPELINE_CASES = [case for case in CASES if case[0] in THROUGH_THE_PIPELINE]


def count_versions(mlflow_client) -> int:
    return sum(len(mlflow_client.search_model_versions(f"name='{m.name}'"))
               for m in mlflow_client.search_registered_models())  # fmt: skip


def failure_text(run) -> str:
    from movielens_pipeline.integrations.run_pipeline import failure_summary

    return failure_summary(run)


def assert_mentions(message: str, expected: list[str]) -> None:
    for text in expected:
        assert text in message, f"{text!r} not in:\n{message}"


def refusal(source: dict) -> str:
    """The message of the first step that refuses ``source``, calling what ingest_ratings,
    validate_data and build_dataset call, in their order and with the smoke run's settings."""
    from movielens_pipeline.data import build, contracts
    from movielens_pipeline.data.sources import load_source

    try:
        raw = load_source(source)
        report = contracts.validate_tables(raw.interactions, raw.items, raw.item_attributes,
                                           require_item_attributes=False)  # fmt: skip
        if not report.success:
            return report.failure_message()
        build.build_sequence_dataset(raw.interactions, raw.items, raw.item_attributes, build.BuildConfig())
    except Exception as error:  # noqa: BLE001 - any refusal is compared with the expected text
        return str(error)
    pytest.fail("the broken input went through every step")


@pytest.mark.parametrize("case, make_source, expected", CASES, ids=[c[0] for c in CASES])
def test_each_broken_input_is_refused_with_a_message_that_points_at_it(tmp_path, case, make_source, expected):
    message = refusal(make_source(tmp_path))
    assert_mentions(message, expected)


@pytest.mark.parametrize("case, make_source, expected", PIPELINE_CASES, ids=[c[0] for c in PIPELINE_CASES])
def test_broken_input_stops_the_run_with_a_message_that_points_at_it(smoke_run, mlflow_client, tmp_path, case,
                                                                     make_source, expected):  # fmt: skip
    from zenml.client import Client

    from pipelines.training import training_pipeline

    config = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    config["steps"]["ingest_ratings"]["parameters"]["source"] = make_source(tmp_path)
    config["steps"]["validate_data"] = {"parameters": {"require_item_attributes": False}}
    config_path = tmp_path / "broken.yaml"
    config_path.write_text(yaml.safe_dump(config))
    versions_before = count_versions(mlflow_client)

    with pytest.raises(RuntimeError, match="Pipeline run has failed"):
        training_pipeline.with_options(config_path=str(config_path))()

    run = Client().get_pipeline("training_pipeline").last_run
    assert str(run.status) == "failed"
    trained = [name for name in ("s3rec_pretrain", "s3rec_finetune", "lrml_train") if name in run.steps]
    assert all(str(run.steps[name].status) != "completed" for name in trained)
    assert count_versions(mlflow_client) == versions_before
    message = failure_text(run)
    assert_mentions(message, expected)


def test_a_quoted_header_is_valid_csv(tmp_path):
    from movielens_pipeline.data.sources import load_source

    header = ",".join(f'"{name}"' for name in HEADER.split(","))
    raw = load_source(folder(tmp_path, ratings_with(header=header)))
    assert len(raw.interactions) == len(GOOD_ROWS)


def test_a_contract_failure_keeps_its_report(smoke_run, tmp_path):
    from zenml.client import Client

    from pipelines.training import training_pipeline

    config = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    config["steps"]["ingest_ratings"]["parameters"]["source"] = folder(tmp_path, ratings_with("1,4,9.0,946684900"))
    config["steps"]["validate_data"] = {"parameters": {"require_item_attributes": False}}
    config_path = tmp_path / "broken.yaml"
    config_path.write_text(yaml.safe_dump(config))
    with pytest.raises(RuntimeError, match="validate_data"):
        training_pipeline.with_options(config_path=str(config_path))()
    report = Client().get_artifact_version("failed_validation_results").load()
    failed = [r for r in report["results"] if not r["success"]]
    assert any(r["column"] == "rating" and 9.0 in r["bad_values"] and 5 in r["bad_rows"] for r in failed), failed
