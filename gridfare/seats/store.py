"""The seats data root on disk: configuration, centre logs and snapshots, the directory's
log, migration records; and the offline audit that reads them (no Ray).

Layout (see docs/seats.md)::

    <root>/seats.json                         SeatsConfig (centres, main centre, R, timings)
    <root>/centres/<centre_id>/wal.log        the current segment of the centre's log (wal.py)
    <root>/centres/<centre_id>/segments/wal-<first lsn>-<last lsn>.log   sealed segments
                                              (the chain: segments.py)
    <root>/centres/<centre_id>/snapshot.arrow its last snapshot (snapshot.py), optional
    <root>/directory/log.jsonl                the directory's records, one JSON line each
    <root>/migrations/<migration_id>.json     one migration record, replaced atomically

A centre's log is a chain of segments numbered by LSN: sealed ones (complete, never written
again) and the current one. A checkpoint seals the current segment (a rename) and snapshots
the centre as of the seal's LSN; a restart reads the snapshot and only the segments after it.
The audit reads them all, so sealed segments are kept (see docs/seats.md).

Directory lines and migration journal lines are durable lines like the centre log's
(``durable.py``): a torn last line is dropped (it was never acknowledged), a bad line
before it raises ``WalCorrupt``. A migration record is written to
a temporary file, fsynced and renamed; a write whose ``revision`` is older than the one on
disk is refused (``StaleVersion``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, TypeVar

from gridfare.errors import (
    ConfigError,
    InvalidName,
    SeatError,
    StaleVersion,
)
from gridfare.seats.audit import AuditReport, audit
from gridfare.seats.centre import CentreState
from gridfare.seats.directory import DirectoryRecord
from gridfare.seats.durable import (
    LineLog,
    append_lines,
    atomic_write,
    crc_line,
    fsync_dir,
    read_log,
)
from gridfare.seats.migration import Migration
from gridfare.seats.names import check_centre_id, check_migration_id, check_root
from gridfare.seats.segments import SegmentChain
from gridfare.seats.snapshot import Snapshot, SnapshotDelta, overlay, read_snapshot, write_snapshot
from gridfare.seats.wal import WalRecord, WalWriter

__all__ = ["SeatsConfig", "SeatsRoot"]

_T = TypeVar("_T")
_DELTA = re.compile(r"^snapshot-delta-(\d{12})\.arrow$")


@dataclass(frozen=True)
class SeatsConfig:
    """One bureau's seat centres. ``main`` is the main centre of the placement formula."""

    centres: tuple[str, ...]
    main: str
    r: str = "0.65"
    wal_window_ms: float = 1.0  # how long a centre gathers sales into one fsync
    freeze_wait_s: float = 2.0  # how long a sale waits on a frozen train-date
    # Log records between automatic checkpoints (0: never). A restart replays at most this
    # many (about 25 us each: 6 s); a checkpoint copies the train-dates changed since the
    # last one (up to 1.7 s of CPU a centre of 7,500), so not every minute at full load.
    snapshot_every: int = 250_000
    snapshot_interval_s: float = 0.0  # also checkpoint when this old and records came (0: off)
    migration_duty: float = 0.5  # share of wall time a running migration works (0, 1]

    def __post_init__(self) -> None:
        centres = tuple(self.centres)
        object.__setattr__(self, "centres", centres)
        if not centres:
            raise ConfigError("seats config: centres: needs at least one centre")
        for c in centres:
            try:
                check_centre_id(c)
            except InvalidName as exc:
                raise ConfigError(f"seats config: centres: {exc}") from None
        if len(set(centres)) != len(centres):
            raise ConfigError(f"seats config: centres: a centre is listed twice in {centres}")
        if self.main not in centres:
            raise ConfigError(f"seats config: main: {self.main!r} is not one of {centres}")
        try:
            r = Fraction(str(self.r))
        except (ValueError, ZeroDivisionError) as exc:
            raise ConfigError(f"seats config: r: {self.r!r} is not a number") from exc
        if not 0 < r <= len(centres):
            raise ConfigError(f"seats config: r: {self.r} must be in (0, {len(centres)}]")
        for name in ("wal_window_ms", "freeze_wait_s", "snapshot_interval_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"seats config: {name}: must be a number >= 0, got {value!r}")
        duty = self.migration_duty
        if isinstance(duty, bool) or not isinstance(duty, (int, float)) or not 0 < duty <= 1:
            raise ConfigError(f"seats config: migration_duty: must be in (0, 1], got {duty!r}")
        every = self.snapshot_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ConfigError(
                f"seats config: snapshot_every: must be an integer >= 0, got {every!r}"
            )

    def to_dict(self) -> dict[str, object]:
        return {
            "centres": list(self.centres),
            "main": self.main,
            "r": str(self.r),
            "wal_window_ms": self.wal_window_ms,
            "freeze_wait_s": self.freeze_wait_s,
            "snapshot_every": self.snapshot_every,
            "snapshot_interval_s": self.snapshot_interval_s,
            "migration_duty": self.migration_duty,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SeatsConfig:
        known = {
            "centres",
            "main",
            "r",
            "wal_window_ms",
            "freeze_wait_s",
            "snapshot_every",
            "snapshot_interval_s",
            "migration_duty",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"seats config: unknown key {unknown[0]!r}")
        for key in ("centres", "main"):
            if key not in data:
                raise ConfigError(f"seats config: {key}: missing")
        if not isinstance(data["centres"], list):
            raise ConfigError("seats config: centres: must be a list of centre ids")
        return cls(**{**data, "centres": tuple(data["centres"])})


_JOURNAL_MIN_LINES = 64  # a migration record is compacted after max(this, moves / 4) lines


@dataclass(frozen=True)
class _StoredMigration:
    """What a SeatsRoot last stored of a migration: the files' identities after the write,
    the revision, the moves as objects (a changed move is a new object), extra fields and
    the journal's line count."""

    identity: tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]
    revision: int
    moves: dict
    extra: dict
    lines: int


def _identity(path: Path) -> tuple[int, int, int] | None:
    """Inode, modification time and size of ``path``; None if it does not exist."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class SeatsRoot:
    """Paths and file formats under one seats data root (a local or shared directory)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = check_root(path)
        # migration id -> what this object last stored of it
        self._stored: dict[str, _StoredMigration] = {}

    # ---- configuration ----------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path / "seats.json"

    def init(self, config: SeatsConfig) -> SeatsConfig:
        """Write the configuration, or check that it matches the one already there."""
        if self.config_path.exists():
            current = self.config()
            if current != config:
                raise ConfigError(
                    f"{self.config_path}: already configured with {current.to_dict()}; "
                    "refusing a different configuration"
                )
            return current
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write(self.config_path, json.dumps(config.to_dict(), indent=2).encode())
        except OSError as exc:
            raise SeatError(f"{self.config_path}: cannot write: {exc}") from exc
        return config

    def config(self) -> SeatsConfig:
        try:
            data = json.loads(self.config_path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(
                f"{self.path}: not a seats data root (no seats.json); start one with "
                "`gridfare seats serve --root DIR --centres ...`"
            ) from exc
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.config_path}: cannot read: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{self.config_path}: expected a JSON object")
        return SeatsConfig.from_dict(data)

    # ---- centres ----------------------------------------------------------------------

    def centre_dir(self, centre_id: str) -> Path:
        return self.path / "centres" / check_centre_id(centre_id)

    def wal_path(self, centre_id: str) -> Path:
        return self.log_chain(centre_id).current

    def snapshot_path(self, centre_id: str) -> Path:
        """The centre's last full snapshot (later checkpoints may be deltas on top of it)."""
        return self.centre_dir(centre_id) / "snapshot.arrow"

    def snapshot_deltas(self, centre_id: str) -> list[tuple[int, Path]]:
        """The centre's snapshot deltas as ``(lsn, path)``, in lsn order."""
        folder = self.centre_dir(centre_id)
        if not folder.exists():
            return []
        found = [(int(m[1]), path) for path in folder.iterdir()
                 if (m := _DELTA.match(path.name))]
        return sorted(found)

    def read_centre_snapshot(self, centre_id: str) -> Snapshot | None:
        """The centre's checkpointed state: the full snapshot with every later delta laid
        over it (None before the first checkpoint). Deltas at or below the full snapshot's
        lsn are leftovers of the checkpoint that replaced them and are skipped."""
        path = self.snapshot_path(centre_id)
        base = read_snapshot(path) if path.exists() else None
        floor = base.lsn if base is not None else 0
        deltas = []
        for lsn, delta_path in self.snapshot_deltas(centre_id):
            if lsn <= floor:
                continue
            try:
                data = delta_path.read_bytes()
            except OSError as exc:
                raise SeatError(f"{delta_path}: cannot read the snapshot delta: {exc}") from exc
            deltas.append(SnapshotDelta.from_bytes(data, name=str(delta_path)))
        try:
            return overlay(base, deltas)
        except SeatError as exc:
            raise SeatError(f"{self.centre_dir(centre_id)}: {exc}") from exc

    def write_checkpoint(self, centre_id: str, checkpoint: Snapshot | SnapshotDelta) -> None:
        """Store a checkpoint durably: a delta next to the chain, or a full snapshot that
        replaces the chain (its deltas are then deleted: they are below its lsn)."""
        folder = self.centre_dir(centre_id)
        if isinstance(checkpoint, SnapshotDelta):
            write_snapshot(checkpoint, folder / f"snapshot-delta-{checkpoint.lsn:012d}.arrow")
            fsync_dir(folder)
            return
        write_snapshot(checkpoint, self.snapshot_path(centre_id))
        fsync_dir(folder)
        for lsn, path in self.snapshot_deltas(centre_id):
            if lsn <= checkpoint.lsn:
                path.unlink(missing_ok=True)

    def log_chain(self, centre_id: str) -> SegmentChain:
        """The centre's log files: its sealed segments and the current one."""
        return SegmentChain(self.centre_dir(centre_id))

    def segments_dir(self, centre_id: str) -> Path:
        return self.log_chain(centre_id).segments_dir

    def sealed_segments(self, centre_id: str) -> list[tuple[int, int, Path]]:
        return self.log_chain(centre_id).sealed()

    def seal_segment(self, centre_id: str, first: int, last: int, durable: bool = True
                     ) -> BinaryIO:
        return self.log_chain(centre_id).seal(first, last, durable)

    def sync_log_dirs(self, centre_id: str) -> None:
        self.log_chain(centre_id).sync_dirs()

    def read_sealed(self, centre_id: str, after_lsn: int = 0) -> tuple[list[WalRecord], int]:
        return self.log_chain(centre_id).read_sealed(after_lsn)

    def open_centre_log(self, centre_id: str, after_lsn: int = 0, batch_size: int = 64
                        ) -> tuple[WalWriter, list[WalRecord], int]:
        return self.log_chain(centre_id).open(after_lsn, batch_size)

    def read_centre(self, centre_id: str) -> tuple[list[WalRecord], CentreState]:
        """A centre's whole acknowledged log (every sealed segment, then the current one)
        and the state it rebuilds to (snapshot + the log after it)."""
        records = self.log_chain(centre_id).read_all()
        return records, CentreState.restore(centre_id, self.read_centre_snapshot(centre_id),
                                            records)

    # ---- directory --------------------------------------------------------------------

    @property
    def directory_log(self) -> Path:
        return self.path / "directory" / "log.jsonl"

    def read_directory(self) -> tuple[list[DirectoryRecord], int]:
        """The directory's records and the length of the good prefix of its log."""
        return read_log(self.directory_log, DirectoryRecord.from_dict, "directory log")

    def open_directory_log(self) -> tuple[LineLog, list[DirectoryRecord]]:
        """For the directory itself: its log, open for appending (a torn tail cut off),
        and its records."""
        return LineLog.open(self.directory_log, DirectoryRecord.from_dict, "directory log")

    @staticmethod
    def encode_directory_record(record: DirectoryRecord) -> bytes:
        return crc_line(record.to_dict())

    # ---- migrations -------------------------------------------------------------------

    @property
    def migrations_dir(self) -> Path:
        return self.path / "migrations"

    def migration_path(self, migration_id: str) -> Path:
        """``migrations/<id>.json``; the id is checked here, where the path is built."""
        return self.migrations_dir / f"{check_migration_id(migration_id)}.json"

    def write_migration(self, migration: Migration, extra: Mapping[str, object]) -> None:
        """Store a migration record durably; refuse one older than the stored revision.

        A migration changes one train-date at a time, several times each, so rewriting the
        whole record each time was quadratic: 0.7 ms for 312 train-dates but 12 ms for the
        12,105 of ``G%``. The record (``<id>.json``) is written whole when the migration
        starts and compacted now and then; in between, each change appends to a journal
        (``<id>.journal``) one line holding the moves that changed and the migration's
        state, fsynced. Reading lays the journal's lines over the record.
        """
        path = self.migration_path(migration.id)
        journal = path.with_suffix(".journal")
        ours = self._stored.get(migration.id)
        if ours is None or not self._unchanged_since_written(path, journal, ours):
            ours = None
            if path.exists():
                stored, _ = self._read_migration(path)
                if stored.revision > migration.revision:
                    raise StaleVersion(
                        f"migration {migration.id}: revision {migration.revision} is older "
                        f"than the stored {stored.revision}"
                    )
        elif ours.revision > migration.revision:
            raise StaleVersion(
                f"migration {migration.id}: revision {migration.revision} is older than "
                f"the stored {ours.revision}"
            )
        extra = dict(extra)
        changed = [] if ours is None else [
            move for key, move in migration.moves.items() if ours.moves.get(key) is not move]
        try:
            self.migrations_dir.mkdir(parents=True, exist_ok=True)
            if (ours is None or ours.extra != extra or ours.moves.keys() != migration.moves.keys()
                    or ours.lines >= max(_JOURNAL_MIN_LINES, len(migration.moves) // 4)):
                body = json.dumps({**extra, "migration": migration.to_record()},
                                  separators=(",", ":"))
                atomic_write(path, body.encode())
                fsync_dir(self.migrations_dir)
                journal.unlink(missing_ok=True)  # its lines are all in the record now
                lines = 0
            else:
                entry = {"revision": migration.revision, "state": migration.state,
                         "rollback_requested": migration.rollback_requested,
                         "moves": [move.to_dict() for move in changed]}
                append_lines(journal, [crc_line(entry)])
                if ours.lines == 0:
                    fsync_dir(self.migrations_dir)  # a new journal file's entry
                lines = ours.lines + 1
            identity = (_identity(path), _identity(journal))
        except OSError as exc:
            raise SeatError(f"{path}: cannot write the migration record: {exc}") from exc
        self._stored[migration.id] = _StoredMigration(
            identity, migration.revision, dict(migration.moves), extra, lines)

    def _unchanged_since_written(self, path: Path, journal: Path,
                                 ours: _StoredMigration) -> bool:
        """Whether the files are still as this object left them (then their revision is
        known without reading them)."""
        try:
            return (_identity(path), _identity(journal)) == ours.identity
        except OSError:
            return False

    def read_migrations(self) -> dict[str, tuple[Migration, dict]]:
        """Every stored migration, by id, with the extra fields stored beside it."""
        result = {}
        if not self.migrations_dir.exists():
            return result
        for path in sorted(self.migrations_dir.glob("*.json")):
            migration, extra = self._read_migration(path)
            result[migration.id] = (migration, extra)
        return result

    def _read_migration(self, path: Path) -> tuple[Migration, dict]:
        """A stored migration, its record with the journal's later lines laid over it,
        and the extra fields stored beside it."""
        data = self._read_json(path)
        record = dict(data["migration"])
        moves = {m["key"]: m for m in record.get("moves", [])}
        journal = path.with_suffix(".journal")
        # A torn last line was never acknowledged (the migrator goes on only once a line
        # is fsynced): ``read_log`` drops it.
        entries, _ = read_log(journal, lambda entry: entry, "migration journal")
        for entry in entries:
            if int(entry["revision"]) <= int(record["revision"]):
                continue  # already in the record (written by a compaction)
            for move in entry["moves"]:
                if move["key"] not in moves:
                    raise SeatError(f"{journal}: {move['key']} is not part of the migration")
                moves[move["key"]] = move
            record.update(revision=entry["revision"], state=entry["state"],
                          rollback_requested=entry["rollback_requested"])
        record["moves"] = list(moves.values())
        extra = {k: v for k, v in data.items() if k != "migration"}
        return Migration.from_record(record), extra

    def frozen_at(self, centre_id: str) -> set[str]:
        """Train-dates a restarting centre keeps frozen: those in flight in a migration."""
        frozen: set[str] = set()
        for migration, _ in self.read_migrations().values():
            frozen |= migration.frozen_at(centre_id)
        return frozen

    @staticmethod
    def _read_json(path: Path) -> dict:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SeatError(f"{path}: cannot read: {exc}") from exc
        if not isinstance(data, dict) or "migration" not in data:
            raise SeatError(f"{path}: not a migration record")
        return data

    # ---- audit ------------------------------------------------------------------------

    def audit(self, inventories: Mapping[str, Mapping] | None = None) -> AuditReport:
        """Audit every centre's log against the inventories (default: each centre's state
        rebuilt from its snapshot and log, i.e. what a restart would hold)."""
        config = self.config()
        logs: dict[str, list[WalRecord]] = {}
        rebuilt: dict[str, Mapping] = {}
        for centre in config.centres:
            records, state = self.read_centre(centre)
            logs[centre] = records
            rebuilt[centre] = state.inventories
        return audit(logs, inventories if inventories is not None else rebuilt)
