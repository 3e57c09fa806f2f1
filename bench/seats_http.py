"""Seats over HTTP: ``POST /orders`` with 64 connections, HAProxy ingress and coalesced
centre calls, next to Serve's default Python proxy in the same run; the latency at a held
1,000 orders/s; an audit after the run (no sale lost, none doubled).

Real path: a private local Ray cluster (2 CPUs, 127.0.0.1, started by ``actors.attach`` as
every gridfare entry point starts one, so with ``RAY_PROCESS_ENV``: workers at nice 0),
three SeatCentre actors with their logs fsynced on a temporary directory, the SeatDirectory
and the Serve app ``services.seats_http`` (one replica). The orders come from ``wrk``
(Debian; compiled, so its cost per request is a few tens of microseconds, and its CPU time
is reported beside each figure) with ``bench/seats_orders.lua``: one order per request, a
random train-date, trip, class and count, each with its own request_id. wrk runs at the
niceness the cluster's workers have (read from the centres' processes), so it neither
outranks the system it measures nor yields to it.

Runs, in this order (Serve cannot switch back from HAProxy within one cluster, see
``services.haproxy``), on the project's cluster:

1. baseline: Serve's default Python proxy, the same app (coalescing on);
2. HAProxy, one centre call per order (``max_batch = 1``): what coalescing buys;
3. HAProxy, coalesced (the shipped ``ClientConfig``): the target, >= 1,500 answered/s;
4. HAProxy, coalesced, held at 1,000 orders/s (the latency target, p99 <= 50 ms), then
   at 700/s (below where this machine saturates, so the latency is not a queue's);

then, on a second cluster whose workers run at Ray's default niceness (15), runs 3 and 4
again: the baseline of the worker niceness, in the same run.

The app's replicas run without Serve's per-request disconnect watch in every HAProxy run
(``services.seats_http``, ``services.ingress``); the default proxy has its own.

"Answered" counts orders answered 200 (sold or sold out); "sales" those sold. After the
runs, every request_id wrk saw sold is looked up in the centres' logs (lost = answered
sold, not logged) and the audit replays every log against the live inventories (double
sales, lost or phantom sales).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

from bench._cpu import children_cpu_s, seat_centres_nice
from bench._loadgen import wait_http

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

LUA = Path(__file__).with_name("seats_orders.lua")
CENTRES = ("C1", "C2", "C3")
TRAINS, DAYS, STATIONS = 100, 2, 8  # 200 train-dates of 7 legs
SEATS = {"first": 60, "second": 600}
CONNECTIONS, THREADS = 64, 2
DURATION_S, WARM_S = 15, 3
HELD_RATES, HELD_S = (1000, 700), 20  # the target rate, and one below saturation
RAY_DEFAULT_NICENESS = "15"  # Ray's own worker_niceness, the baseline cluster's
DRAIN_S = 2.0  # a replaced replica stays reachable this long (services.haproxy)
# The centres' group-commit window. The replica already coalesces every waiting order into
# one sell_many per centre with one call in flight (ClientConfig.in_flight 1), so no second
# call can arrive to join a window: it only delayed each call (traced at a held 700/s: the
# flush, window included, p50 2.0 -> 1.0 ms; the centre's part of a call 2.5 -> 1.6 ms).
WAL_WINDOW_MS = 0.0


def timetable() -> list:
    from gridfare.seats.train import TrainDate

    stations = tuple(f"S{i}" for i in range(1, STATIONS + 1))
    return [TrainDate(f"G{n}", date(2026, 10, 1) + timedelta(days=d), stations, SEATS)
            for n in range(1, TRAINS + 1) for d in range(DAYS)]


def wrk(url: str, run: str, out: Path, duration_s: int, rate: int = 0, nice: int = 0) -> dict:
    """One wrk run at niceness ``nice``; its counts, latency (from the send) and its own CPU
    seconds."""
    if shutil.which("wrk") is None:
        raise SystemExit("bench.seats_http needs wrk: apt-get install wrk (make bench does)")
    folder = out / run
    folder.mkdir(parents=True)
    env = {**os.environ, "TRAINS": str(TRAINS), "DAYS": str(DAYS), "STATIONS": str(STATIONS),
           "RATE": str(rate), "THREADS": str(THREADS), "OUT": str(folder), "RUN": run}
    cpu = children_cpu_s()
    done = subprocess.run(["nice", "-n", str(nice), "wrk", "-t", str(THREADS), "-c",
                           str(CONNECTIONS), "-d", f"{duration_s}s", "--timeout", "10s",
                           "-s", str(LUA), url + "/orders"],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk {url}: {done.stderr.strip() or done.stdout.strip()}")
    text = done.stdout
    figures: dict = {"run": run, "wrk_cpu_s": children_cpu_s() - cpu, "seconds": duration_s}
    for name in ("SOLD", "SOLD_OUT", "OTHER", "LATE", "MAX_US"):
        figures[name.lower()] = int(re.search(rf"^{name} (\d+)$", text, re.M).group(1))
    for p in ("50", "90", "99", "99.9"):
        figures[f"p{p}_ms"] = int(re.search(rf"^P{p}_US (\d+)$", text, re.M).group(1)) / 1000
    errors = re.search(r"Socket errors: (.*)", text)
    figures["socket_errors"] = errors.group(1) if errors else "none"
    figures["answered_per_s"] = (figures["sold"] + figures["sold_out"]) / duration_s
    figures["sold_per_s"] = figures["sold"] / duration_s
    figures["ids"] = [line for f in sorted(folder.glob("*.ids"))
                      for line in f.read_text().split()]
    return figures


# a query every deployment answers 200 once its centres are up
_READY = "/remaining?train_no=G1&date=2026-10-01&from=S1&to=S2"


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _coalescing(app: str) -> tuple[int, int]:
    from ray import serve

    counts = serve.get_app_handle(app).coalescing.remote().result(timeout_s=30)
    calls = sum(c["calls"] for k, c in counts.items() if k.endswith("sell_many"))
    requests = sum(c["requests"] for k, c in counts.items() if k.endswith("sell_many"))
    return calls, requests


def _cpu_by_part() -> dict[str, float]:
    """CPU seconds so far of this driver's descendants (the private cluster: GCS, raylet,
    every worker, HAProxy), by part of the path."""
    import psutil

    parts: dict[str, float] = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            name, times = proc.name(), proc.cpu_times()
        except psutil.Error:
            continue
        part = ("replica" if "ServeReplica" in name else "centres" if "SeatCentre" in name
                else "haproxy" if "haproxy" in name.lower() or "HAProxy" in name
                else "wrk" if name == "wrk" else "rest of Ray")
        parts[part] = parts.get(part, 0.0) + times.user + times.system
    return parts


def _machine_cpu() -> dict[str, float]:
    """The whole machine's busy and stolen CPU seconds so far (every core)."""
    import psutil

    t = psutil.cpu_times()
    return {"busy": t.user + t.nice + t.system + t.irq + t.softirq,
            "steal": getattr(t, "steal", 0.0)}


def measure(url: str, app: str, run: str, out: Path, rate: int = 0,
            duration_s: int = DURATION_S) -> dict:
    from services.haproxy import listener

    nice = seat_centres_nice()
    wrk(url, f"warm-{run}", out, WARM_S, nice=nice)
    calls, requests = _coalescing(app)
    cpu, machine = _cpu_by_part(), _machine_cpu()
    figures = wrk(url, run, out, duration_s, rate, nice)
    figures["nice"] = nice
    cpu2, machine2 = _cpu_by_part(), _machine_cpu()
    ours = sum(cpu2.values()) - sum(cpu.values())
    busy = machine2["busy"] - machine["busy"]
    figures["outside_s"] = max(busy - ours, 0.0)  # other users of the machine meanwhile
    figures["steal_s"] = machine2["steal"] - machine["steal"]
    answered = figures["sold"] + figures["sold_out"]
    figures["cpu_ms_per_order"] = {part: round(1000 * (cpu2[part] - cpu.get(part, 0.0)) /
                                               max(answered, 1), 3)
                                   for part in sorted(cpu2) if part != "wrk"}
    calls2, requests2 = _coalescing(app)
    figures["calls"], figures["orders"] = calls2 - calls, requests2 - requests
    figures["listener"] = listener(_port(url))
    shown = {k: v for k, v in figures.items() if k != "ids"}
    print(f"seats_http bench: {shown}", file=sys.stderr, flush=True)
    return figures


def check_orders(client, runs: list[dict]) -> dict:
    """Lost: a request_id wrk saw sold that no log holds as sold; doubled: a request_id
    sold twice in the logs, or any violation of the audit (double sale, lost or phantom
    sale, conflicting logs)."""
    root = client.aio.root
    logged: dict[str, int] = {}
    for centre in root.config().centres:
        records, _ = root.read_centre(centre)
        for record in records:
            if record.op == "sell":
                logged[record.request_id] = logged.get(record.request_id, 0) + 1
    acked = [i for run in runs for i in run["ids"]]
    report = client.audit()
    return {"acked": len(acked), "lost": sum(1 for i in acked if i not in logged),
            "sold_twice": sum(1 for n in logged.values() if n > 1),
            "audit": dict(report.kinds()), "open_sales": report.open_sales,
            "double_sales": report.kinds().get("double_sale", 0)}


def _parts(f: dict) -> str:
    parts = f["cpu_ms_per_order"]
    shown = ", ".join(f"{part} {ms:.2f}" for part, ms in parts.items())
    return f"{shown} (total {sum(parts.values()):.2f})"


def _held(rate: int, f: dict, how: str = "") -> str:
    sent = f["sold"] + f["sold_out"] + f["other"]
    return (f"- Held at {rate:,}/s{how}: {f['answered_per_s']:,.0f} answered/s, p99 "
            f"{f['p99_ms']:.1f} ms, p99.9 {f['p99.9_ms']:.1f} ms, max {f['max_us'] / 1000:.1f} "
            f"ms (target at 1,000/s: p99 <= 50 ms); {f['late']:,} of {sent:,} requests went "
            "5 ms or more after their slot (every connection busy: wrk's latency, from the "
            "send, then understates the wait).")


def _row(label: str, f: dict) -> str:
    batch = f["orders"] / f["calls"] if f["calls"] else float("nan")
    return (f"| {label} | {f['answered_per_s']:,.0f} | {f['sold_per_s']:,.0f} | "
            f"{f['p50_ms']:.1f} / {f['p99_ms']:.1f} | {f['other']} | {batch:.1f} | "
            f"{f['listener']} | {f['wrk_cpu_s']:.1f} s | {f['outside_s']:.1f} s |")


def _cluster(work: Path, niceness: str | None, baselines: bool) -> tuple[dict, dict]:
    """One private cluster, its runs and its audit. ``niceness``: None for the project's
    setting (``actors.attach.RAY_PROCESS_ENV``), else the workers' niceness to start Ray with.
    ``baselines``: also the default proxy and one centre call per order."""
    import ray

    from actors.attach import RAY_PROCESS_ENV, attach
    from actors.seats_client import SeatsClient
    from gridfare.seats.batching import ClientConfig
    from services.haproxy import free_port, stop_serve
    from services.seats_http import app_name, start_serve

    key = "RAY_worker_niceness"
    if niceness is None:
        os.environ.pop(key, None)  # attach() puts RAY_PROCESS_ENV's value in
    else:
        os.environ[key] = niceness  # an operator's value, which attach() keeps
    out = work / "wrk"
    attach("local", local_options={"num_cpus": 2, "include_dashboard": False})
    try:
        root = str(work / "seats")
        client = SeatsClient.start(root, list(CENTRES), CENTRES[0],
                                   wal_window_ms=WAL_WINDOW_MS)
        client.load_timetable(timetable())
        nice = seat_centres_nice()
        if niceness is None and nice != int(RAY_PROCESS_ENV[key]):
            raise RuntimeError(f"seats_http bench: workers at nice {nice}, not "
                               f"{RAY_PROCESS_ENV[key]} (actors.attach.RAY_PROCESS_ENV)")
        app = app_name(str(client.aio.root.path))
        runs = {}
        if baselines:
            # the default proxy (then shut down: Serve cannot come back from HAProxy)
            url = start_serve(root, port=free_port())
            wait_http(url + _READY)
            runs["proxy"] = measure(url, app, "proxy", out)
            stop_serve(_port(url))
            url = start_serve(root, port=free_port(), haproxy=True, haproxy_drain_s=DRAIN_S,
                              config=ClientConfig(in_flight=100_000, max_batch=1))
            wait_http(url + _READY)
            runs["single"] = measure(url, app, "single", out)
            url = start_serve(root, port=_port(url), haproxy=True)
        else:
            url = start_serve(root, port=free_port(), haproxy=True, haproxy_drain_s=DRAIN_S)
        wait_http(url + _READY)
        runs["coalesced"] = measure(url, app, "coalesced", out)
        for rate in HELD_RATES:
            runs[f"held{rate}"] = measure(url, app, f"held{rate}", out, rate=rate,
                                          duration_s=HELD_S)
        checked = check_orders(client, list(runs.values()))
        print(f"seats_http bench: nice {nice}: audit {checked}", file=sys.stderr, flush=True)
        stop_serve(_port(url))
        client.close()
    finally:
        ray.shutdown()
    return runs, checked


def _audit(checked: dict) -> str:
    return (f"{checked['acked']:,} sales answered, lost {checked['lost']}, request_ids sold "
            f"twice {checked['sold_twice']}, double sales {checked['double_sales']}, audit "
            f"violations {checked['audit'] or 'none'} ({checked['open_sales']:,} open sales, "
            "warm-ups included)")


def main() -> str:
    work = Path(tempfile.mkdtemp(prefix="gridfare-seats-http-bench-"))
    try:
        runs, checked = _cluster(work / "ours", None, baselines=True)
        ray15, checked15 = _cluster(work / "ray15", RAY_DEFAULT_NICENESS, baselines=False)
    finally:
        os.environ.pop("RAY_worker_niceness", None)
        shutil.rmtree(work, ignore_errors=True)
    coalesced, proxy = runs["coalesced"], runs["proxy"]
    ratio = coalesced["answered_per_s"] / proxy["answered_per_s"]
    nice, nice15 = coalesced["nice"], ray15["coalesced"]["nice"]
    held = runs[f"held{HELD_RATES[0]}"]["p99_ms"]
    held15 = ray15[f"held{HELD_RATES[0]}"]["p99_ms"]
    return "\n".join([
        "## Seats over HTTP (bench/seats_http.py)", "",
        f"Private 2-CPU Ray clusters, {len(CENTRES)} centres (fsync before each answer, "
        f"wal_window_ms {WAL_WINDOW_MS:g}), one "
        f"Serve replica; `POST /orders`, one order per request, {CONNECTIONS} connections, "
        f"{THREADS} wrk threads at the workers' niceness, {DURATION_S} s per run after "
        f"{WARM_S} s of warm-up; {TRAINS * DAYS} train-dates x {STATIONS - 1} legs x "
        f"{sum(SEATS.values())} seats. Workers at nice {nice} (gridfare's "
        f"`RAY_PROCESS_ENV`) unless the row says Ray's default ({nice15}): a second cluster "
        "in the same run. Answered = orders answered 200 (sold or sold out); "
        "latency is wrk's, from the send. Baseline: Serve's default Python proxy, same app, "
        "same run. \"CPU of other processes\": the machine's busy CPU seconds during the run "
        "minus this bench's (the cluster and wrk), i.e. what else ran on the 2 cores "
        f"(steal during the coalesced run: {runs['coalesced']['steal_s']:.1f} s).", "",
        "| path | answered/s | sales/s | p50 / p99 ms | non-200 | orders per centre call "
        "| listening | wrk's own CPU | CPU of other processes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        _row("default proxy, coalesced (baseline)", proxy),
        _row("HAProxy, one centre call per order", runs["single"]),
        _row("**HAProxy, coalesced**", coalesced),
        *(_row(f"HAProxy, coalesced, held at {rate:,}/s for {HELD_S} s", runs[f"held{rate}"])
          for rate in HELD_RATES),
        _row(f"HAProxy, coalesced, workers at Ray's default nice {nice15}", ray15["coalesced"]),
        *(_row(f"the same, held at {rate:,}/s for {HELD_S} s", ray15[f"held{rate}"])
          for rate in HELD_RATES), "",
        f"- HAProxy coalesced / default proxy: **{ratio:.2f}x** answered orders/s "
        f"(target >= 1,500/s: {coalesced['answered_per_s']:,.0f}).",
        f"- Workers at nice {nice} / Ray's default {nice15}, same run: p99 at a held "
        f"{HELD_RATES[0]:,}/s {held:.1f} against {held15:.1f} ms ({held / held15:.2f}x); "
        f"flat out {coalesced['answered_per_s']:,.0f} against "
        f"{ray15['coalesced']['answered_per_s']:,.0f} answered/s "
        f"({coalesced['answered_per_s'] / ray15['coalesced']['answered_per_s']:.2f}x).",
        f"- CPU per answered order in the coalesced run, by part (ms, of the cluster's "
        f"processes; 2 cores = {2000 / coalesced['answered_per_s']:.2f} ms per order at this "
        f"rate): {_parts(coalesced)}; at Ray's default niceness: {_parts(ray15['coalesced'])}; "
        f"default proxy: {_parts(proxy)}.",
        *(_held(rate, runs[f"held{rate}"]) for rate in HELD_RATES),
        *(_held(rate, ray15[f"held{rate}"], f" (workers at nice {nice15})")
          for rate in HELD_RATES),
        f"- Audit after the runs: {_audit(checked)}; the nice-{nice15} cluster: "
        f"{_audit(checked15)}."])


if __name__ == "__main__":
    print(main())
