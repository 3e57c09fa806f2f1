"""The seats' durable files, one implementation: CRC-checked JSON lines, append-only logs
of them, atomic whole-file writes and directory fsyncs. The centre log (``wal.py``, its
segment chain in ``segments.py``), the directory log and the migration journals
(``store.py``) are all written and read here.

A line is one JSON object, keys sorted, no spaces, with ``crc``: the CRC-32 of the same
object written without it. A log of lines is acknowledged up to its last fsync: a torn
*last* line was never acknowledged and is dropped (and cut off before the next append); a
bad line before it is corruption (``WalCorrupt`` naming the file and line).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from gridfare.errors import GridfareError, SeatError, WalCorrupt

__all__ = [
    "LineLog",
    "append_lines",
    "atomic_write",
    "crc_line",
    "fsync_dir",
    "parse_line",
    "read_lines",
    "read_log",
]

_T = TypeVar("_T")


def _dumps(data: Mapping[str, object]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def crc_line(data: Mapping[str, object]) -> bytes:
    """One durable line (with its newline) holding ``data`` and its CRC."""
    return _dumps({**data, "crc": zlib.crc32(_dumps(data))}) + b"\n"


def parse_line(line: bytes) -> dict:
    """The object of one line, without its ``crc``; ``ValueError`` if it is not a line or
    its CRC does not match."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    if "crc" not in data:
        raise ValueError("no crc")
    crc = data.pop("crc")
    if crc != zlib.crc32(_dumps(data)):
        raise ValueError("CRC mismatch")
    return data


def read_lines(data: bytes, parse: Callable[[dict], _T], name: str
               ) -> tuple[list[_T], int, bool]:
    """The records of a log's bytes (each line's object through ``parse``), the length of
    its good prefix, and whether a torn last line was dropped."""
    lines = data.split(b"\n")
    tail = lines.pop()  # a complete log ends with "\n": anything here was being written
    records: list[_T] = []
    valid, torn = 0, bool(tail)
    for number, line in enumerate(lines, start=1):
        try:
            records.append(parse(parse_line(line)))
        except (ValueError, KeyError, TypeError, GridfareError) as exc:
            if number == len(lines) and not tail:
                torn = True  # the last complete-looking line was itself torn (e.g. zeros)
                break
            raise WalCorrupt(f"{name}: line {number} of {len(lines)} is corrupt: {exc}") from exc
        valid += len(line) + 1
    return records, valid, torn


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (the directory entry itself)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_lines(path: Path, lines: list[bytes]) -> None:
    """Append durable lines to the log at ``path`` and fsync them (a new file's directory
    entry is the caller's to fsync). ``OSError`` is the caller's to map."""
    with path.open("ab") as f:
        f.write(b"".join(lines))
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` whole: a temporary file, fsynced, renamed over it
    (the caller fsyncs the directory when the rename itself must be durable)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class LineLog:
    """An append-only log of durable lines: ``open`` reads it back (a torn tail cut off),
    ``append`` writes lines and returns once they are fsynced."""

    def __init__(self, path: Path, file, what: str) -> None:
        self.path = path
        self._file = file
        self._what = what

    @classmethod
    def open(cls, path: Path, parse: Callable[[dict], _T], what: str
             ) -> tuple[LineLog, list[_T]]:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)
            file = path.open("r+b")
            records, valid, torn = read_lines(file.read(), parse, f"{path}")
            if torn:
                file.truncate(valid)  # a torn last line was never acknowledged
                os.fsync(file.fileno())
            file.seek(valid)
        except OSError as exc:
            raise SeatError(f"{path}: cannot open the {what}: {exc}") from exc
        return cls(path, file, what), records

    def append(self, lines: list[bytes]) -> None:
        if not lines:
            return
        try:
            self._file.write(b"".join(lines))
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise SeatError(f"{self.path}: cannot write the {self._what}: {exc}") from exc

    def close(self) -> None:
        self._file.close()


def read_log(path: Path, parse: Callable[[dict], _T], what: str) -> tuple[list[_T], int]:
    """A log's records and the length of its good prefix, read only (a missing log is
    empty)."""
    try:
        data = path.read_bytes() if path.exists() else b""
    except OSError as exc:
        raise SeatError(f"{path}: cannot read the {what}: {exc}") from exc
    records, valid, _ = read_lines(data, parse, str(path))
    return records, valid
