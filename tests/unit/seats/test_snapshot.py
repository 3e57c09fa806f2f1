from __future__ import annotations

import pytest

from gridfare.errors import SeatError
from gridfare.seats.inventory import Inventory, restore_inventories
from gridfare.seats.snapshot import Snapshot, read_snapshot, write_snapshot

from .conftest import STATIONS, make_train

B, T, J, N, S = STATIONS


def two_inventories():
    a, b = Inventory(make_train("G2")), Inventory(make_train("D1"))
    a.sell(B, J, "second", 2, "r1")
    b.sell(T, S, "business", 1, "r2")
    return a, b


def test_concat_sorts_by_key_and_restores_every_train_date():
    a, b = two_inventories()
    snap = Snapshot.concat([a.to_arrow(), b.to_arrow()], lsn=42)
    assert snap.keys() == ["D1@2026-10-01", "G2@2026-10-01"]
    back = restore_inventories(snap)
    assert back == {a.key: a, b.key: b}
    assert Inventory.from_arrow(snap, a.key) == a
    with pytest.raises(SeatError, match="name the key"):
        Inventory.from_arrow(snap)
    with pytest.raises(SeatError, match="does not hold"):
        Inventory.from_arrow(snap, "K9@2026-10-01")


def test_concat_refuses_a_train_date_twice():
    a, _ = two_inventories()
    with pytest.raises(SeatError, match="appears in two parts"):
        Snapshot.concat([a.to_arrow(), a.to_arrow()])


def test_bytes_are_stable_and_files_round_trip(tmp_path):
    a, b = two_inventories()
    snap = Snapshot.concat([b.to_arrow(), a.to_arrow()], lsn=7)
    again = Snapshot.concat([a.to_arrow(), b.to_arrow()], lsn=7)
    assert snap.to_bytes() == again.to_bytes()
    write_snapshot(snap, tmp_path / "c.snap")
    read = read_snapshot(tmp_path / "c.snap")
    assert read.lsn == 7 and read.to_bytes() == snap.to_bytes()
    assert not (tmp_path / "c.snap.tmp").exists()


def test_damaged_snapshots_are_refused(tmp_path):
    data = Snapshot.empty().to_bytes()
    with pytest.raises(SeatError, match="bad magic"):
        Snapshot.from_bytes(b"nope" + data)
    with pytest.raises(SeatError, match="cannot read the snapshot"):
        Snapshot.from_bytes(data[:-5])
    with pytest.raises(SeatError, match="cannot read the snapshot"):
        read_snapshot(tmp_path / "missing.snap")
