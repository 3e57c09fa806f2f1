"""The seat fault plan, each fault a test, on a real multi-node local Ray cluster.

Migrations are driven one stage at a time (``auto=False``) so that each fault lands exactly
where the plan names it; every test ends with the audit.
"""

from __future__ import annotations

import pytest
import ray

from gridfare.seats.answers import Moved
from gridfare.seats.store import SeatsRoot
from tests.seats_helpers import DAY, restart_actor, start_seats, stop_seats

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(180)]
PLACE = {"G1": "A", "G2": "A", "G5": "B", "D3": "B", "D10": "C", "T9": "C"}
KEY = "G1@2026-10-01"


@pytest.fixture
def seats(ray_cluster, tmp_path):
    client = start_seats(tmp_path / "seats", placement=PLACE)
    yield client
    stop_seats(client)


def test_target_dies_mid_copy(seats):
    seats.sell("G1", DAY, "Beijing", "Jinan", "second", 2, "before")
    m = seats.migrate("G1 dates=2026-10-01", "B", auto=False)
    seats.step(m["id"])  # copy: installed (frozen) at B, A keeps selling
    assert seats.sell("G1", DAY, "Jinan", "Shanghai", "second", 1, "during")["status"] == "sold"
    target = seats.aio.centre("B")
    restart_actor(target)
    status = seats.step(m["id"])  # catch-up finds B restarted: undone, marked failed
    assert status["state"] == "failed"
    (move,) = status["moves"]
    assert move["step"] == "failed" and "restarted" in move["reason"]
    assert seats.owners()[KEY] == "A"  # the train-date stayed at the source ...
    assert seats.sell("G1", DAY, "Beijing", "Tianjin", "first", 1, "after")["status"] == "sold"
    assert seats.audit().ok  # ... and B's copy was discarded (no train-date held twice)
    seats.resume(m["id"])  # retry possible
    while seats.migration(m["id"])["state"] == "running":
        seats.step(m["id"])
    assert seats.migration(m["id"])["state"] == "done" and seats.owners()[KEY] == "B"
    left = seats.remaining("G1", DAY, "Beijing", "Shanghai")["classes"]
    assert left == {"first": 9, "second": 58}  # "during" reuses seat 1 on later legs
    assert seats.audit().ok


def test_source_dies_after_the_flip(seats):
    for i in range(5):
        seats.sell("G1", DAY, "Beijing", "Jinan", "second", 1, f"s{i}")
    m = seats.migrate("G1 dates=2026-10-01", "C", auto=False)
    seats.step(m["id"])  # copy
    seats.step(m["id"])  # catch up
    status = seats.step(m["id"])  # freeze, final delta, flip, unfreeze at C
    assert status["moves"][0]["step"] == "flipped"
    source = seats.aio.centre("A")
    restart_actor(source)
    status = seats.step(m["id"])  # drop at the restarted source
    assert status["state"] == "done" and seats.owners()[KEY] == "C"
    answer = ray.get(
        source.sell.remote("G1", "2026-10-01", "Beijing", "Jinan", "second", 1, "late")
    )
    assert answer == Moved("G1@2026-10-01", "C", answer.version)
    assert seats.sell("G1", DAY, "Beijing", "Jinan", "second", 1, "s0")["repeat"]  # nothing lost
    assert seats.remaining("G1", DAY, "Beijing", "Jinan")["classes"]["second"] == 55
    assert seats.audit().ok



def test_destination_restarts_after_the_flip_and_sells(seats):
    # Flipped but not yet stored as finished: the restarted destination owns the
    # train-date and must sell it, not keep it frozen waiting for an unfreeze.
    seats.sell("G1", DAY, "Beijing", "Jinan", "second", 1, "s0")
    m = seats.migrate("G1 dates=2026-10-01", "C", auto=False)
    for _ in range(3):  # copy, catch up, switch
        status = seats.step(m["id"])
    assert status["moves"][0]["step"] == "flipped"
    restart_actor(seats.aio.centre("C"))
    assert seats.owners()[KEY] == "C"
    sale = seats.sell("G1", DAY, "Jinan", "Shanghai", "second", 1, "after-restart")
    assert sale["status"] == "sold"
    assert seats.step(m["id"])["state"] == "done"
    assert seats.sell("G1", DAY, "Beijing", "Jinan", "second", 1, "s0")["repeat"]
    assert seats.audit().ok

def test_directory_restarts_and_rebuilds_its_map(seats):
    m = seats.migrate("D%", "A")
    assert seats.wait_migration(m["id"])["state"] == "done"
    directory = seats.aio.directory
    before = ray.get(directory.entries.remote())
    restart_actor(directory)
    after = ray.get(directory.entries.remote())
    assert after == before and after[1]["D3@2026-10-01"] == ("A", 2)
    seats.aio._map.clear()
    assert seats.sell("D3", DAY, "Beijing", "Jinan", "second", 1, "d")["status"] == "sold"
    assert seats.audit().ok


def test_migrator_restart_mid_migration_resumes_cleanly(seats):
    seats.sell("G2", DAY, "Beijing", "Jinan", "second", 1, "g2")
    m = seats.migrate("G2", "B", auto=False)
    seats.step(m["id"])
    seats.step(m["id"])  # G2@2026-10-01 copied and caught up at B
    migrator = seats.aio.migrator
    restart_actor(migrator)
    status = seats.migration(m["id"])  # the restarted migrator restarted the move cleanly
    assert status["state"] == "running" and status["current"] is None
    assert seats.owners()["G2@2026-10-01"] == "A"
    assert seats.sell("G2", DAY, "Jinan", "Shanghai", "second", 1, "g2b")["status"] == "sold"
    while seats.migration(m["id"])["state"] == "running":
        seats.step(m["id"])
    assert {k: c for k, c in seats.owners().items() if k.startswith("G2")} == {
        "G2@2026-10-01": "B",
        "G2@2026-10-02": "B",
    }
    assert seats.audit().ok


def test_source_dies_before_the_switch(seats):
    """The freeze window (run by the destination) refuses a source restarted since the copy:
    the move is undone before the flip, nothing is lost, and a resume completes it."""
    seats.sell("G1", DAY, "Beijing", "Jinan", "second", 2, "before")
    m = seats.migrate("G1 dates=2026-10-01", "B", auto=False)
    seats.step(m["id"])  # copy
    seats.step(m["id"])  # catch up
    restart_actor(seats.aio.centre("A"))
    status = seats.step(m["id"])  # switch: refused, undone
    assert status["state"] == "failed" and "restarted" in status["moves"][0]["reason"]
    assert seats.owners()[KEY] == "A"
    assert seats.sell("G1", DAY, "Jinan", "Shanghai", "second", 1, "after")["status"] == "sold"
    assert seats.audit().ok
    seats.resume(m["id"])
    while seats.migration(m["id"])["state"] == "running":
        seats.step(m["id"])
    assert seats.owners()[KEY] == "B"
    assert seats.sell("G1", DAY, "Beijing", "Jinan", "second", 2, "before")["repeat"]
    assert seats.audit().ok


def test_a_finished_migration_is_stored_as_done(seats):
    # The migrator stores fewer steps than it goes through ("catching_up" is not stored):
    # the end must still reach the disk.
    m = seats.migrate("G2", "B")
    seats.wait_migration(m["id"])
    stored, _ = SeatsRoot(seats.aio.root.path).read_migrations()[m["id"]]
    assert stored.state == "done"
    assert {move.step for move in stored.moves.values()} == {"done"}
    restart_actor(seats.aio.migrator)  # and a restart finds nothing to redo
    assert seats.migration(m["id"])["state"] == "done"
