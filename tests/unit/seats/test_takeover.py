"""The take-over sequence (``gridfare.seats.takeover``): its order, and that a failed step
stops it there."""

from __future__ import annotations

import asyncio

import pytest

from gridfare.errors import StaleVersion
from gridfare.seats.takeover import TakeOver, take_over


def _steps(calls: list, fail: str = "") -> TakeOver:
    def step(name, result=None):
        async def run(*args):
            calls.append((name, *args))
            if name == fail:
                raise StaleVersion(f"{name} refused")
            return result
        return run

    return TakeOver(freeze_delta=step("freeze_delta", ["r1"]), apply=step("apply"),
                    flip=step("flip", 7), unfreeze=step("unfreeze"), drop=step("drop", 0.01))


def test_the_window_runs_in_order_and_answers_the_new_version():
    calls: list = []
    assert asyncio.run(take_over(_steps(calls))) == (7, 0.01)
    assert calls == [("freeze_delta",), ("apply", ["r1"]), ("flip",), ("unfreeze",),
                     ("drop", 7)]


@pytest.mark.parametrize("fail, done", [("apply", 2), ("flip", 3), ("unfreeze", 4)])
def test_a_failed_step_stops_the_sequence(fail, done):
    calls: list = []
    with pytest.raises(StaleVersion):
        asyncio.run(take_over(_steps(calls, fail)))
    assert len(calls) == done  # nothing after it: the destination never unfreezes unflipped


def test_the_window_times_each_step():
    calls: list = []
    ticks = iter(range(0, 100, 2))
    timings: dict = {}
    asyncio.run(take_over(_steps(calls), timings, clock=lambda: next(ticks)))
    assert timings == {"freeze_delta": 2, "apply": 2, "flip": 2, "unfreeze": 2, "drop": 2}
