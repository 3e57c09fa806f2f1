"""What every seat actor shares: its name per seats root, the GC setting of a long-lived
actor and its counters' tally (kept apart so that the seat actors import each other one way
only)."""

from __future__ import annotations

import asyncio
import gc
import hashlib
from collections.abc import Callable

from gridfare.seats.store import SeatsRoot

__all__ = ["MetricTally", "quiet_gc", "seats_suffix"]


def quiet_gc() -> None:
    """Keep the cyclic GC's full collections short in a long-lived seat actor.

    A centre holds tens of thousands of inventories and orders, plus Ray's and pyarrow's
    module objects; a full (generation 2) collection walks all of them. Measured in
    ``bench/seats.py`` (2 cores, loaded): 130-490 ms pauses of a centre's event loop, which
    were the whole freeze-time tail (each migration step RPC occasionally took 100-300 ms)
    and part of the query tail. ``gc.freeze`` moves every object that survived to the
    permanent generation, so later full collections only walk what was created since. The
    seat state has no reference cycles (it is freed by reference counting when a train-date
    is dropped), so freezing it leaks nothing; a cyclic garbage that was alive at a freeze
    would be kept, which is why we freeze only after a full collection (all cyclic garbage
    just went) and after a bulk load.
    """
    gc.freeze()
    if _freeze_after_full_collection not in gc.callbacks:
        gc.callbacks.append(_freeze_after_full_collection)


def _freeze_after_full_collection(phase: str, info: dict) -> None:
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def seats_suffix(root: str) -> str:
    return hashlib.sha1(str(SeatsRoot(root).path).encode()).hexdigest()[:10]


class MetricTally:
    """Counters' increments, kept here and handed to ``emit(name, n)`` (the actor passes
    ``ray.util.metrics.Counter.inc``) at most once every ``every_s`` seconds, on a timer, so
    the last ones are reported too: ``Counter.inc`` on every ``sell_many`` call was ~2.6 %
    of a centre's Python samples under the HTTP bench (py-spy). Off an event loop (a
    centre restoring its state) each count is handed on at once."""

    def __init__(self, emit: Callable[[str, int], None], every_s: float = 1.0) -> None:
        self._emit = emit
        self._every = every_s
        self._counts: dict[str, int] = {}
        self._timer: asyncio.TimerHandle | None = None

    def count(self, name: str, n: int) -> None:
        self._counts[name] = self._counts.get(name, 0) + n
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on the loop (restoring): report at once
                self.report()
                return
            self._timer = loop.call_later(self._every, self.report)

    def report(self) -> None:
        """Hand every count kept so far on, one ``emit`` per name."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        counts, self._counts = self._counts, {}
        for name, n in counts.items():
            self._emit(name, n)
