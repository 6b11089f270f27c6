"""Read JSON Lines, CSV and Parquet into raw column chunks, keeping line numbers and text.

A reader yields :class:`RawChunk` objects of at most ``chunk_rows`` rows. Lines that cannot
even be parsed (malformed JSON, a JSON value that is not an object, a CSV row with more cells
than the header) become rejects right here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import IO

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from weanalysis.errors import InputError

FIELDS = (
    "appid",
    "openid",
    "time",
    "event_id",
    "ip",
    "province",
    "city",
    "platform",
    "brand",
    "model",
    "user_agent",
    "gender",
    "age",
)
FORMATS = ("jsonl", "csv", "parquet")
SUFFIX_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
DEFAULT_CHUNK_ROWS = 1_000_000
# Original text kept in a reject is cut here, so a huge garbage line cannot flood the file.
MAX_REJECT_TEXT = 4096


class ReaderError(InputError):
    """A whole input file that cannot be read (its name is in the message)."""


@dataclass
class Reject:
    source: str
    line: int
    reason: str
    text: str
    kind: str = "record"  # the summary bucket: the field at fault, or json / csv
    index: int = -1  # position in its chunk; -1 for lines that never became a row

    def as_dict(self) -> dict:
        return {"file": self.source, "line": self.line, "reason": self.reason, "text": self.text}


@dataclass
class RawChunk:
    """Raw columns (pyarrow arrays or Python lists) of one piece of one source."""

    source: str
    columns: dict[str, pa.Array | pa.ChunkedArray | list]
    lines: np.ndarray
    text_of: Callable[[int], str]
    rejects: list[Reject] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines)


def detect_format(path: str, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise ReaderError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
        return fmt
    if path == "-":
        return "jsonl"
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise ReaderError(
            f"cannot tell the format of {path!r} from its extension; use --format "
            f"({', '.join(FORMATS)})"
        )
    return SUFFIX_FORMATS[suffix]


class _Counting(io.RawIOBase):
    """Counts the bytes read through it, for progress bars."""

    def __init__(self, f: IO[bytes], on_bytes: Callable[[int], None]):
        self.f = f
        self.on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.f.readinto(buffer)
        if n:
            self.on_bytes(n)
        return n


def read_records(
    path: str,
    fmt: str,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    stdin: IO[bytes] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[RawChunk]:
    """Chunks of one source; ``path`` ``-`` is standard input (any format)."""
    count = on_bytes or (lambda n: None)
    if path == "-":
        src: IO[bytes] = io.BufferedReader(_Counting(stdin, count), buffer_size=1 << 20)
        if fmt == "parquet":
            yield from read_parquet(pa.BufferReader(src.read()), chunk_rows, "-")
        elif fmt == "csv":
            yield from read_csv(src, "-", chunk_rows)
        else:
            yield from read_jsonl(src, "-", chunk_rows)
        return
    if fmt == "parquet":
        if not is_regular(path):  # a FIFO or a device: Parquet is read from its end
            with open(path, "rb") as f:
                data = f.read()
            count(len(data))
            yield from read_parquet(pa.BufferReader(data), chunk_rows, path)
            return
        yield from read_parquet(path, chunk_rows, path, count)
        return
    with open(path, "rb", buffering=0) as raw:
        f = io.BufferedReader(_Counting(raw, count), buffer_size=1 << 20)
        if fmt == "csv":
            yield from read_csv(f, path, chunk_rows)
        else:
            yield from read_jsonl(f, path, chunk_rows)


def is_regular(path: str) -> bool:
    return stat.S_ISREG(os.stat(path).st_mode)


def check_source(path: str) -> None:
    """A path the readers can read: a regular file, or a FIFO or device read as a stream."""
    if path == "-":
        return
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ReaderError(f"no such file: {path}") from None
    except OSError as e:
        raise ReaderError(f"cannot read {path}: {e.strerror}") from None
    if stat.S_ISDIR(mode):
        raise ReaderError(f"{path} is a directory, not a file")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
        raise ReaderError(f"{path} is not a file, a FIFO or a device")
    if not os.access(path, os.R_OK):
        raise ReaderError(f"cannot read {path}: permission denied")


def check_readable(path: str, fmt: str) -> None:
    """Fail early, before anything is stored, on a file that cannot be read in its format."""
    if path == "-" or not is_regular(path):  # a stream is checked as it is read
        return
    if fmt == "parquet":
        try:
            pq.ParquetFile(path).close()
        except (pa.ArrowException, OSError) as e:
            raise ReaderError(f"{path}: not a readable Parquet file ({e})") from None


def _cut(text: str) -> str:
    return text if len(text) <= MAX_REJECT_TEXT else text[:MAX_REJECT_TEXT] + "…"


def rows_to_chunk(
    source: str,
    rows: list[dict],
    lines: list[int],
    texts: list[str] | list[bytes],
    rejects: list[Reject],
) -> RawChunk:
    """Rows as columns; ``texts`` are each row's text, or its raw line (decoded only for the
    few rows that are rejected)."""
    columns = {f: list(map(dict.get, rows, repeat(f))) for f in FIELDS}
    return _chunk(source, columns, lines, texts, rejects)


def _line_text(text: str | bytes) -> str:
    if isinstance(text, bytes):
        return text.decode("utf-8", "replace").rstrip("\r\n")
    return text


def _parse_line(source: str, lineno: int, raw: bytes) -> dict | Reject:
    """One line's JSON object, or why it is rejected."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        return Reject(source, lineno, f"malformed JSON: {e}", _cut(text), "json")
    if not isinstance(obj, dict):
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        return Reject(source, lineno, "not a JSON object", _cut(text), "json")
    return obj


def parse_json_objects(
    source: str, items: Iterator[tuple[int, bytes]], chunk_rows: int
) -> Iterator[RawChunk]:
    """(line number, raw bytes) pairs of JSON objects -> chunks; bad ones become rejects."""
    rows: list[dict] = []
    lines: list[int] = []
    texts: list[bytes] = []
    rejects: list[Reject] = []
    for lineno, raw in items:
        if not raw.strip():
            continue
        obj = _parse_line(source, lineno, raw)
        if isinstance(obj, Reject):
            rejects.append(obj)
            continue
        rows.append(obj)
        lines.append(lineno)
        texts.append(raw)
        if len(rows) >= chunk_rows:
            yield rows_to_chunk(source, rows, lines, texts, rejects)
            rows, lines, texts, rejects = [], [], [], []
    if rows or rejects:
        yield rows_to_chunk(source, rows, lines, texts, rejects)


def read_jsonl(f: IO[bytes], source: str, chunk_rows: int) -> Iterator[RawChunk]:
    """JSON Lines; a file that is one JSON array of objects is read too (record N = line N)."""
    head = f.peek(64)[:64].lstrip() if hasattr(f, "peek") else b""
    if head.startswith(b"["):
        try:
            items = orjson.loads(f.read())
        except orjson.JSONDecodeError as e:
            raise ReaderError(
                f"{source}: starts like a JSON array but is not valid JSON ({e})"
            ) from None
        if isinstance(items, list):
            pairs = ((i, orjson.dumps(obj)) for i, obj in enumerate(items, 1))
            yield from parse_json_objects(source, pairs, chunk_rows)
            return
    yield from _read_jsonl_blocks(f, source, chunk_rows)


JSONL_BLOCK_BYTES = 8 << 20


def _line_blocks(f: IO[bytes]) -> Iterator[list[bytes]]:
    """The file's lines (without their ``\\n``), a few megabytes at a time."""
    rest = b""
    while block := f.read(JSONL_BLOCK_BYTES):
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        if lines:
            yield lines
    if rest:
        yield [rest]


def _parse_block(
    source: str, lines: list[bytes], first: int
) -> tuple[list[dict], list[int], list[bytes], list[Reject]]:
    """Objects of a block of lines (line ``first`` first): (objects, their line numbers, their
    lines, rejects). Each line is parsed on its own, as :func:`parse_json_objects` does, but in
    one call over the block while no line fails."""
    if all(map(bytes.strip, lines)):
        linenos = list(range(first, first + len(lines)))
        kept = lines
    else:
        pairs = [(i, line) for i, line in enumerate(lines, first) if line.strip()]
        linenos = [i for i, _ in pairs]
        kept = [line for _, line in pairs]
    try:
        objs = list(map(orjson.loads, kept))
    except orjson.JSONDecodeError:
        objs = None
    if objs is not None and set(map(type, objs)) <= {dict}:
        return objs, linenos, kept, []
    good: tuple[list, list, list] = ([], [], [])
    rejects: list[Reject] = []
    for lineno, raw in zip(linenos, kept, strict=True):
        obj = _parse_line(source, lineno, raw)
        if isinstance(obj, Reject):
            rejects.append(obj)
        else:
            good[0].append(obj)
            good[1].append(lineno)
            good[2].append(raw)
    return (*good, rejects)


# Lines parsed and taken apart into columns at a time: their objects are still in the CPU's
# cache when their fields are picked (twice as fast as picking from a million objects).
JSONL_BATCH_LINES = 2048


def _read_jsonl_blocks(f: IO[bytes], source: str, chunk_rows: int) -> Iterator[RawChunk]:
    """JSON Lines in blocks; the chunks (rows and rejects in each) are those of
    :func:`parse_json_objects` over the same lines."""
    columns: dict[str, list] = {name: [] for name in FIELDS}
    lines: list[int] = []
    texts: list[bytes] = []
    rejects: list[Reject] = []
    first = 1
    for block in _line_blocks(f):
        for at in range(0, len(block), JSONL_BATCH_LINES):
            part = block[at : at + JSONL_BATCH_LINES]
            objs, linenos, raw, bad = _parse_block(source, part, first)
            first += len(part)
            cols = {name: list(map(dict.get, objs, repeat(name))) for name in FIELDS}
            del objs
            while linenos:
                take = chunk_rows - len(lines)
                for name in FIELDS:
                    columns[name] += cols[name][:take]
                    cols[name] = cols[name][take:]
                lines += linenos[:take]
                texts += raw[:take]
                linenos, raw = linenos[take:], raw[take:]
                if len(lines) >= chunk_rows:
                    last = lines[-1]
                    rejects += [r for r in bad if r.line < last]
                    bad = [r for r in bad if r.line > last]
                    yield _chunk(source, columns, lines, texts, rejects)
                    columns = {name: [] for name in FIELDS}
                    lines, texts, rejects = [], [], []
            rejects += bad
    if lines or rejects:
        yield _chunk(source, columns, lines, texts, rejects)


def _chunk(
    source: str,
    columns: dict[str, list],
    lines: list[int],
    texts: list[str] | list[bytes],
    rejects: list[Reject],
) -> RawChunk:
    return RawChunk(
        source=source,
        columns=columns,
        lines=np.array(lines, dtype=np.int64),
        text_of=lambda i: _cut(_line_text(texts[i])),
        rejects=rejects,
    )


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a surrogate: a byte that was not UTF-8
        return False
    return True


def read_csv(f: IO[bytes], source: str, chunk_rows: int) -> Iterator[RawChunk]:
    """CSV with a header row, UTF-8 (a BOM is allowed). Empty cells are absent values."""
    # undecodable bytes become surrogates, so one bad row is rejected, not the whole file
    text = io.TextIOWrapper(f, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield from _read_csv_text(text, f, source, chunk_rows)
    finally:
        text.detach()  # the caller owns (and closes) the binary file


def _read_csv_text(
    text: io.TextIOWrapper, f: IO[bytes], source: str, chunk_rows: int
) -> Iterator[RawChunk]:
    # strict: an unterminated quoted field (or text after a closing quote) is an error, so the
    # row is rejected instead of swallowing the rest of the file into one cell
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except (UnicodeDecodeError, csv.Error) as e:
        raise ReaderError(f"{source}: cannot read the CSV header: {e}") from None
    header = [h.strip() for h in header]
    if not _is_utf8(",".join(header)):
        raise ReaderError(f"{source}: the CSV header is not UTF-8 text (save the file as UTF-8)")
    named = [h for h in header if h]
    twice = sorted({h for h in named if named.count(h) > 1})
    if twice:
        raise ReaderError(
            f"{source}: the CSV header names {', '.join(map(repr, twice))} more than once "
            "(which column is meant?)"
        )
    rows: list[dict] = []
    lines: list[int] = []
    texts: list[str] = []
    rejects: list[Reject] = []
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except UnicodeDecodeError as e:
            raise ReaderError(f"{source}: not UTF-8 near line {start}: {e}") from None
        except csv.Error as e:
            reason = f"malformed CSV: {e}"
            if str(e) == "unexpected end of data":
                reason = 'malformed CSV: a quoted field is never closed (missing ")'
            rejects.append(Reject(source, start, reason, "", "csv"))
            continue
        lineno = reader.line_num
        if not cells or all(not c.strip() for c in cells):
            continue
        row_text = ",".join(cells)
        if not _is_utf8(row_text):
            shown = row_text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            reason = "not UTF-8 text (save the file as UTF-8; Excel: CSV UTF-8)"
            rejects.append(Reject(source, lineno, reason, _cut(shown), "encoding"))
            continue
        if len(cells) > len(header):
            rejects.append(
                Reject(
                    source,
                    lineno,
                    f"malformed CSV: {len(cells)} cells but the header has {len(header)}",
                    _cut(row_text),
                    "csv",
                )
            )
            continue
        rows.append({h: (c if c.strip() else None) for h, c in zip(header, cells, strict=False)})
        lines.append(lineno)
        texts.append(row_text)
        if len(rows) >= chunk_rows:
            yield rows_to_chunk(source, rows, lines, texts, rejects)
            rows, lines, texts, rejects = [], [], [], []
    yield rows_to_chunk(source, rows, lines, texts, rejects)


def read_parquet(
    where, chunk_rows: int, source: str, on_bytes: Callable[[int], None] | None = None
) -> Iterator[RawChunk]:
    try:
        pf = pq.ParquetFile(where)
    except (pa.ArrowException, OSError) as e:
        raise ReaderError(f"{source}: not a readable Parquet file ({e})") from None
    names = [n for n in pf.schema_arrow.names if n in FIELDS]
    total_rows = max(pf.metadata.num_rows, 1)
    total_bytes = Path(where).stat().st_size if isinstance(where, str) else 0
    start = 0
    for batch in pf.iter_batches(batch_size=chunk_rows, columns=names):
        n = batch.num_rows
        table = pa.Table.from_batches([batch])
        columns = {f: (table.column(f) if f in names else pa.nulls(n)) for f in FIELDS}

        def text_of(i: int, table: pa.Table = table) -> str:
            row = table.slice(i, 1).to_pylist()[0]
            return _cut(json.dumps(row, ensure_ascii=False, default=str))

        if on_bytes and total_bytes:
            on_bytes(total_bytes * n // total_rows)
        yield RawChunk(
            source=source,
            columns=columns,
            lines=np.arange(start + 1, start + n + 1, dtype=np.int64),
            text_of=text_of,
        )
        start += n
