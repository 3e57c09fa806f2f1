"""The freeze window of one train-date's migration, as one ordered sequence with its steps
passed in (the destination centre runs it with Ray calls; tests with coroutines).

    freeze at the origin, take the final delta (durable there)
    -> apply the delta here (durable here)
    -> flip the directory to here (durable there)
    -> unfreeze here
    -> drop at the origin (its waiting sales answer "moved" at once)

In this order because the destination must hold every acknowledged sale before it sells on
top of them, and must be the directory's owner before it sells at all. A step that fails
stops the sequence there: before the flip the migrator undoes the copy and unfreezes the
origin; after it, the migrator finishes (unfreeze and drop are idempotent). It runs at the
destination rather than step by step from the migrator because every round trip through
the migrator was two more process wake-ups inside the window, and on 2 loaded cores a
wake-up is where the tail lives (``bench/seats.py``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gridfare.seats.wal import WalRecord

__all__ = ["TakeOver", "take_over"]


@dataclass(frozen=True)
class TakeOver:
    """The steps of one take-over, bound to its train-date, origin and versions."""

    freeze_delta: Callable[[], Awaitable[list[WalRecord]]]  # at the origin
    apply: Callable[[list[WalRecord]], Awaitable[object]]  # here, durable before it returns
    flip: Callable[[], Awaitable[int]]  # the directory; the version naming here
    unfreeze: Callable[[], Awaitable[object]]  # here
    drop: Callable[[int], Awaitable[float | None]]  # at the origin; seconds it was frozen


async def take_over(steps: TakeOver, timings: dict[str, float] | None = None,
                    clock: Callable[[], float] = time.perf_counter
                    ) -> tuple[int, float | None]:
    """Run the window; returns the directory version naming the destination and the seconds
    the train-date was frozen at the origin (None if the origin restarted meanwhile).
    ``timings``, if given, gets the seconds of each step by name (what a freeze waited on)."""
    times = timings if timings is not None else {}
    started = clock()

    def lap(name: str) -> None:
        nonlocal started
        now = clock()
        times[name] = now - started
        started = now

    delta = await steps.freeze_delta()
    lap("freeze_delta")
    await steps.apply(delta)
    lap("apply")
    version = await steps.flip()
    lap("flip")
    await steps.unfreeze()
    lap("unfreeze")
    frozen_s = await steps.drop(version)
    lap("drop")
    return version, frozen_s
