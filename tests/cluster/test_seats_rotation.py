"""Automatic checkpoints and log rotation on a real local Ray cluster: a centre killed after
its log rotated restarts from the snapshot and the tail, exactly as acknowledged, and the
audit still proves the whole history from the sealed segments."""

from __future__ import annotations

import asyncio

import pytest
import ray

from gridfare.seats.snapshot import SnapshotDelta
from gridfare.seats.store import SeatsRoot
from tests.seats_helpers import DAY, STATIONS, restart_actor, start_seats, stop_seats

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]
PLACE = {"G1": "A", "G2": "A", "G5": "B", "D3": "B", "D10": "C", "T9": "C"}


@pytest.fixture
def seats(ray_cluster, tmp_path):
    client = start_seats(tmp_path / "seats", placement=PLACE, snapshot_every=7)
    yield client
    stop_seats(client)


def _sell_many(seats, n: int, prefix: str) -> dict[str, dict]:
    async def go():
        async def one(i):
            a, b = (i % 4, i % 4 + 1)
            rid = f"{prefix}{i}"
            return rid, await seats.aio.sell(
                ("G1", "G2")[i % 2], DAY, STATIONS[a], STATIONS[b], "second", 1, rid
            )

        return dict(await asyncio.gather(*(one(i) for i in range(n))))

    return seats._run(go())


def _wait_for_checkpoints(centre, at_least: int) -> dict:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        report = ray.get(centre.report.remote())
        if report["snapshot_lsn"] >= at_least:
            return report
        time.sleep(0.05)
    raise AssertionError(f"no automatic checkpoint reached lsn {at_least}: {report}")


def test_centre_killed_after_rotation_restarts_from_snapshot_and_tail(seats):
    root = SeatsRoot(seats.aio.root.path)
    centre = seats.aio.centre("A")
    sold: dict[str, dict] = {}
    report = {"snapshot_lsn": 0}
    for round_ in range(4):  # each round logs more than snapshot_every records
        sold |= _sell_many(seats, 15, f"a{round_}-")
        report = _wait_for_checkpoints(centre, at_least=report["snapshot_lsn"] + 1)
    assert all(a["status"] == "sold" for a in sold.values())
    seats.refund("G1", DAY, "a0-0")
    segments = root.sealed_segments("A")
    assert len(segments) >= 2 and segments[0][0] == 1  # rotated more than once, from lsn 1
    assert report["segment_first_lsn"] == segments[-1][1] + 1
    tail = _sell_many(seats, 3, "b")  # acknowledged after the last checkpoint
    before = ray.get(centre.export_all.remote())
    lsn = ray.get(centre.report.remote())["wal_lsn"]

    restart_actor(centre)
    after = ray.get(centre.export_all.remote())
    assert after == before  # exactly the acknowledged state
    restarted = ray.get(centre.report.remote())
    assert restarted["replayed_at_start"] < lsn  # only the tail after the snapshot
    assert restarted["snapshot_lsn"] >= report["snapshot_lsn"]
    for rid, answer in {**sold, **tail}.items():
        if rid == "a0-0":
            continue
        train = answer["key"].split("@")[0]
        again = seats.sell(train, DAY, answer["from"], answer["to"], "second", 1, rid)
        assert again["repeat"] and again["seats"] == answer["seats"]
    audit = root.audit()  # offline: every sealed segment, then the current log
    assert audit.ok, [str(v) for v in audit.violations[:5]]
    assert audit.open_sales == len(sold) + len(tail) - 1
    assert seats.audit().ok  # and against the live inventories


def test_sales_go_on_while_a_checkpoint_runs(seats):
    centre = seats.aio.centre("B")

    async def go():
        checkpoint = asyncio.ensure_future(centre.checkpoint.remote())
        sales = [
            seats.aio.sell("G5", DAY, "Beijing", "Tianjin", "second", 1, f"c{i}")
            for i in range(20)
        ]
        return await checkpoint, await asyncio.gather(*sales)

    lsn, answers = seats._run(go())
    assert lsn > 0 and all(a["status"] == "sold" for a in answers)
    before = ray.get(centre.export_all.remote())
    restart_actor(centre)
    assert ray.get(centre.export_all.remote()) == before
    assert seats.audit().ok


def test_a_checkpoint_copies_only_changed_train_dates_and_a_restart_reads_the_chain(seats):
    root = SeatsRoot(seats.aio.root.path)
    centre = seats.aio.centre("C")  # D10 and T9
    seats.sell("D10", DAY, STATIONS[0], STATIONS[1], "second", 1, "d0")
    full = ray.get(centre.checkpoint.remote())  # the first since start: a full snapshot
    assert root.read_centre_snapshot("C").lsn == full and root.snapshot_deltas("C") == []
    seats.sell("T9", DAY, STATIONS[1], STATIONS[2], "second", 1, "t0")
    delta = ray.get(centre.checkpoint.remote())
    ((lsn, path),) = root.snapshot_deltas("C")
    assert lsn == delta > full
    assert SnapshotDelta.from_bytes(path.read_bytes()).changed.keys() == [
        f"T9@{DAY.isoformat()}"]  # D10 did not change: not copied again
    seats.sell("D10", DAY, STATIONS[2], STATIONS[3], "second", 1, "d1")  # in the log only
    before = ray.get(centre.export_all.remote())

    restart_actor(centre)
    assert ray.get(centre.export_all.remote()) == before
    assert ray.get(centre.report.remote())["snapshot_lsn"] == delta
    assert seats.audit().ok
