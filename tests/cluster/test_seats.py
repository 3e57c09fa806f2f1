"""Seat centres, directory, client and migrations on a real multi-node local Ray cluster."""

from __future__ import annotations

import asyncio
import random

import pytest
import ray

from gridfare.errors import InvalidInput, MigrationError, UnknownOrder, UnknownTrain
from gridfare.seats.answers import Moved
from tests.seats_helpers import DAY, restart_actor, start_seats, stop_seats

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]
PLACE = {"G1": "A", "G2": "A", "G5": "B", "D3": "B", "D10": "C", "T9": "C"}


@pytest.fixture
def seats(ray_cluster, tmp_path):
    client = start_seats(tmp_path / "seats", placement=PLACE)
    yield client
    stop_seats(client)


def test_sell_refund_remaining_and_idempotent_requests(seats):
    sale = seats.sell("G1", DAY, "Beijing", "Nanjing", "second", 2, "r1")
    assert sale["status"] == "sold" and sale["seats"] == [1, 2] and not sale["repeat"]
    again = seats.sell("G1", DAY, "Beijing", "Nanjing", "second", 2, "r1")
    assert again["seats"] == [1, 2] and again["repeat"]
    left = seats.remaining("G1", DAY, "Tianjin", "Jinan")
    assert left["classes"] == {"first": 10, "second": 58}
    # Disjoint segment: the same seat sells again.
    assert seats.sell("G1", DAY, "Nanjing", "Shanghai", "second", 1, "r2")["seats"] == [1]
    out = seats.sell("G1", DAY, "Beijing", "Shanghai", "first", 5, "r3")
    assert out["status"] == "sold"
    seats.sell("G1", DAY, "Beijing", "Shanghai", "first", 5, "r4")
    sold_out = seats.sell("G1", DAY, "Beijing", "Tianjin", "first", 1, "r5")
    assert sold_out == {**sold_out, "status": "sold_out", "remaining": 0}
    refund = seats.refund("G1", DAY, "r1")
    assert refund["status"] == "refunded" and refund["seats"] == [1, 2]
    assert seats.refund("G1", DAY, "r1")["repeat"]
    with pytest.raises(UnknownOrder):
        seats.refund("G1", DAY, "nobody")
    with pytest.raises(UnknownTrain):
        seats.sell("G404", DAY, "Beijing", "Jinan", "second", 1, "x")
    with pytest.raises(InvalidInput, match="before"):
        seats.sell("G1", DAY, "Jinan", "Beijing", "second", 1, "x")
    with pytest.raises(InvalidInput, match="count"):
        seats.sell("G1", DAY, "Beijing", "Jinan", "second", 0, "x")
    report = {r["centre_id"]: r for r in seats.reports()}
    assert report["A"]["train_dates"] == 4 and report["A"]["seats_stored"] == 4 * 70
    assert seats.audit().ok


def test_bulk_sell_and_refund_group_by_centre_and_follow_moves(seats):
    from gridfare.seats.answers import Refunded, Refused, Sold, SoldOut

    # G5 moves from B to C behind the client's back: B answers "moved" and the bulk path
    # sends those requests again to C itself. G1 lives at A, but the client's map says C,
    # which never held it: asked again at the directory.
    seats.owners()
    m = seats.migrate("G5 dates=2026-10-01", "C")
    assert seats.wait_migration(m["id"], timeout_s=120)["state"] == "done"
    seats.aio._map["G1@2026-10-01"] = ("C", 0)
    requests = [(n, "2026-10-01", "Beijing", "Jinan", "first", 1, f"b-{n}-{i}")
                for n in ("G1", "G5", "D10") for i in range(12)]
    requests.append(("G1", "2026-10-01", "Beijing", "Jinan", "royal", 1, "b-bad"))
    with pytest.raises(InvalidInput, match="royal"):  # checked whole, before anything is sent
        seats.sell_many(requests)
    answers = seats.sell_many(requests[:-1])
    assert [type(a) for a in answers] == ([Sold] * 10 + [SoldOut] * 2) * 3
    assert answers[0].seats == (1,) and answers[9].seats == (10,)
    assert seats.aio._map["G1@2026-10-01"][0] == "A"
    assert seats.aio._map["G5@2026-10-01"][0] == "C"
    again = seats.sell_many(requests[:3])  # idempotent by request_id
    assert [a.seats for a in again] == [a.seats for a in answers[:3]] and again[0].repeat
    refunds = seats.refund_many([(n, "2026-10-01", f"b-{n}-0") for n in ("G1", "D10")]
                                + [("G1", "2026-10-01", "never")])
    assert [type(r) for r in refunds] == [Refunded, Refunded, Refused]
    assert isinstance(refunds[2].error, UnknownOrder)
    assert seats.remaining("G1", DAY, "Beijing", "Jinan")["classes"]["first"] == 1
    assert seats.audit().ok


def test_new_train_goes_to_the_centre_with_fewest_seats(seats):
    from gridfare.seats.train import TrainDate

    placed = seats.create_train(TrainDate("K7", DAY, ("Xian", "Lanzhou"), {"second": 30}))
    assert placed["centre"] in {"A", "B", "C"} and placed["version"] == 1
    assert seats.sell("K7", DAY, "Xian", "Lanzhou", "second", 1, "k1")["status"] == "sold"


def test_centre_killed_rebuilds_exactly_the_acknowledged_state(seats):
    for i in range(20):
        seats.sell("G2", DAY, "Beijing", "Jinan", "second", 1, f"k{i}")
    seats.refund("G2", DAY, "k3")
    centre = seats.aio.centre("A")
    ray.get(centre.checkpoint.remote())  # restart = snapshot + log after it
    for i in range(20, 25):
        seats.sell("G2", DAY, "Jinan", "Shanghai", "second", 2, f"k{i}")
    before = ray.get(centre.export_all.remote())
    restart_actor(centre)
    after = ray.get(centre.export_all.remote())  # waits for the restarted centre
    assert after == before
    assert seats.sell("G2", DAY, "Beijing", "Jinan", "second", 1, "k0")["repeat"]
    assert seats.audit().ok


def test_prefix_migration_pause_resume_and_rollback(seats):
    seats.sell("G1", DAY, "Beijing", "Jinan", "second", 1, "g1")
    seats.sell("D3", DAY, "Beijing", "Jinan", "second", 1, "d3")
    m = seats.migrate("G% dates=2026-10-01..2026-10-02", "C", auto=False)
    assert m["steps"] == {"pending": 6}  # G1, G2, G5 on two days; none on C yet
    seats.step(m["id"])  # copy of the first train-date
    paused = seats.pause(m["id"])
    assert paused["state"] == "paused" and paused["current"] is not None
    while seats.migration(m["id"])["current"] is not None:
        seats.step(m["id"])  # the one in flight finishes ...
    with pytest.raises(MigrationError, match="nothing to do"):
        seats.step(m["id"])  # ... and no other starts
    owners = seats.owners()
    assert sum(c == "C" for k, c in owners.items() if k.startswith("G")) == 1
    # The client follows "moved" transparently.
    assert seats.sell("G1", DAY, "Jinan", "Shanghai", "second", 1, "g1b")["status"] == "sold"
    seats.resume(m["id"])
    while seats.migration(m["id"])["state"] == "running":
        seats.step(m["id"])
    assert seats.migration(m["id"])["state"] == "done"
    assert {c for k, c in seats.owners().items() if k.startswith("G")} == {"C"}
    seats.rollback(m["id"])
    while seats.migration(m["id"])["state"] == "rolling_back":
        seats.step(m["id"])
    assert seats.migration(m["id"])["state"] == "rolled_back"
    owners = seats.owners()
    assert owners["G1@2026-10-01"] == "A" and owners["G5@2026-10-02"] == "B"
    g1 = seats.remaining("G1", DAY, "Beijing", "Shanghai")
    assert g1["classes"]["second"] == 59  # seat 1 sold on both halves came back with it
    assert seats.audit().ok


def test_the_switch_drops_at_the_origin_and_measures_the_freeze_there(seats):
    # A client with the old map asks the origin right after the switch: it is told "moved"
    # at once (the drop is part of the switch), not held frozen until the migrator's next
    # stage (up to freeze_wait_s, then TrainFrozen).
    m = seats.migrate("G1 dates=2026-10-01", "B", auto=False)
    for _ in range(3):  # copy, catch up, switch
        status = seats.step(m["id"])
    assert status["moves"][0]["step"] == "flipped"
    origin = seats.aio.centre("A")
    answer = ray.get(origin.sell.remote("G1", "2026-10-01", "Beijing", "Jinan", "second", 1,
                                        "stale-map"), timeout=1.5)
    assert answer == Moved("G1@2026-10-01", "B", answer.version)
    (frozen,) = ray.get(seats.aio.migrator.freeze_times.remote())
    assert 0 < frozen < 1.5
    # A query with the same old map (the sync client's one-ray.get path asks the origin
    # first) is followed to the new owner as well.
    key = "G1@2026-10-01"
    assert seats.aio._map[key][0] == "A"
    assert ray.get(origin.remaining.remote(["G1", "2026-10-01", "Beijing", "Jinan"]))[0] == "moved"
    left = seats.remaining("G1", DAY, "Beijing", "Jinan")
    assert left["key"] == key and left["classes"]["second"] > 0
    assert seats.aio._map[key][0] == "B"
    assert seats.step(m["id"])["state"] == "done"  # finish: unfreeze and drop, idempotent
    assert seats.sell("G1", DAY, "Beijing", "Jinan", "second", 1, "fresh")["status"] == "sold"
    assert seats.audit().ok


async def _buyers(seats, hot, n_requests, concurrency, answers, first=0):
    semaphore = asyncio.Semaphore(concurrency)
    stations = ("Beijing", "Tianjin", "Jinan", "Nanjing", "Shanghai")
    rng = random.Random(7 + first)
    plan = []
    for i in range(first, first + n_requests):
        a, b = sorted(rng.sample(range(5), 2))
        plan.append((rng.choice(hot), stations[a], stations[b], rng.choice((1, 1, 2)), f"c{i}"))

    async def buy(train_no, first, last, count, rid):
        async with semaphore:
            answers[rid] = await seats.aio.sell(train_no, DAY, first, last, "second", count, rid)
            # Every fifth sale is refunded at once: refunds cross the migrations too.
            if answers[rid]["status"] == "sold" and int(rid[1:]) % 5 == 0:
                refund = await seats.aio.refund(train_no, DAY, rid)
                answers[rid] = {**answers[rid], "status": refund["status"]}

    await asyncio.gather(*(buy(*p) for p in plan))


def test_concurrent_buyers_while_migrating_back_and_forth_then_audit(seats):
    aio = seats.aio
    answers: dict[str, dict] = {}

    async def scenario():
        # A wave of buyers starts with each migration, so every migration runs under load
        # however fast the buyers are.
        waves, moves = [], 0
        for i, target in enumerate(("C", "A", "C", "B")):
            wave = _buyers(seats, ["G1", "G2", "D3"], 750, 64, answers, first=750 * i)
            waves.append(asyncio.ensure_future(wave))
            m = await aio.migrate("G1 G2 D3 dates=2026-10-01", target)
            status = await aio.wait_migration(m["id"])
            assert status["state"] == "done", status
            moves += 1
        await asyncio.gather(*waves)
        return moves

    moves = seats._run(scenario())
    assert moves >= 2
    sold = {rid: a for rid, a in answers.items() if a["status"] == "sold"}
    assert len(answers) == 3000 and sold
    assert "refunded" in {a["status"] for a in answers.values()}
    assert {a["status"] for a in answers.values()} <= {"sold", "sold_out", "refunded"}
    report = seats.audit()
    assert report.ok, [str(v) for v in report.violations[:5]]
    assert report.open_sales == len(sold)
