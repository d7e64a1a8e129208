"""Reading a dataset's files: inside a zip or a folder, delimited text through pyarrow, and the
download cache with its checksums."""

from __future__ import annotations

import csv
import hashlib
import os
import re
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
            for member in files:
                parts = PurePosixPath(member.replace("\\", "/")).parts
                if member.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                    self._zip.close()
                    raise SourceError(f"{location}: the archive member {member!r} points outside the archive; "
                                      "refusing to read this archive")
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
    """Read a delimited file; without ``names`` its first line is the header.

    The frame's index holds each row's line number in the file (index name ``"<file> line"``), so
    every later message about a row can point at the line. A file pyarrow cannot read is read
    again line by line to name the first bad line, column and value.
    """
    with files.open(name) as stream:
        first_line = 1
        if names is None:
            names, first_line = read_header(stream, name, delimiter, encoding, quoted), 2
        require_columns(name, names, types)
        try:
            table = _arrow_csv(stream, delimiter=delimiter, names=names, types=types, encoding=encoding,
                               quoted=quoted, keep_empty_lines=True)  # fmt: skip
        except pa.ArrowInvalid as error:
            arrow_error = error
        else:
            # self_destruct frees each Arrow column as it is converted: one copy of the data, not two.
            return with_line_numbers(table.to_pandas(self_destruct=True, split_blocks=True), f"{name} line",
                                     first_line, skip_blank=True)  # fmt: skip
    with files.open(name) as stream:
        raise SourceError(explain_unreadable(stream, name, delimiter=delimiter, names=names, types=types,
                                             encoding=encoding, quoted=quoted, first_line=first_line,
                                             arrow_error=arrow_error))  # fmt: skip


def with_line_numbers(frame: pd.DataFrame, label: str, first: int, skip_blank: bool = False) -> pd.DataFrame:
    """``frame`` indexed by each row's line (or row) number in its file, the index named ``label``
    ("ratings.csv line"), so every later message about a row points at it. ``skip_blank`` drops
    rows that are entirely empty (blank lines of a text file carry nothing)."""
    frame.index = pd.RangeIndex(first, first + len(frame), name=label)
    if not skip_blank:
        return frame
    blank = frame.isna().all(axis=1)
    return frame[~blank] if blank.any() else frame


def read_header(stream: IO[bytes], label: str, delimiter: str, encoding: str, quoted: bool = False) -> list[str]:
    """The header line's field names (quoted names such as "userId" are valid CSV)."""
    raw = stream.readline()
    try:
        line = raw.decode(encoding).rstrip("\r\n")
    except UnicodeDecodeError:
        raise SourceError(f"{label} line 1: the header is not {encoding} text: {raw[:80]!r}") from None
    if quoted:
        return next(csv.reader([line], delimiter=delimiter))
    return line.split(delimiter)


def _arrow_csv(stream: IO[bytes], *, delimiter: str, names: Sequence[str], types: Mapping[str, pa.DataType],
               encoding: str, quoted: bool, keep_empty_lines: bool = False) -> pa.Table:
    return pacsv.read_csv(
        stream,
        read_options=pacsv.ReadOptions(column_names=list(names), encoding=encoding),
        # MovieLens titles contain bare quote characters, so only real CSV gets quote handling.
        parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoted else False,
                                         ignore_empty_lines=not keep_empty_lines),
        convert_options=pacsv.ConvertOptions(column_types={n: types.get(n, pa.string()) for n in names}),
    )


def read_table(stream: IO[bytes], label: str, *, delimiter: str, names: Sequence[str],
               types: Mapping[str, pa.DataType], encoding: str = "utf8", quoted: bool = True,
               keep_empty_lines: bool = False) -> pa.Table:
    """Read the rest of ``stream`` with pyarrow; columns not in ``types`` stay text (never inferred).
    ``keep_empty_lines`` keeps a row per blank line, so row i is line i."""
    require_columns(label, names, types)
    try:
        return _arrow_csv(stream, delimiter=delimiter, names=names, types=types, encoding=encoding, quoted=quoted,
                          keep_empty_lines=keep_empty_lines)  # fmt: skip
    except pa.ArrowInvalid as error:
        raise SourceError(f"{label}: {error}") from None


def value_problem(text: str, dtype: pa.DataType) -> str | None:
    """Why ``text`` is not a value of ``dtype`` (None when it is, or when it is empty: a null)."""
    text = text.strip()
    if text == "" or not (pa.types.is_integer(dtype) or pa.types.is_floating(dtype)):
        return None
    if pa.types.is_integer(dtype):
        if not re.fullmatch(r"[+-]?\d+", text):
            return "is not a whole number"
        bits = dtype.bit_width
        if not -(2 ** (bits - 1)) <= int(text) < 2 ** (bits - 1):
            return f"does not fit in a {bits}-bit integer"
        return None
    try:
        float(text)
    except ValueError:
        return "is not a number"
    return None


def explain_unreadable(stream: IO[bytes], label: str, *, delimiter: str, names: Sequence[str],
                       types: Mapping[str, pa.DataType], encoding: str, quoted: bool, first_line: int,
                       arrow_error: Exception) -> str:
    """The first line that makes a file unreadable, as "<file> line N, column C: 'value' <why>"."""
    for number, raw in enumerate(stream, start=1):
        if number < first_line or not raw.strip():
            continue
        try:
            line = raw.decode(encoding).rstrip("\r\n")
        except UnicodeDecodeError:
            return f"{label} line {number}: not {encoding} text (binary data?): {raw[:80]!r}"
        fields = next(csv.reader([line], delimiter=delimiter)) if quoted else line.split(delimiter)
        if len(fields) != len(names):
            return (f"{label} line {number}: {len(fields)} fields where {len(names)} were expected "
                    f"({', '.join(names)}): {line[:200]!r}")
        for column, text in zip(names, fields):
            problem = value_problem(text, types.get(column, pa.string()))
            if problem:
                return f"{label} line {number}, column {column}: {text!r} {problem}"
    return f"{label}: {arrow_error}"


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
    columns = {}
    for position, (column, dtype) in enumerate(types.items()):
        texts = pc.list_element(fields, position)
        try:
            columns[column] = texts.cast(dtype)
        except pa.ArrowInvalid as error:
            for number, text in enumerate(texts.to_pylist(), start=1):
                problem = value_problem(text or "", dtype)
                if problem:
                    raise SourceError(f"{name} line {number}, column {column}: {text!r} {problem}") from None
            raise SourceError(f"{name}: {error}") from None
    return with_line_numbers(pa.table(columns).to_pandas(), f"{name} line", 1)


def require_columns(label: str, present: Sequence[str], required: Sequence[str] | Mapping[str, Any]) -> None:
    missing = [column for column in required if column not in present]
    if missing:
        raise SourceError(f"{label} header (line 1): no column {missing}; it has {list(present)}")


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
