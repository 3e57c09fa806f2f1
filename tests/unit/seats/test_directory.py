from __future__ import annotations

import pytest

from gridfare.errors import InvalidInput, StaleVersion, TrainMoved, UnknownTrain, WalCorrupt
from gridfare.seats.directory import Directory, DirectoryRecord, Entry

KEY = "G1@2026-10-01"


def test_place_then_move_bumps_the_version():
    d = Directory()
    assert d.place(KEY, "A") == DirectoryRecord("place", KEY, "A", 1)
    assert d.move(KEY, "B", expected_version=1) == DirectoryRecord("move", KEY, "B", 2)
    assert d.lookup(KEY) == Entry("B", 2)
    assert d.keys_of("B") == [KEY] and d.keys_of("A") == []


def test_a_stale_version_is_refused_not_merged():
    d = Directory()
    d.place(KEY, "A")
    d.move(KEY, "B", expected_version=1)
    with pytest.raises(StaleVersion, match="based on version 1, but it is at version 2 on B"):
        d.move(KEY, "C", expected_version=1)
    assert d.lookup(KEY) == Entry("B", 2)


def test_place_is_idempotent_on_the_same_centre_only():
    d = Directory()
    d.place(KEY, "A")
    assert d.place(KEY, "A").version == 1
    with pytest.raises(StaleVersion, match="already on A"):
        d.place(KEY, "B")


def test_check_answers_moved_with_owner_and_version():
    d = Directory()
    d.place(KEY, "A")
    d.move(KEY, "B", 1)
    assert d.check(KEY, "B") == Entry("B", 2)
    with pytest.raises(TrainMoved) as err:
        d.check(KEY, "A")
    assert (err.value.centre, err.value.version, err.value.key) == ("B", 2, KEY)


def test_unknown_train_and_bad_centre():
    d = Directory()
    with pytest.raises(UnknownTrain, match=KEY):
        d.lookup(KEY)
    with pytest.raises(InvalidInput, match="centre must be a non-empty string"):
        d.place(KEY, "")


def test_rebuild_from_records_is_idempotent():
    d = Directory()
    log = [d.place(KEY, "A"), d.move(KEY, "B", 1), d.place("G2@2026-10-01", "C")]
    log.append(d.remove("G2@2026-10-01", 1))
    log.append(d.place("G2@2026-10-01", "A"))
    again = Directory.rebuild(log + log)
    assert (
        again.entries()
        == d.entries()
        == {
            KEY: Entry("B", 2),
            "G2@2026-10-01": Entry("A", 3),
        }
    )
    round_trip = [DirectoryRecord.from_dict(r.to_dict()) for r in log]
    assert Directory.rebuild(round_trip).entries() == d.entries()


def test_rebuild_refuses_a_version_gap():
    with pytest.raises(WalCorrupt, match="version 3 does not follow 0"):
        Directory.rebuild([DirectoryRecord("move", KEY, "B", 3)])


def test_bad_record_is_refused():
    with pytest.raises(InvalidInput, match="bad op"):
        DirectoryRecord.from_dict({"op": "teleport", "key": KEY, "centre": "A", "version": 1})
