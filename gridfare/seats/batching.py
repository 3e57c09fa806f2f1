"""Coalescing of concurrent requests to one centre into batched calls (pure asyncio; the
call itself is passed in, so tests drive it with a coroutine, not Ray)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gridfare.errors import ConfigError

__all__ = ["Batcher", "ClientConfig"]


class Batcher:
    """One centre's sales (or refunds), sent as ``sell_many`` (``refund_many``) calls.

    A request goes at once when fewer than ``in_flight`` calls are in flight to the centre;
    otherwise it joins the next call, sent when one returns. So a lone buyer pays no delay,
    and under load many sales share one actor call and one fsync. Profiled through the Serve
    app (64 connections, 2 cores): submitting one actor call per sale was the largest single
    cost in the replica (~a quarter of its CPU), and the centre paid per call as well.

    Under load (requests waiting when a call returns), the next call goes no sooner than
    ``min_gap_s`` after the one before it was sent, or at once if ``max_batch`` requests
    wait: a call costs the replica, the centre and Ray a few milliseconds of CPU whatever it
    carries, so with calls returning every ~10 ms each carried ~4 orders at a held
    1,000/s, and those fixed costs were what loaded the 2 cores (docs/benchmarks.md, "Seats
    over HTTP"). A request that finds nothing in flight and nothing waiting still goes at
    once.

    ``calls`` and ``requests`` count the calls sent and the requests they carried (their
    ratio is the coalescing achieved; the Serve app exports both as metrics).
    """

    def __init__(self, send, in_flight: int = 2, max_batch: int = 256,
                 min_gap_s: float = 0.0) -> None:
        if in_flight < 1 or max_batch < 1 or not min_gap_s >= 0:
            raise ConfigError(f"batcher: in_flight {in_flight} and max_batch {max_batch} "
                              f"must be >= 1, min_gap_s {min_gap_s} >= 0")
        self._send = send  # list of request tuples -> awaitable list of answers
        self._limit = in_flight
        self._max = max_batch
        self._gap = min_gap_s
        self._last_sent = float("-inf")  # the loop's time of the last call sent
        self._timer: asyncio.TimerHandle | None = None  # the next call, held for the gap
        self._queue: list[tuple[tuple, asyncio.Future]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task] = set()  # held until done (the loop keeps weak refs)
        self.calls = 0
        self.requests = 0

    def submit(self, request: tuple) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if self._timer is not None and len(self._queue) >= self._max:
            self._send_held()
        elif self._in_flight < self._limit and self._timer is None:
            self._start()
        return future

    def _next(self) -> None:
        """A call returned with requests waiting: the next call now, or at the gap's end."""
        loop = asyncio.get_running_loop()
        wait = self._last_sent + self._gap - loop.time()
        if wait > 0 and len(self._queue) < self._max:
            self._timer = loop.call_later(wait, self._send_held)
        else:
            self._start()

    def _send_held(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._queue and self._in_flight < self._limit:
            self._start()

    def _start(self) -> None:
        self._last_sent = asyncio.get_running_loop().time()
        batch, self._queue = self._queue[:self._max], self._queue[self._max:]
        self._in_flight += 1
        self.calls += 1
        self.requests += len(batch)
        task = asyncio.ensure_future(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[tuple, asyncio.Future]]) -> None:
        try:
            answers = await self._send([request for request, _ in batch])
        except Exception as exc:  # the whole call failed: every sale in it hears why
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
        finally:
            self._in_flight -= 1
            if self._queue and self._in_flight < self._limit and self._timer is None:
                self._next()


@dataclass(frozen=True)
class ClientConfig:
    """How a seats client batches and retries (checked on load; errors name the key).

    ``in_flight`` calls per centre at once and ``max_batch`` requests per call, for the
    coalesced single requests (``sell``; under load their calls to one centre go at least
    ``min_gap_s`` apart, see ``Batcher``) and for the bulk ones (``sell_many``, which
    sends ``bulk_in_flight`` calls per centre at once); ``max_hops`` "moved" answers are
    followed, a frozen train-date is retried for ``frozen_retry_s``."""

    in_flight: int = 1
    max_batch: int = 256
    min_gap_s: float = 0.025
    bulk_in_flight: int = 4
    bulk_max_batch: int = 512
    max_hops: int = 8
    frozen_retry_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("in_flight", "max_batch", "bulk_in_flight", "bulk_max_batch", "max_hops"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
                raise ConfigError(f"seats client config: {name}: must be an integer in "
                                  f"1..100000, got {value!r}")
        retry = self.frozen_retry_s
        if isinstance(retry, bool) or not isinstance(retry, (int, float)) or not retry >= 0:
            raise ConfigError(f"seats client config: frozen_retry_s: must be a number >= 0, "
                              f"got {retry!r}")
        gap = self.min_gap_s
        if isinstance(gap, bool) or not isinstance(gap, (int, float)) or not 0 <= gap <= 1:
            raise ConfigError(f"seats client config: min_gap_s: must be a number in 0..1 "
                              f"(seconds), got {gap!r}")
