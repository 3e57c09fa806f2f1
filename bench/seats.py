"""Seat inventory on Ray: sales/s (actor path and HTTP), query latency, migration freeze time
and the other trains' throughput during a prefix migration, in one run.

Real path: a local Ray cluster (2 CPUs, started here), four SeatCentre actors with their
WALs and fsync on a temporary directory, the SeatDirectory and SeatMigrator, the Serve HTTP
app on 127.0.0.1. Synthetic national timetable (``generate_timetable``: thousands of trains
x 15 sale days) placed by the bureau formula, Zipf demand (a few hot trains draw most).

- actor path: the client's bulk ``sell_many`` (grouped by centre, many sales per call, one
  fsync per batch, several batches in flight per centre); answers/s and successful
  sales/s are reported apart (a sold-out answer is an answer, not a sale);
- HTTP: ``POST /orders`` one sale per request, 64 concurrent connections;
- queries: ``remaining`` one at a time, through the client (actor) and over HTTP;
- migration: a prefix migration (``G1% dates=...``) and its rollback while 64 buyers keep
  selling and refunding on other trains; each move alternates 5 s windows moving and
  paused, and its figure is the other trains' rate while moving / while paused (paired
  windows, so a drift of the load falls on both sides), and the mean of the two.

The load generator (this driver: the buyers, the HTTP client) stands in for clients on other
machines. For the throughput phases it runs at nice 10 once the cluster is up, as the
published Redis comparison always ran. For the ``remaining`` queries and the migration phase
it runs at the niceness of the cluster's workers (read from the centres' processes; 0, the
project's ``actors.attach.RAY_PROCESS_ENV``), as ``bench/seats_http.py`` runs wrk: it
neither outranks the system it measures nor yields to it. Until stop 27 the migration phase
ran it at nice 19, below every process of the cluster, which was right while Ray's workers
ran at their default 15 (stop 23: other trains 94-96 %); with the workers at 0 it made the
figure the load generator's own share of the CPU. Measured (exclusive, a scratch copy of
this bench with per-process CPU and run-queue waits from ``/proc`` and a 1 ms loop-lag probe
in each centre, which lowered every rate): with the driver at 19, the other trains' rate
followed the driver's CPU (moving / paused: rate 1,464 / 1,722 = 85 %, driver CPU 0.440 /
0.504 cores = 87 %, driver threads waiting runnable 1.47 / 1.26 s a second, the machine 9 /
12 % idle); the migration's own work (migrator 0.09 of a core, the destination centre
+0.035, the directory +0.017) came out of the driver's share, not the centres'. The phase
prints the driver's CPU per window kind. The freeze window (five process wake-ups: origin,
destination, directory, ...; see the steps the bench prints) now waits behind the buyers at
equal priority; stop 23 chose 19 because at nice 10, above Ray's 15, the buyers outranked
those wake-ups (freeze p99 51.1 ms). ``remaining`` is one query at a time; its figure is
printed beside a bare Ray round trip to a centre (``ping``, the centres in turn, one after
each query), the floor of any call.

Baseline: Redis + Lua on the same stream (``bench/seats_redis.py``), in the same run.

Targets (2 cores): >= 5,000 sales/s actor path, query p99 <= 5 ms, freeze p99 <= 50 ms,
other trains >= 90 % of normal. Reference: 12306 sold 1,032 tickets/s at its 2015 peak.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import shutil
import tempfile
import time

import numpy as np

from bench._cpu import seat_centres_nice
from bench.seats_redis import N_TRAIN_DATES, SEATS
from gridfare.errors import GridfareError

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

CENTRES = ("C1", "C2", "C3", "C4")
BATCH = 250
IN_FLIGHT = 4
HTTP_PORT = 8321
SELECTOR = "G1% dates=2026-10-01..2026-10-04"
WINDOW_S = 5.0  # the migration's alternating windows, moving and paused
THROUGHPUT_NICE = 10  # the load generator's niceness in the throughput phases (see above)
SETTLED = ["done", "rolled_back", "failed"]  # a migration's end states


def _pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if len(values) else float("nan")


def _req(r, suffix=""):
    return (
        r.train_no,
        r.date.isoformat(),
        r.from_station,
        r.to_station,
        r.cls,
        r.count,
        r.request_id + suffix,
    )


async def actor_path(seats, requests) -> tuple[float, int, int]:
    """The public client's bulk path (``AsyncSeatsClient.sell_many``: grouped by centre,
    batches of ``BATCH``, ``IN_FLIGHT`` calls in flight per centre, "moved" followed by the
    client): the seconds, the requests answered and the sales among them."""
    rows = [_req(r) for r in requests]
    started = time.perf_counter()
    answers = await seats.sell_many(rows)
    seconds = time.perf_counter() - started
    return seconds, len(answers), answers.sold_count


async def http_path(url, requests, concurrency=64) -> tuple[float, int, list[float]]:
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    sold = 0
    async with aiohttp.ClientSession() as session:

        async def one(r):
            nonlocal sold
            body = {
                "train_no": r.train_no,
                "date": r.date.isoformat(),
                "from": r.from_station,
                "to": r.to_station,
                "class": r.cls,
                "count": r.count,
                "request_id": r.request_id,
            }
            async with sem, session.post(url + "/orders", json=body) as response:
                answer = await response.json()
                assert response.status == 200, answer
                sold += answer["status"] == "sold"

        started = time.perf_counter()
        await asyncio.gather(*(one(r) for r in requests))
        seconds = time.perf_counter() - started
        latencies = []
        for r in requests[:400]:
            t0 = time.perf_counter()
            async with session.get(
                url + "/remaining",
                params={
                    "train_no": r.train_no,
                    "date": r.date.isoformat(),
                    "from": r.from_station,
                    "to": r.to_station,
                },
            ) as response:
                await response.read()
            latencies.append(time.perf_counter() - t0)
    return len(requests) / seconds, sold, latencies


def query_latency(client, requests) -> tuple[list[float], list[float]]:
    """``remaining`` one query at a time through the public sync client (``SeatsClient``:
    one ``ray.get`` when the owner is in its map), each followed by a bare ``ping`` of a
    centre (the next in turn, also ``ray.get``): Ray's round trip with nothing of ours in it
    but an attribute read, so the floor of any call is measured beside the figure."""
    import ray

    latencies, pings = [], []
    centres = [client.centre(c) for c in CENTRES]
    for i, r in enumerate(requests):
        t0 = time.perf_counter()
        client.remaining(r.train_no, r.date, r.from_station, r.to_station)
        t1 = time.perf_counter()
        ray.get(centres[i % len(centres)].ping.remote())
        latencies.append(t1 - t0)
        pings.append(time.perf_counter() - t1)
    return latencies, pings


class SteadyLoad:
    """``concurrency`` buyers, each selling and then refunding what it sold, one request
    after another, until stopped.

    Selling and refunding keeps the inventory where it started, so the cost of a request
    stays the same all run long: with sales alone the hot trains sell out lap after lap,
    the cheap sold-out answers grow and the rate drifted 15-20 % over a run (in either
    direction), as much as the migration's own cost. The buyers go round ``requests`` as
    often as needed, each lap with fresh request ids (a repeated id would be an idempotent
    replay, not a sale); ``answered`` counts the sales and refunds answered so far.
    """

    def __init__(self, seats, requests, concurrency: int = 64) -> None:
        self.answered = 0
        self._seats = seats
        self._requests = ((r, f"~{lap}") for lap in itertools.count() for r in requests)
        self._stop = asyncio.Event()
        self._buyers = [asyncio.ensure_future(self._buyer()) for _ in range(concurrency)]

    async def _buyer(self) -> None:
        while not self._stop.is_set():
            r, lap = next(self._requests)
            answer = await self._seats.sell(*_req(r, lap))
            self.answered += 1
            if answer["status"] == "sold":
                await self._seats.refund(r.train_no, r.date, r.request_id + lap)
                self.answered += 1

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._buyers)


async def migration_phase(seats, others, window_s: float):
    """Other trains' sales and refunds per second under one continuous, stationary load
    (``SteadyLoad``) while the migration runs and then its rollback (the same protocol,
    back to the origins). Each move alternates windows of ``window_s`` moving and paused
    (``pause`` lets the train-date in flight finish first; the paused window starts once
    none is), and its figure is the rate over its moving windows / the rate over its
    paused ones. Paired, interleaved windows: a drift of the load (windows of 15 s taken
    before and after a move differed by up to 20 % on this machine, in either direction)
    falls on both sides alike instead of on the move."""
    load = SteadyLoad(seats, others)
    await asyncio.sleep(1.0)  # the buyers reach their pace

    async def checkpoints() -> list[int]:
        return [(await seats.centre(c).report.remote())["snapshot_lsn"] for c in CENTRES]

    async def alternate(start) -> dict:
        answered = {"moving": 0, "paused": 0}
        seconds = {"moving": 0.0, "paused": 0.0}
        cpu = {"moving": 0.0, "paused": 0.0}  # the load generator's (this process's) CPU

        async def window(kind: str, step) -> object:
            before, started, cpu_before = load.answered, time.perf_counter(), _own_cpu_s()
            result = await step()
            answered[kind] += load.answered - before
            seconds[kind] += time.perf_counter() - started
            cpu[kind] += _own_cpu_s() - cpu_before
            return result

        mid = (await start())["id"]
        while await window("moving", lambda: seats.migrator.wait.remote(
                mid, SETTLED, window_s)) is None:
            try:
                await seats.pause(mid)
            except GridfareError:  # it settled meanwhile
                break
            await seats.migrator.wait.remote(mid, ["paused"], 60.0)  # none in flight
            await window("paused", lambda: asyncio.sleep(window_s))
            await seats.resume(mid)
        status = await seats.wait_migration(mid, timeout_s=600)
        rates = {kind: answered[kind] / seconds[kind] for kind in answered if seconds[kind]}
        cores = {f"{kind}_cores": cpu[kind] / seconds[kind] for kind in cpu if seconds[kind]}
        return {"status": status, "moving_s": seconds["moving"], **rates, **cores}

    checkpointed = await checkpoints()
    there = await alternate(lambda: seats.migrate(SELECTOR, "C4"))
    back = await alternate(lambda: seats.rollback(there["status"]["id"]))
    await load.stop()
    ran = sum(a != b for a, b in zip(checkpointed, await checkpoints(), strict=True))
    freeze = await seats.migrator.freeze_times.remote()
    steps = await seats.migrator.freeze_steps.remote()
    return [there, back], (freeze, steps), ran


def _freeze_steps(freeze: list[float], steps: list[dict[str, float]]) -> str:
    """What the freezes waited on: each step's p50 / p99 (ms), and the mean of each step
    over the slowest 2 % of the freezes (the tail the p99 reads)."""
    if not steps:
        return "no freezes"
    names = list(steps[0])
    slow = [steps[i] for i in np.argsort(freeze)[-max(1, len(freeze) // 50):]]
    parts = [f"{n} {_pct([s[n] for s in steps], 50):.1f} / "
             f"{_pct([s[n] for s in steps], 99):.1f}" for n in names]
    tail = ", ".join(f"{n} {1000 * np.mean([s[n] for s in slow]):.1f}" for n in names)
    return (f"steps p50 / p99 ms: {'; '.join(parts)}; the slowest {len(slow)} freezes "
            f"(mean ms): {tail}")


def _checkpoint_lsns(client) -> list[int]:
    """Each centre's last checkpoint (its ``snapshot_lsn``)."""
    return [r["snapshot_lsn"] for r in client.reports()]


def _own_cpu_s() -> float:
    """CPU seconds of this process (every thread: the buyers' loop and Ray's driver
    threads)."""
    times = os.times()
    return times.user + times.system


def _set_driver_nice(niceness: int) -> None:
    """Set every thread of this process (the load generator) to ``niceness``: on Linux a
    nice value is per thread, and Ray's threads in the driver already run. The cluster
    keeps its priority: its processes (GCS, raylet) were started before this, and every
    worker (centres, directory, migrator, Serve) is started by the raylet. Going back up
    (below nice 10) needs CAP_SYS_NICE, as root has."""
    try:
        for thread in os.listdir("/proc/self/task"):
            os.setpriority(os.PRIO_PROCESS, int(thread), niceness)
    except PermissionError as exc:
        raise SystemExit(f"seats bench: cannot set the load generator to nice {niceness} "
                         f"({exc.strerror}): run it as root or with CAP_SYS_NICE") from exc


def main(n_trains: int = 2000, days: int = 15, n_requests: int = 60_000) -> str:
    import ray
    from ray import serve

    from actors.attach import attach
    from actors.seat_migrator import kill_seat_actors
    from actors.seats_client import SeatsClient
    from bench.seats_redis import compare as compare_with_redis
    from gridfare.seats.batching import ClientConfig
    from gridfare.seats.selectors import TrainSelector
    from gridfare.seats.timetable import generate_demand, generate_timetable
    from services.seats_http import start_serve

    root = tempfile.mkdtemp(prefix="gridfare-seats-bench-")
    # "local": a private cluster even when another one runs on this machine, started with
    # the project's Ray process environment (workers at nice 0, actors.attach.RAY_PROCESS_ENV)
    # as every gridfare cluster is.
    attach("local", local_options={"num_cpus": 2, "include_dashboard": False})
    try:
        timetable = generate_timetable(seed=5, n_trains=n_trains, days=days)
        train_dates = list(timetable.train_dates())
        client = SeatsClient.start(root, list(CENTRES), CENTRES[0])
        client.aio.client_config = ClientConfig(bulk_max_batch=BATCH, bulk_in_flight=IN_FLIGHT)
        seats = client.aio
        url = start_serve(root, port=HTTP_PORT)
        workers_nice = seat_centres_nice()
        _set_driver_nice(THROUGHPUT_NICE)
        started = time.perf_counter()
        client.load_timetable(train_dates)
        load_s = time.perf_counter() - started
        print(
            f"loaded {len(train_dates):,} train-dates ({n_trains:,} trains x {days} days, "
            f"{sum(t.seats for t in train_dates):,} seats) in {load_s:.1f} s",
            flush=True,
        )

        demand = generate_demand(timetable, seed=1, n_requests=n_requests)
        actor_s, answered, sold = client._run(actor_path(seats, demand))
        actor_rate = answered / actor_s
        sold_rate = sold / actor_s
        print(
            f"actor path: {answered:,} requests answered ({sold:,} sold) in {actor_s:.2f} s = "
            f"{actor_rate:,.0f} answers/s, {sold_rate:,.0f} successful sales/s",
            flush=True,
        )

        versus = compare_with_redis(client)
        ours, theirs = versus["gridfare"], versus["redis"]
        ours_rate = ours["answered"] / ours["seconds"]
        redis_rate = theirs["answered"] / theirs["seconds"]
        print(
            f"same stream, {versus['requests']:,} requests: gridfare {ours_rate:,.0f} "
            f"answered/s ({ours['sold'] / ours['seconds']:,.0f} sales/s, {ours['sold']:,} sold), "
            f"Redis + Lua {redis_rate:,.0f} answered/s "
            f"({theirs['sold'] / theirs['seconds']:,.0f} sales/s, {theirs['sold']:,} sold, "
            f"{theirs['doubles']} seat-legs sold twice); ratio {ours_rate / redis_rate:.2f}; "
            f"typing all of gridfare's {ours['answered']:,} answers afterwards took "
            f"{ours['typed_s']:.2f} s",
            flush=True,
        )

        queries = generate_demand(timetable, seed=2, n_requests=1000)
        _set_driver_nice(workers_nice)
        query_latency(client, queries[:50])  # warm the caches
        lsns, full_gcs = _checkpoint_lsns(client), gc.get_stats()[2]["collections"]
        q_actor, q_ping = query_latency(client, queries)
        q_checkpoints = sum(a != b for a, b in zip(lsns, _checkpoint_lsns(client), strict=True))
        full_gcs = gc.get_stats()[2]["collections"] - full_gcs
        _set_driver_nice(THROUGHPUT_NICE)
        print(
            f"remaining (client -> actor): p50 {_pct(q_actor, 50):.2f} ms, "
            f"p99 {_pct(q_actor, 99):.2f} ms; a bare ping of a centre, interleaved: p50 "
            f"{_pct(q_ping, 50):.2f} ms, p99 {_pct(q_ping, 99):.2f} ms (driver at nice "
            f"{workers_nice}; meanwhile {q_checkpoints} centre checkpoints and {full_gcs} "
            "full collections in the driver)",
            flush=True,
        )

        http_demand = generate_demand(timetable, seed=3, n_requests=4000)
        http_rate, http_sold, q_http = client._run(http_path(url, http_demand))
        print(
            f"HTTP: {http_rate:,.0f} sales/s ({http_sold:,} sold); remaining over HTTP "
            f"p50 {_pct(q_http, 50):.2f} ms, p99 {_pct(q_http, 99):.2f} ms",
            flush=True,
        )

        selector = TrainSelector.parse(SELECTOR)
        trains = {train.train_no: train for train in timetable.trains}
        other = [
            r
            for r in generate_demand(timetable, seed=4, n_requests=60_000)
            if not selector.matches(trains[r.train_no].on(r.date))
        ]
        moving = sum(selector.matches(t) for t in train_dates)
        _set_driver_nice(workers_nice)
        load_before = os.getloadavg()[0]
        moves, (freeze, steps), checkpoints = client._run(
            migration_phase(seats, other, window_s=WINDOW_S)
        )
        there, back = moves
        ratios = [m["moving"] / m["paused"] for m in moves]
        ratio = sum(ratios) / len(ratios)
        print(
            f"migration {SELECTOR!r}: {moving} train-dates, {there['status']['state']} in "
            f"{there['moving_s']:.1f} s of moving windows, {back['status']['state']} in "
            f"{back['moving_s']:.1f} s; freeze p50 {_pct(freeze, 50):.1f} ms, p99 "
            f"{_pct(freeze, 99):.1f} ms, max {_pct(freeze, 100):.1f} ms "
            f"({len(freeze)} freezes)",
            flush=True,
        )
        print(f"freeze window, timed at the destination: {_freeze_steps(freeze, steps)}; "
              f"load average before / after the phase {load_before:.1f} / "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        print(
            f"other trains, sales+refunds/s in alternating {WINDOW_S:g} s windows, moving / "
            "paused: migration "
            + "; rollback ".join(
                f"{m['moving']:,.0f} / {m['paused']:,.0f} = {r:.0%}"
                for m, r in zip(moves, ratios, strict=True))
            + f" (mean {ratio:.0%}); {checkpoints} centre checkpoints ran meanwhile; the load "
            "generator's CPU, moving / paused: "
            + "; ".join(f"{m['moving_cores']:.2f} / {m['paused_cores']:.2f} cores"
                        for m in moves),
            flush=True,
        )
        audit = client.audit()
        print(
            f"audit: {'ok' if audit.ok else 'FAILED'}, {audit.open_sales:,} open sales, "
            f"{audit.changes:,} changes",
            flush=True,
        )
        serve.shutdown()
        kill_seat_actors(root)
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)

    rows = [
        (
            "requests answered/s, actor path (the client's `sell_many`, batches of "
            f"{BATCH}, {IN_FLIGHT} in flight per centre; sold-outs included)",
            f"{actor_rate:,.0f}",
            ">= 5,000",
        ),
        (
            "successful sales/s, actor path (the same run: answers that sold seats)",
            f"{sold_rate:,.0f}",
            "",
        ),
        (
            f"same stream of {versus['requests']:,} requests ({N_TRAIN_DATES} train-dates x "
            f"{SEATS:,} seats x 12 legs, "
            f"{1 - theirs['sold'] / theirs['answered']:.0%} of Redis's answers sold out): "
            "gridfare's `sell_many` (fsync before each answer) / Redis + Lua "
            "(per-leg bitmaps, AOF everysec), requests answered/s",
            f"{ours_rate:,.0f} / {redis_rate:,.0f} = {ours_rate / redis_rate:.2f}",
            ">= 1.00",
        ),
        (
            "the same, successful sales/s (audit: "
            f"{'ok' if audit.ok else 'FAILED'} / {theirs['doubles']} seat-legs sold twice)",
            f"{ours['sold'] / ours['seconds']:,.0f} / {theirs['sold'] / theirs['seconds']:,.0f}",
            "",
        ),
        (
            "sales/s, HTTP `POST /orders` (64 connections)",
            f"{http_rate:,.0f}",
            "(12306 peak 2015: 1,032)",
        ),
        (
            "remaining query p50 / p99, client -> actor, one at a time (beside it, a bare "
            "Ray `ping` of a centre, interleaved: the floor of any call)",
            f"{_pct(q_actor, 50):.2f} / {_pct(q_actor, 99):.2f} ms (ping "
            f"{_pct(q_ping, 50):.2f} / {_pct(q_ping, 99):.2f} ms)",
            "p99 <= 5 ms",
        ),
        (
            "remaining query p50 / p99, HTTP",
            f"{_pct(q_http, 50):.2f} / {_pct(q_http, 99):.2f} ms",
            "",
        ),
        (
            f"freeze per train-date p50 / p99 ({len(freeze)} freezes: those of the {moving} "
            "selected train-dates not on C4 already, moved there and back)",
            f"{_pct(freeze, 50):.1f} / {_pct(freeze, 99):.1f} ms",
            "p99 <= 50 ms",
        ),
        (
            f"other trains while moving / while paused (alternating {WINDOW_S:g} s "
            "windows), migration and rollback; 64 buyers, each selling and refunding one "
            "order at a time",
            f"{ratio:.0%} ({', '.join(f'{r:.0%}' for r in ratios)}; sales+refunds/s "
            + "; ".join(f"{m['moving']:,.0f} / {m['paused']:,.0f}" for m in moves)
            + f"; {checkpoints} checkpoints meanwhile; the load generator's CPU "
            + "; ".join(f"{m['moving_cores']:.2f} / {m['paused_cores']:.2f}" for m in moves)
            + " cores)",
            ">= 90 %",
        ),
    ]
    table = [
        "## Seat inventory (`bench/seats.py`)",
        "",
        f"{len(train_dates):,} train-dates ({n_trains:,} trains x {days} sale days) on "
        f"{len(CENTRES)} SeatCentre actors, local Ray with 2 CPUs, WAL fsync on local "
        f"disk, the load generator (this driver) at nice {THROUGHPUT_NICE} in the "
        f"throughput phases and at the workers' nice {workers_nice} for the queries and the "
        "migration phase, Ray's workers at nice 0 "
        "(`actors.attach`); "
        f"{n_requests:,} Zipf requests on the actor path, migration `{SELECTOR}` "
        f"to C4 ({there['status']['state']} in {there['moving_s']:.1f} s of moving windows) "
        f"and rolled back ({back['status']['state']} in {back['moving_s']:.1f} s). Audit "
        "after the run: "
        f"{'ok' if audit.ok else 'FAILED'} ({audit.open_sales:,} open sales).",
        "",
        "| figure | measured | target |",
        "|---|---:|---|",
    ]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trains", type=int, default=2000)
    parser.add_argument("--days", type=int, default=15)
    parser.add_argument("--requests", type=int, default=60_000)
    args = parser.parse_args()
    print(main(args.trains, args.days, args.requests))
