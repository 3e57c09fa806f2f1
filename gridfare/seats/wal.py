"""The seat centre's write-ahead log: one JSON line per change, batched fsync.

Format: one UTF-8 JSON object per line, keys sorted, no spaces, e.g.::

    {"cls":"second","crc":1234567890,"from":"A","key":"G1@2026-10-01","legs":3,"lsn":7,
     "op":"sell","request_id":"r1","seats":[1,2],"seq":4,"to":"C"}

``crc`` is the CRC-32 of the same line written without it, so a damaged line is caught.
``lsn`` numbers the records of one centre's log (1, 2, 3, ... with no gap); ``seq`` numbers
the changes of one train-date (1, 2, ...; ``create`` is 0) and travels with the train-date
when it migrates, which makes replay idempotent (a record at or below the train-date's seq
is already in) and gives the audit one order per train-date across all centres' logs.

Ops: ``create`` (``train`` holds the train-date), ``sell``, ``refund``, ``install`` (a
train-date copied in by a migration: ``train``, ``seq`` and every order it remembers, so the
log alone rebuilds it; occupancy is the OR of the open orders), ``drop`` (the train-date
left this centre: ``centre`` and ``version`` name its new owner).

Durability: ``WalWriter.append`` only buffers; a record is *acknowledged* once a
``flush(fsync=True)`` (explicit, or automatic when ``batch_size`` records are pending) has
written and fsynced it. A crash may leave a torn last line: ``read_wal`` drops it (it was
never acknowledged) and ``open_wal`` truncates it away before appending; a bad line anywhere
else is corruption and raises ``WalCorrupt`` naming the line.
"""

from __future__ import annotations

import itertools
import json
import os
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from gridfare.errors import InvalidInput, SeatError, WalCorrupt
from gridfare.seats.durable import crc_line, parse_line, read_lines
from gridfare.seats.train import TrainDate

__all__ = [
    "OPS",
    "Change",
    "WalLog",
    "WalRecord",
    "WalWriter",
    "change_of",
    "change_record",
    "decode",
    "encode",
    "encode_change",
    "open_wal",
    "read_wal",
]

OPS: tuple[str, ...] = ("create", "sell", "refund", "install", "drop")

# An order in an install record: (request_id, cls, from, to, seats, legs, refunded).
OrderRow = tuple[str, str, str, str, tuple[int, ...], int, bool]


@dataclass(frozen=True)
class WalRecord:
    op: str
    key: str
    seq: int
    request_id: str = ""
    cls: str = ""
    seats: tuple[int, ...] = ()  # 1-based seat numbers within the class
    legs: int = 0  # bit i set: leg stations[i] -> stations[i + 1]
    from_station: str = ""
    to_station: str = ""
    train: TrainDate | None = None  # create and install
    orders: tuple[OrderRow, ...] = ()  # install only
    centre: str = ""  # drop only: the new owner
    version: int = 0  # drop only: the directory version naming the new owner
    lsn: int = 0  # assigned by WalWriter.append

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"lsn": self.lsn, "op": self.op, "key": self.key}
        data["seq"] = self.seq
        if self.op in ("sell", "refund"):
            data.update(
                request_id=self.request_id,
                cls=self.cls,
                seats=list(self.seats),
                legs=self.legs,
                **{"from": self.from_station, "to": self.to_station},
            )
        elif self.op in ("create", "install") and self.train is not None:
            data["train"] = self.train.to_dict()
            if self.op == "install":
                data["orders"] = [[*o[:4], list(o[4]), *o[5:]] for o in self.orders]
        elif self.op == "drop":
            data.update(centre=self.centre, version=self.version)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> WalRecord:
        try:
            op = data["op"]
            if op not in OPS:
                raise ValueError(f"unknown op {op!r}")
            train = data.get("train")
            return cls(
                op=op,
                key=str(data["key"]),
                seq=_int(data["seq"]),
                request_id=str(data.get("request_id", "")),
                cls=str(data.get("cls", "")),
                seats=tuple(_int(s) for s in data.get("seats", ())),
                legs=_int(data.get("legs", 0)),
                from_station=str(data.get("from", "")),
                to_station=str(data.get("to", "")),
                train=TrainDate.from_dict(train) if train is not None else None,
                orders=tuple(_order_row(o) for o in data.get("orders", ())),
                centre=str(data.get("centre", "")),
                version=_int(data.get("version", 0)),
                lsn=_int(data.get("lsn", 0)),
            )
        except (KeyError, TypeError, ValueError, InvalidInput) as exc:
            raise InvalidInput(f"log record {dict(data)!r}: {exc}") from exc


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _order_row(row: object) -> OrderRow:
    rid, cls, first, last, seats, legs, refunded = row  # ValueError/TypeError if malformed
    if not isinstance(refunded, bool):
        raise ValueError(f"refunded must be true or false in {row!r}")
    return (str(rid), str(cls), str(first), str(last), tuple(_int(s) for s in seats),
            _int(legs), refunded)  # fmt: skip


def encode(record: WalRecord) -> bytes:
    """One log line (with its trailing newline)."""
    return crc_line(record.to_dict())


# A sell or refund as the batch path logs it, before it is numbered: (op, key, seq,
# request_id, cls, seats, legs, from_station, to_station). A tuple, not a ``WalRecord``:
# building, numbering (``replace``) and dumping a frozen dataclass twice per sale was a
# third of a centre's cost per sale (profiled on ``bench/seats.py``'s stream).
Change = tuple[str, str, int, str, str, tuple[int, ...], int, str, str]

_text = json.encoder.encode_basestring_ascii  # what json.dumps does to a str by default


def encode_change(change: Change, lsn: int) -> bytes:
    """The log line of ``change`` numbered ``lsn``: byte for byte what ``encode`` writes for
    the same ``WalRecord`` (keys sorted, no spaces, ASCII escapes, the CRC of the line
    without it), built directly."""
    op, key, seq, rid, cls, seats, legs, first, last = change
    head = f'{{"cls":{_text(cls)},'
    tail = (f'"from":{_text(first)},"key":{_text(key)},"legs":{legs},"lsn":{lsn},'
            f'"op":"{op}","request_id":{_text(rid)},"seats":[{",".join(map(str, seats))}],'
            f'"seq":{seq},"to":{_text(last)}}}')
    crc = zlib.crc32((head + tail).encode())
    return f'{head}"crc":{crc},{tail}\n'.encode()


def change_of(record: WalRecord) -> Change:
    """A sell or refund record as the batch path logs it (its lsn left out)."""
    return (record.op, record.key, record.seq, record.request_id, record.cls, record.seats,
            record.legs, record.from_station, record.to_station)


def change_record(change: Change, lsn: int) -> WalRecord:
    """``change`` as the ``WalRecord`` it is logged as (for a migration's catch-up)."""
    op, key, seq, rid, cls, seats, legs, first, last = change
    return WalRecord(op=op, key=key, seq=seq, request_id=rid, cls=cls, seats=seats,
                     legs=legs, from_station=first, to_station=last, lsn=lsn)


def decode(line: bytes) -> WalRecord:
    """Parse one line; ``WalCorrupt`` if it is not a record or its CRC does not match."""
    try:
        return WalRecord.from_dict(parse_line(line))
    except (ValueError, KeyError, InvalidInput) as exc:  # JSONDecodeError is a ValueError
        raise WalCorrupt(f"log line {line[:80]!r}: {exc}") from exc


@dataclass(frozen=True)
class WalLog:
    """What ``read_wal`` found: the records, the length of the good prefix, a torn tail."""

    records: tuple[WalRecord, ...]
    valid_bytes: int
    torn: bool

    @property
    def last_lsn(self) -> int:
        return self.records[-1].lsn if self.records else 0


def read_wal(source: bytes | BinaryIO, name: str = "wal") -> WalLog:
    """Read a whole log. A bad *last* line is a torn write and is dropped; a bad line
    before it, or an LSN that does not follow its predecessor, raises ``WalCorrupt``."""
    data = source if isinstance(source, bytes) else source.read()
    records, valid, torn = read_lines(data, WalRecord.from_dict, name)
    for number, (before, record) in enumerate(itertools.pairwise(records), start=2):
        if record.lsn != before.lsn + 1:
            raise WalCorrupt(
                f"{name}: line {number}: lsn {record.lsn} does not follow {before.lsn}"
            )
    return WalLog(tuple(records), valid, torn)


def _fsync(file: BinaryIO) -> None:
    os.fsync(file.fileno())


class WalWriter:
    """Appends records to a binary file object; acknowledges them on ``flush(fsync=True)``.

    ``append`` numbers the record (next LSN) and buffers it; when ``batch_size`` records are
    pending it flushes. ``acknowledged_lsn`` is the last LSN known durable: a caller answers a
    sale only once its LSN is at or below it. ``fsync`` is passed in so tests can count it.
    """

    def __init__(
        self,
        file: BinaryIO,
        *,
        next_lsn: int = 1,
        batch_size: int = 64,
        fsync: Callable[[BinaryIO], None] = _fsync,
    ) -> None:
        if batch_size < 1:
            raise InvalidInput(f"wal batch_size must be >= 1, got {batch_size}")
        self._file = file
        self._fsync = fsync
        self._batch_size = batch_size
        self._next_lsn = next_lsn
        self._buffer: list[bytes] = []
        self._acknowledged = next_lsn - 1

    @property
    def acknowledged_lsn(self) -> int:
        return self._acknowledged

    @property
    def last_lsn(self) -> int:
        """The LSN of the last appended record, acknowledged or not."""
        return self._next_lsn - 1

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def append(self, record: WalRecord) -> WalRecord:
        numbered = replace(record, lsn=self._next_lsn)
        self._buffer.append(encode(numbered))
        self._next_lsn += 1
        if len(self._buffer) >= self._batch_size:
            self.flush()
        return numbered

    def append_changes(self, changes: list[Change]) -> int:
        """Number and buffer sells and refunds in order; returns the last one's LSN."""
        lsn = self._next_lsn
        self._buffer += [encode_change(c, lsn + i) for i, c in enumerate(changes)]
        self._next_lsn += len(changes)
        if len(self._buffer) >= self._batch_size:
            self.flush()
        return self._next_lsn - 1

    def flush(self, fsync: bool = True) -> int:
        """Write the buffer; with ``fsync`` make it durable and acknowledge it. Returns the
        acknowledged LSN."""
        if self._buffer:
            self._file.write(b"".join(self._buffer))
            self._buffer.clear()
        self._file.flush()
        if fsync:
            self._fsync(self._file)
            self._acknowledged = self._next_lsn - 1
        return self._acknowledged

    def switch_file(self, file: BinaryIO) -> BinaryIO:
        """Go on in ``file`` (a new log segment): later flushes write there, records still
        buffered included; the numbering continues. Returns the previous file, which
        the caller closes (it must have no write or fsync in progress)."""
        old, self._file = self._file, file
        return old

    def close(self, fsync: bool = True) -> None:
        self.flush(fsync=fsync)
        self._file.close()

    def fileno(self) -> int:
        """The file descriptor being appended to (the centre fsyncs it from a thread)."""
        return self._file.fileno()

    @property
    def name(self) -> str:
        return str(getattr(self._file, "name", "wal"))


def open_wal(
    path: str | Path, *, batch_size: int = 64, next_lsn: int = 1
) -> tuple[WalWriter, WalLog]:
    """Open (or create) the log at ``path`` for appending after recovering it: its records
    are returned, and a torn tail is cut off so new lines never follow a broken one.
    ``next_lsn`` is where an empty file starts numbering (a new segment continues the
    sealed ones); a file that holds records must start exactly there."""
    path = Path(path)
    try:
        path.touch(exist_ok=True)
        with path.open("rb") as f:
            log = read_wal(f, name=str(path))
        file = path.open("r+b")
        if log.torn:
            file.truncate(log.valid_bytes)
            _fsync(file)
        file.seek(log.valid_bytes)
    except OSError as exc:
        raise SeatError(f"{path}: cannot open the log: {exc}") from exc
    if log.records and log.records[0].lsn != next_lsn and next_lsn > 1:
        file.close()
        raise WalCorrupt(
            f"{path}: starts at lsn {log.records[0].lsn}, expected {next_lsn} "
            "(after the sealed segments)"
        )
    start = max(log.last_lsn + 1, next_lsn)
    return WalWriter(file, next_lsn=start, batch_size=batch_size), log
