"""Seat snapshots as Arrow tables, and their byte-stable file form.

A ``Snapshot`` holds four tables, every row keyed by its train-date ``key`` and sorted by it:

- ``trains``: one row per train-date (stations, classes and seat counts, kind, ``seq``);
- ``seats``: one row per seat: ``cls``, 1-based ``seat`` and the ``legs`` uint64 occupancy;
- ``orders``: every order the train-date remembers (refunded ones too, for idempotency);
- ``moved``: train-dates that left this centre, with their new centre and directory version.

``lsn`` is the centre's log position the snapshot is complete up to: on restart replay the
log records after it (replaying earlier ones is harmless: they are at or below ``seq``).
``to_bytes`` writes the four tables as Arrow IPC streams behind a small header; the same
state always gives the same bytes. ``write_snapshot`` replaces a file atomically.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import pyarrow as pa

from gridfare.errors import SeatError

__all__ = [
    "MOVED",
    "ORDERS",
    "SEATS",
    "TRAINS",
    "Snapshot",
    "read_snapshot",
    "write_snapshot",
]

TRAINS = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("train_no", pa.string(), nullable=False),
        pa.field("date", pa.date32(), nullable=False),
        pa.field("stations", pa.list_(pa.string()), nullable=False),
        pa.field("classes", pa.list_(pa.string()), nullable=False),
        pa.field("seat_counts", pa.list_(pa.int32()), nullable=False),
        pa.field("through", pa.bool_(), nullable=False),
        pa.field("service", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
    ]
)
SEATS = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("cls", pa.string(), nullable=False),
        pa.field("seat", pa.int32(), nullable=False),
        pa.field("legs", pa.uint64(), nullable=False),
    ]
)
ORDERS = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("cls", pa.string(), nullable=False),
        pa.field("from_station", pa.string(), nullable=False),
        pa.field("to_station", pa.string(), nullable=False),
        pa.field("seats", pa.list_(pa.int32()), nullable=False),
        pa.field("legs", pa.uint64(), nullable=False),
        pa.field("refunded", pa.bool_(), nullable=False),
    ]
)
MOVED = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("centre", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
    ]
)
_SCHEMAS = (TRAINS, SEATS, ORDERS, MOVED)
_MAGIC = b"GFSEATS1"


@dataclass(frozen=True)
class Snapshot:
    trains: pa.Table
    seats: pa.Table
    orders: pa.Table
    moved: pa.Table
    lsn: int = 0

    @classmethod
    def empty(cls, lsn: int = 0) -> Snapshot:
        return cls(*(s.empty_table() for s in _SCHEMAS), lsn=lsn)

    @classmethod
    def concat(cls, parts: Iterable[Snapshot], lsn: int = 0) -> Snapshot:
        """Join snapshots of distinct train-dates (e.g. one per inventory) in key order."""
        ordered = sorted(parts, key=lambda p: p.keys())
        tables = []
        for i, schema in enumerate(_SCHEMAS):
            chunks = [p.tables()[i] for p in ordered]
            table = pa.concat_tables(chunks) if chunks else schema.empty_table()
            tables.append(table.sort_by("key").combine_chunks())
        snapshot = cls(*tables, lsn=lsn)
        keys = snapshot.trains.column("key").to_pylist()
        if len(set(keys)) != len(keys):
            raise SeatError("snapshot: a train-date appears in two parts")
        return snapshot

    def tables(self) -> tuple[pa.Table, pa.Table, pa.Table, pa.Table]:
        return (self.trains, self.seats, self.orders, self.moved)

    def keys(self) -> list[str]:
        return self.trains.column("key").to_pylist()

    def rows(self, table: pa.Table) -> dict[str, tuple[int, int]]:
        """``key -> (offset, length)`` of the rows of each train-date in a key-sorted table."""
        spans: dict[str, tuple[int, int]] = {}
        offset = 0
        for key, group in groupby(table.column("key").to_pylist()):
            length = sum(1 for _ in group)
            if key in spans:
                raise SeatError(f"snapshot: rows of {key} are not contiguous")
            spans[key] = (offset, length)
            offset += length
        return spans

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        out.write(_MAGIC + struct.pack("<q", self.lsn))
        for schema, table in zip(_SCHEMAS, self.tables(), strict=True):
            sink = io.BytesIO()
            with pa.ipc.new_stream(sink, schema) as writer:
                writer.write_table(table.cast(schema).combine_chunks())
            data = sink.getvalue()
            out.write(struct.pack("<q", len(data)) + data)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "snapshot") -> Snapshot:
        try:
            if data[: len(_MAGIC)] != _MAGIC:
                raise ValueError("not a seat snapshot (bad magic)")
            (lsn,) = struct.unpack_from("<q", data, len(_MAGIC))
            offset = len(_MAGIC) + 8
            tables = []
            for schema in _SCHEMAS:
                (length,) = struct.unpack_from("<q", data, offset)
                offset += 8
                table = pa.ipc.open_stream(data[offset : offset + length]).read_all()
                offset += length
                if not table.schema.equals(schema):
                    raise ValueError(f"schema {table.schema} is not {schema}")
                tables.append(table)
            if offset != len(data):
                raise ValueError(f"{len(data) - offset} trailing bytes")
        except (ValueError, struct.error, pa.ArrowException) as exc:
            raise SeatError(f"{name}: cannot read the snapshot: {exc}") from exc
        return cls(*tables, lsn=lsn)


def write_snapshot(snapshot: Snapshot, path: str | Path) -> None:
    """Write atomically: a temporary file, fsync, rename over ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as f:
            f.write(snapshot.to_bytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise SeatError(f"{path}: cannot write the snapshot: {exc}") from exc


def read_snapshot(path: str | Path) -> Snapshot:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SeatError(f"{path}: cannot read the snapshot: {exc}") from exc
    return Snapshot.from_bytes(data, name=str(path))
