"""Migration records: written whole at the start and on compaction, one journal line per
change in between; a fresh reader always sees the migration as the writer left it."""

from __future__ import annotations

import pytest

from gridfare.errors import SeatError, StaleVersion
from gridfare.seats.migration import Migration, TrainDateMove
from gridfare.seats.store import SeatsRoot

KEYS = [f"G{n}@2026-10-01" for n in range(1, 301)]


def _migration() -> Migration:
    return Migration("m1", "G%", [TrainDateMove(k, "A", "B") for k in KEYS])


def _stored(tmp_path) -> Migration:
    return SeatsRoot(tmp_path).read_migrations()["m1"][0]  # a fresh reader


def test_each_change_is_a_journal_line_and_reads_back_exactly(tmp_path):
    root, migration = SeatsRoot(tmp_path), _migration()
    root.write_migration(migration, {"auto": True})
    record = root.migrations_dir / "m1.json"
    journal = root.migrations_dir / "m1.journal"
    first = record.stat().st_ino, record.stat().st_mtime_ns
    for key in KEYS[:3]:
        for _ in range(4):  # copying, catching_up, frozen, flipped
            migration.advance(key, version=7)
            root.write_migration(migration, {"auto": True})
            assert _stored(tmp_path).to_record() == migration.to_record()
        migration.advance(key)  # done
        root.write_migration(migration, {"auto": True})
    assert (record.stat().st_ino, record.stat().st_mtime_ns) == first  # never rewritten
    assert journal.read_bytes().count(b"\n") == 15
    migration.pause()
    root.write_migration(migration, {"auto": True})
    stored = _stored(tmp_path)
    assert stored.state == "paused" and stored.to_record() == migration.to_record()


def test_the_record_is_compacted_and_a_stale_writer_still_refused(tmp_path):
    root, migration = SeatsRoot(tmp_path), _migration()
    root.write_migration(migration, {"auto": True})
    for key in KEYS[:20]:  # 100 changes: past the compaction point (75 for 300 moves)
        for _ in range(5):
            migration.advance(key, version=3)
            root.write_migration(migration, {"auto": True})
    journal = root.migrations_dir / "m1.journal"
    assert journal.read_bytes().count(b"\n") < 75
    assert _stored(tmp_path).to_record() == migration.to_record()

    other = SeatsRoot(tmp_path)  # another incarnation holding an older revision
    with pytest.raises(StaleVersion, match="older"):
        other.write_migration(_migration(), {"auto": True})
    assert _stored(tmp_path).to_record() == migration.to_record()


def test_a_torn_last_line_is_dropped_and_a_corrupt_one_refused(tmp_path):
    root, migration = SeatsRoot(tmp_path), _migration()
    root.write_migration(migration, {"auto": True})
    migration.advance(KEYS[0])
    root.write_migration(migration, {"auto": True})
    acknowledged = migration.to_record()
    migration.advance(KEYS[0])
    root.write_migration(migration, {"auto": True})
    journal = root.migrations_dir / "m1.journal"
    data = journal.read_bytes()
    journal.write_bytes(data[:-5])  # the last append torn by a crash
    assert _stored(tmp_path).to_record() == acknowledged
    first, second = data.split(b"\n")[:2]
    journal.write_bytes(first[:-3] + b"}}}\n" + second + b"\n")
    with pytest.raises(SeatError, match="line 1 of 2 is corrupt"):
        _stored(tmp_path)
