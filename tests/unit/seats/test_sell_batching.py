"""The client's sale batching (``gridfare.seats.batching.Batcher``), with a coroutine as the
centre: the real batcher, I/O passed in."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from gridfare.errors import ConfigError, InvalidInput, SeatError, TrainFrozen
from gridfare.seats.answers import Frozen, Refused, Sold, settled
from gridfare.seats.batching import Batcher, ClientConfig

BATCH_IN_FLIGHT = 2


def _run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def test_lone_sales_go_at_once_and_the_rest_share_calls_in_order():
    calls: list[list[tuple]] = []

    async def send(batch):
        calls.append(batch)
        await asyncio.sleep(0.01)
        return [{"status": "sold", "request_id": r[-1]} for r in batch]

    async def scenario():
        seller = Batcher(send, BATCH_IN_FLIGHT)
        trip = ("G1", "2026-10-01", "A", "B", "second", 1)
        futures = [seller.submit((*trip, f"r{i}")) for i in range(10)]
        return await asyncio.gather(*futures)

    answers = _run(scenario())
    assert [a["request_id"] for a in answers] == [f"r{i}" for i in range(10)]
    assert [len(c) for c in calls[:BATCH_IN_FLIGHT]] == [1] * BATCH_IN_FLIGHT
    assert sum(len(c) for c in calls) == 10 and len(calls) < 10
    assert [r[-1] for c in calls for r in c] == [f"r{i}" for i in range(10)]  # order kept


def test_the_batcher_counts_its_calls_and_the_requests_they_carried():
    async def send(batch):
        await asyncio.sleep(0.01)
        return [r[-1] for r in batch]

    async def scenario():
        seller = Batcher(send, in_flight=1, max_batch=4)
        answers = await asyncio.gather(*(seller.submit(("G1", f"r{i}")) for i in range(9)))
        return seller, answers

    seller, answers = _run(scenario())
    assert answers == [f"r{i}" for i in range(9)]  # each its own answer
    # 1 at once, then the 8 waiting in calls of at most 4
    assert (seller.calls, seller.requests) == (3, 9)


def test_under_load_calls_go_at_least_the_gap_apart_and_a_lone_sale_at_once():
    gap = 0.05
    sent: list[tuple[float, int]] = []

    async def send(batch):
        sent.append((asyncio.get_running_loop().time(), len(batch)))
        await asyncio.sleep(0.015)  # longer than between two sales, shorter than the gap
        return [r[-1] for r in batch]

    async def scenario():
        loop = asyncio.get_running_loop()
        seller = Batcher(send, in_flight=1, max_batch=256, min_gap_s=gap)
        futures = []
        for i in range(12):  # one sale every 10 ms: waiting whenever a call returns
            futures.append(seller.submit(("G1", f"r{i}")))
            await asyncio.sleep(0.01)
        answers = await asyncio.gather(*futures)
        await asyncio.sleep(2 * gap)  # idle: nothing in flight, nothing waiting
        started = loop.time()
        lone = await seller.submit(("G1", "lone"))
        return answers, lone, sent[-1][0] - started

    answers, lone, lone_wait = _run(scenario())
    assert answers == [f"r{i}" for i in range(12)] and lone == "lone"
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(sent)]
    assert all(g >= gap - 0.001 for g in gaps), gaps  # the loop's clock, not a speed
    assert sum(n for _, n in sent[:-1]) == 12 and len(sent) - 1 < 12  # sales shared calls
    assert lone_wait < gap  # went at once, not held for the gap


def test_a_full_batch_goes_without_waiting_for_the_gap():
    sent: list[int] = []

    async def send(batch):
        sent.append(len(batch))
        await asyncio.sleep(0)
        return [r[-1] for r in batch]

    async def scenario():
        seller = Batcher(send, in_flight=1, max_batch=4, min_gap_s=60.0)
        return await asyncio.wait_for(
            asyncio.gather(*(seller.submit(("G1", f"r{i}")) for i in range(9))), timeout=5)

    assert _run(scenario()) == [f"r{i}" for i in range(9)]
    assert sent[:2] == [1, 4]  # the full batch of 4 did not wait 60 s


def test_a_failed_call_fails_each_of_its_sales():
    async def send(batch):
        raise SeatError("centre unavailable")

    async def scenario():
        seller = Batcher(send, BATCH_IN_FLIGHT)
        futures = [seller.submit(("G1",) * 7) for _ in range(3)]
        return await asyncio.gather(*futures, return_exceptions=True)

    assert all(isinstance(r, SeatError) for r in _run(scenario()))


def test_error_answers_are_raised_as_their_own_errors():
    sold = Sold("G1@2026-10-01", "r", "second", "A", "B", (1,), False)
    assert settled(sold) is sold
    with pytest.raises(TrainFrozen, match="frozen"):
        settled(Frozen("G1@2026-10-01", "frozen"))
    error = InvalidInput("bad")
    with pytest.raises(InvalidInput) as caught:
        settled(Refused(error))
    assert caught.value is error  # the error itself, not a class revived by name


@pytest.mark.parametrize("bad", [-0.001, 1.5, True, "0.02"])
def test_client_config_refuses_a_bad_gap_naming_the_key(bad):
    with pytest.raises(ConfigError, match="min_gap_s"):
        ClientConfig(min_gap_s=bad)
