"""``actors.seat_runtime.MetricTally``: counts kept, summed per name and handed on once
per interval by its timer (a real event loop; the metric is passed in as a function)."""

from __future__ import annotations

import asyncio

from actors.seat_runtime import MetricTally


async def _until(condition, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.001)


def test_counts_are_summed_per_name_and_reported_once_by_the_timer():
    emitted: list[tuple[str, int]] = []

    async def run() -> list[tuple[str, int]]:
        tally = MetricTally(lambda name, n: emitted.append((name, n)), every_s=0.02)
        tally.count("sales", 3)
        tally.count("sold_out", 1)
        tally.count("sales", 4)
        assert emitted == []  # nothing before the timer
        await _until(lambda: emitted)
        first = list(emitted)
        await asyncio.sleep(0.05)  # no second report of the same counts
        assert emitted == first
        return first

    assert sorted(asyncio.run(run())) == [("sales", 7), ("sold_out", 1)]


def test_counts_after_a_report_start_a_new_interval_and_the_last_ones_are_reported():
    emitted: list[tuple[str, int]] = []

    async def run() -> None:
        tally = MetricTally(lambda name, n: emitted.append((name, n)), every_s=0.02)
        tally.count("sales", 2)
        await _until(lambda: len(emitted) == 1)
        tally.count("sales", 5)  # the last count of a quiet period: still reported
        await _until(lambda: len(emitted) == 2)

    asyncio.run(run())
    assert emitted == [("sales", 2), ("sales", 5)]


def test_off_the_event_loop_each_count_is_reported_at_once():
    emitted: list[tuple[str, int]] = []
    tally = MetricTally(lambda name, n: emitted.append((name, n)))
    tally.count("refunds", 2)
    tally.count("refunds", 1)
    assert emitted == [("refunds", 2), ("refunds", 1)]


def test_report_hands_on_what_is_kept_now_and_cancels_the_timer():
    emitted: list[tuple[str, int]] = []

    async def run() -> None:
        tally = MetricTally(lambda name, n: emitted.append((name, n)), every_s=0.02)
        tally.count("sales", 1)
        tally.report()
        assert emitted == [("sales", 1)]
        await asyncio.sleep(0.05)
        assert emitted == [("sales", 1)]  # the cancelled timer reported nothing more

    asyncio.run(run())
