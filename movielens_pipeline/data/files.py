"""Reading a dataset's files: inside a zip or a folder, delimited text through pyarrow, and the
download cache with its checksums."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from movielens_pipeline.data.raw import ChecksumMismatchError, SourceError

# A byte that never occurs in MovieLens text, used as the CSV delimiter to read whole lines.
WHOLE_LINE_DELIMITER = "\x1f"


class DatasetFiles:
    """The files of a dataset looked up by base name, inside a zip or a folder.

    Official archives wrap their files in a top folder (ml-1m/ratings.dat), so files one level
    down are found too; a file at the top level wins over a nested one.
    """

    def __init__(self, location: Path):
        self.location = location
        self._zip: zipfile.ZipFile | None = None
        if location.is_dir():
            shallow_first = [*sorted(location.glob("*")), *sorted(location.glob("*/*"))]
            paths: list[Path | str] = [path for path in shallow_first if path.is_file()]
        elif zipfile.is_zipfile(location):
            self._zip = zipfile.ZipFile(location)
            files = [member for member in self._zip.namelist() if not member.endswith("/")]
            paths = sorted(files, key=lambda member: member.count("/"))
        else:
            raise SourceError(f"{location} is neither a folder nor a zip archive")
        self._members: dict[str, Path | str] = {}
        for path in paths:
            self._members.setdefault(PurePosixPath(path).name, path)

    def __enter__(self) -> DatasetFiles:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._zip is not None:
            self._zip.close()

    def has(self, name: str) -> bool:
        return name in self._members

    def open(self, name: str) -> IO[bytes]:
        if name not in self._members:
            raise SourceError(f"{self.location} has no file {name}")
        member = self._members[name]
        return self._zip.open(member) if self._zip is not None else open(member, "rb")


def read_table_file(files: DatasetFiles, name: str, *, delimiter: str, types: Mapping[str, pa.DataType],
                     names: Sequence[str] | None = None, encoding: str = "utf8", quoted: bool = True) -> pd.DataFrame:
    """Read a delimited file; without ``names`` its first line is the header."""
    with files.open(name) as stream:
        if names is None:
            names = read_header(stream, delimiter, encoding)
        return read_table(stream, name, delimiter=delimiter, names=names, types=types,
                           encoding=encoding, quoted=quoted).to_pandas()


def read_header(stream: IO[bytes], delimiter: str, encoding: str) -> list[str]:
    return stream.readline().decode(encoding).rstrip("\r\n").split(delimiter)


def read_table(stream: IO[bytes], label: str, *, delimiter: str, names: Sequence[str],
                types: Mapping[str, pa.DataType], encoding: str = "utf8", quoted: bool = True) -> pa.Table:
    """Read the rest of ``stream`` with pyarrow; columns not in ``types`` stay text (never inferred)."""
    require_columns(label, names, types)
    try:
        return pacsv.read_csv(
            stream,
            read_options=pacsv.ReadOptions(column_names=list(names), encoding=encoding),
            # MovieLens titles contain bare quote characters, so only real CSV gets quote handling.
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoted else False),
            convert_options=pacsv.ConvertOptions(column_types={n: types.get(n, pa.string()) for n in names}),
        )
    except pa.ArrowInvalid as error:
        raise SourceError(f"{label}: {error}") from None


def read_double_colon_file(files: DatasetFiles, name: str, types: Mapping[str, pa.DataType]) -> pd.DataFrame:
    """Read a headerless '::'-separated latin-1 file (pyarrow's CSV reader takes one-character
    delimiters only): read whole lines, then split every line at once."""
    with files.open(name) as stream:
        lines = read_table(stream, name, delimiter=WHOLE_LINE_DELIMITER, names=["line"],
                            types={"line": pa.string()}, encoding="latin1", quoted=False).column("line")
    fields = pc.split_pattern(lines, "::", max_splits=len(types) - 1)
    wrong = np.flatnonzero(pc.list_value_length(fields).to_numpy(zero_copy_only=False) != len(types))
    if wrong.size:
        raise SourceError(f"{name}: {wrong.size} lines do not have {len(types)} '::'-separated fields, "
                          f"e.g. line {wrong[0] + 1}: {lines[int(wrong[0])].as_py()!r}")
    try:
        columns = {column: pc.list_element(fields, position).cast(dtype)
                   for position, (column, dtype) in enumerate(types.items())}
    except pa.ArrowInvalid as error:
        raise SourceError(f"{name}: {error}") from None
    return pa.table(columns).to_pandas()


def require_columns(label: str, present: Sequence[str], required: Sequence[str] | Mapping[str, Any]) -> None:
    missing = [column for column in required if column not in present]
    if missing:
        raise SourceError(f"{label} lacks columns {missing}; it has {list(present)}")


# --- files, cache and checksums ----------------------------------------------------------------


def existing_path(path: str | os.PathLike, what: str) -> Path:
    location = Path(path).expanduser()
    if not location.exists():
        raise SourceError(f"{what} not found: {location}")
    return location


def cache_folder(cache_dir: str | os.PathLike | None) -> Path:
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def verify_checksum(path: Path, expected: str, algorithm: str) -> None:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        path.unlink()
        raise ChecksumMismatchError(
            f"{path} has {algorithm} {digest.hexdigest()}, expected {expected}: the file is corrupt or "
            "not the published release. It has been deleted; the next run downloads it again.")


def default_cache_dir() -> Path:
    """Where downloads are kept: $MOVIELENS_CACHE_DIR, else ~/.cache/movielens-pipeline."""
    configured = os.environ.get("MOVIELENS_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "movielens-pipeline"



def download(url: str, target: Path) -> None:
    # Written under a temporary name first, so an interrupted download never looks complete.
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f"{target.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out, length=1 << 20)
    except (urllib.error.URLError, OSError) as error:
        os.unlink(partial)
        raise SourceError(f"could not download {url}: {error}. Without network access, give the "
                          "source a path to a local copy of the archive.") from error
    os.replace(partial, target)
