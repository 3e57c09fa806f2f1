"""An open-loop HTTP load generator for the load-sharing test and benchmark (127.0.0.1 only).

Requests are *sent on a schedule* (``phases``: seconds at a rate), whatever the answers, as
real clients arriving do; a closed loop (wrk) would slow down with the server and never
overflow its queue. Each request's latency is from its scheduled instant, so time spent
waiting to be sent counts against the server, not for it. The count and the time are
bounded by the schedule plus ``timeout_s``. The generator's own CPU time is measured
(``client_cpu_s``): at these rates it is a few per cent of one core (about 0.7 ms a
request), and it is reported beside the figures it could disturb.

``retries``: an idempotent request answered 5xx, or whose connection broke (its replica's
node was killed), is sent again up to this many times; ``lost`` counts requests never
answered 2xx/4xx.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

__all__ = ["LoadResult", "Phase", "run_load", "start_load"]


@dataclass(frozen=True)
class Phase:
    seconds: float
    rate: float  # requests/s


@dataclass
class Outcome:
    scheduled: float  # seconds from the start
    status: int = 0  # 0: no answer
    latency_s: float = 0.0
    attempts: int = 0


@dataclass
class LoadResult:
    outcomes: list[Outcome] = field(default_factory=list)
    started_at: float = 0.0  # time.time() of the schedule's start
    client_cpu_s: float = 0.0
    wall_s: float = 0.0

    @property
    def sent(self) -> int:
        return len(self.outcomes)

    @property
    def lost(self) -> int:
        return sum(1 for o in self.outcomes if not 200 <= o.status < 500)

    @property
    def retried(self) -> int:
        return sum(1 for o in self.outcomes if o.attempts > 1)

    def statuses(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for o in self.outcomes:
            out[o.status] = out.get(o.status, 0) + 1
        return dict(sorted(out.items()))

    def latency_quantile(self, q: float, start: float = 0.0, end: float = float("inf")) -> float:
        """Of the answered requests scheduled in ``[start, end)`` seconds."""
        values = sorted(o.latency_s for o in self.outcomes
                        if start <= o.scheduled < end and 200 <= o.status < 300)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q * len(values)))]


def _check_loopback(url: str) -> None:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"load generator: {url} is not on this machine's loopback")


async def _run(url: str, body: bytes, phases: list[Phase], timeout_s: float,
               retries: int, result: LoadResult) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(outcome: Outcome, due: float) -> None:
            while outcome.attempts <= retries:
                outcome.attempts += 1
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        outcome.status = response.status
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    outcome.status = 0
                if 200 <= outcome.status < 500:
                    break
                await asyncio.sleep(0.2)
            outcome.latency_s = time.monotonic() - due

        loop_start = time.monotonic()
        result.started_at = time.time()
        tasks = []
        offset = 0.0
        for phase in phases:
            n = round(phase.seconds * phase.rate)
            for i in range(n):
                scheduled = offset + i / phase.rate
                delay = loop_start + scheduled - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                outcome = Outcome(scheduled=scheduled)
                result.outcomes.append(outcome)
                tasks.append(asyncio.create_task(one(outcome, loop_start + scheduled)))
            offset += phase.seconds
        await asyncio.gather(*tasks)


def run_load(url: str, body: bytes, phases: list[Phase], *, timeout_s: float = 120.0,
             retries: int = 0) -> LoadResult:
    """Send the schedule and wait for every answer (at most ``timeout_s`` after the last)."""
    _check_loopback(url)
    result = LoadResult()
    cpu, wall = time.process_time(), time.monotonic()
    asyncio.run(_run(url, body, phases, timeout_s, retries, result))
    result.client_cpu_s = time.process_time() - cpu
    result.wall_s = time.monotonic() - wall
    return result


def start_load(url: str, body: bytes, phases: list[Phase], **options
               ) -> tuple[threading.Thread, LoadResult]:
    """:func:`run_load` in a thread; join the thread, then read the result."""
    _check_loopback(url)
    result = LoadResult()

    def work() -> None:
        cpu, wall = time.thread_time(), time.monotonic()
        asyncio.run(_run(url, body, phases, options.get("timeout_s", 120.0),
                         options.get("retries", 0), result))
        result.client_cpu_s = time.thread_time() - cpu
        result.wall_s = time.monotonic() - wall

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, result


def wait_http(url: str, timeout_s: float = 60.0) -> None:
    """Until ``url`` answers 200 (a service just deployed); its last error after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.25)
