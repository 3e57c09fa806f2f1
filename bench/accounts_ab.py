"""A/B of the accounts processors' per-request paths, all in one run on one store (1 sync
standby), each variant its own Serve app behind the same HAProxy, driven in turn by the
same wrk script as ``bench/accounts.py`` (A/B/A/B: each variant ``--rounds`` times), every
one with Serve's disconnect watch off (``services.ingress``), as shipped:

- ``pool``: a lone payment takes ``apply`` (two simple statements) in the replica's thread
  pool, a batch of two or more the set statement on the replica's loop (stop 24's code);
- ``async``: a lone payment takes the same two statements on the replica's loop
  (``AsyncAccountsDB.try_apply``: no thread hand-off), batches as ``pool``;
- ``custom``: ``async`` with PostgreSQL's default plan cache mode on the loop's
  connections (``auto``: the set statement re-planned at every batch), where the shipped
  processors use its generic plan (``actors.accounts_client.ASYNC_OPTIONS``);
- ``floor``: Serve's floor, a trivial replica (``bench.accounts``), same settings.

Before the rounds an idle phase (no load, 10 s) measures what each process group burns
per second with nothing to do (the fixed part of "rest of Ray"). Each phase prints its
rate, p50/p99, payments per transaction and the share of transactions that carried one
payment, lost / doubled, CPU ms per request by process group and the cores busy.
``--profile VARIANT`` instead records one replica of that variant with py-spy (only
samples holding the GIL: CPU in Python; ``--native`` adds C frames) under the same load
and prints its hottest frames.

    python -m bench.accounts_ab [--rounds 2] [--seconds 10] [--variants pool,async]
    python -m bench.accounts_ab --profile async --seconds 20 [--native]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._loadgen import wait_http
from bench.accounts import (
    ACCOUNTS,
    FLOOR_APP,
    CpuMeter,
    _cpu_text,
    _exactly_once,
    _haproxy_env,
    _per_transaction,
    _wrk,
    floor_app,
)
from bench.accounts import PROCESSORS as N
from bench.accounts import SPARES as B
from services.haproxy import free_port

VARIANTS = ("pool", "custom", "async", "floor")


def _processor_app(store: str, variant: str):
    """The processors as shipped (``async``), or stop 24's (``pool``: lone payments in the
    thread pool, the set statement re-planned), or with the default plan cache mode
    (``custom``)."""
    from dataclasses import asdict

    from actors.accounts_client import STATEMENT_TIMEOUT
    from services.accounts import AccountsProcessor, ProcessorConfig

    base = AccountsProcessor.func_or_class
    cls = base
    if variant in ("pool", "custom"):
        class Replanned(base):
            def __init__(self, *args) -> None:
                super().__init__(*args)
                self._client.async_options = STATEMENT_TIMEOUT

            def _send(self, ops):
                if len(ops) > 1 or variant == "custom":
                    return self._client.apply_each_async(ops, self._call)
                return self._call(self._client.apply_each, ops)
        cls = Replanned
    return AccountsProcessor.options(func_or_class=cls, num_replicas=N + B).bind(
        store, 10.0, asdict(ProcessorConfig()))


def _app_name(variant: str) -> str:
    # CpuMeter counts "ray::ServeReplica:gridfare-accounts*" as processors and
    # "ray::ServeReplica:serve-floor*" as the floor
    return (FLOOR_APP + variant[5:]) if variant.startswith("floor") else \
        f"gridfare-accounts-{variant}"


def _replica_pids(variant: str) -> list[int]:
    import psutil

    name = f"ray::ServeReplica:{_app_name(variant)}:"
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if " ".join(p.info["cmdline"] or []).startswith(name)]


def _profile(url: str, variant: str, seconds: int, native: bool, out: Path) -> str:
    pid = _replica_pids(variant)[0]
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or \
        shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy: pip install py-spy (not in the dev extra)")
    cmd = [spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "200", "-f", "raw",
           "-o", str(out), "--nonblocking", "--gil"] + (["--native"] if native else [])
    spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    result = _wrk(url, "profile", duration_s=seconds - 2, prefix=_prefix(variant))
    spy_proc.wait(timeout=seconds + 60)
    self_t: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        self_t[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    lines = [f"profile of {variant} pid {pid}: {total} samples, wrk {result['rate']:.0f}/s"]
    lines.append("-- self --")
    lines += [f"{n / total * 100:5.1f}% {f}" for f, n in self_t.most_common(45)]
    lines.append("-- inclusive --")
    lines += [f"{n / total * 100:5.1f}% {f}" for f, n in incl.most_common(90)]
    return "\n".join(lines)


def _lone_share(client, run: str) -> float:
    """The share of the run's transactions that carried one payment (the rows one
    transaction wrote share its xmin, as ``bench.accounts._per_transaction``)."""
    db = client._db()
    with db.conn.transaction():
        lone, transactions = db.conn.execute(
            "SELECT count(*) FILTER (WHERE n = 1), count(*) FROM (SELECT count(*) AS n "
            "FROM account_operations WHERE key LIKE %s GROUP BY xmin::text) t",
            (f"{run}-%",)).fetchone()
    return lone / max(transactions, 1)


def _prefix(variant: str) -> str:
    return "/" + variant


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--profile", choices=VARIANTS)
    parser.add_argument("--native", action="store_true")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    from actors import NAMESPACE
    from actors.accounts_client import AccountsClient, remove_store
    from actors.attach import attach

    variants = [args.profile] if args.profile else args.variants.split(",")
    work = Path(tempfile.mkdtemp(prefix="gridfare-accounts-ab-"))
    haproxy = Path(tempfile.mkdtemp(prefix="hap", dir="/tmp"))
    os.environ.update(_haproxy_env(haproxy))
    attach("local", namespace=NAMESPACE, local_options={"num_cpus": 2,
                                                        "include_dashboard": False})
    store = str(work / "store")
    try:
        client = AccountsClient.start(store, standbys=1)
        client.open_batch(list(range(1, ACCOUNTS + 1)))
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        url = f"http://127.0.0.1:{port}"
        for variant in variants:
            app = floor_app(N + B) if variant.startswith("floor") else \
                _processor_app(store, variant)
            serve.run(app, name=_app_name(variant), route_prefix=_prefix(variant))
            wait_http(url + _prefix(variant) + "/accounts/1")
            _wrk(url, f"warm-{variant}", duration_s=3, prefix=_prefix(variant))
        meter = CpuMeter(work, haproxy, primary=client.describe()["record"]["primary"])
        if args.profile:
            print(_profile(url, args.profile, args.seconds, args.native,
                           work / "profile.txt"))
            return
        meter.start()
        time.sleep(10)
        idle = meter.stop()
        print("idle 10 s, cores busy by group: " + ", ".join(
            f"{k} {v / idle['wall']:.3f}" for k, v in idle.items() if k != "wall"),
            flush=True)
        rows: dict[str, list[dict]] = {v: [] for v in variants}
        for r in range(args.rounds):
            for variant in variants:
                run = f"{variant}-{r}"
                meter.start()
                res = _wrk(url, run, duration_s=args.seconds, prefix=_prefix(variant))
                res["cpu"] = meter.stop()
                if not variant.startswith("floor"):
                    res["lost"], res["doubled"], res["unread"] = _exactly_once(
                        client, run, res["acked"])
                    res["per_tx"] = _per_transaction(client, run)
                    res["lone"] = _lone_share(client, run)
                rows[variant].append(res)
                extra = "" if variant.startswith("floor") else (
                    f" per_tx {res['per_tx']:.1f} lone {res['lone']:.2f} lost "
                    f"{res['lost']} doubled {res['doubled']}")
                cores = sum(v for k, v in res["cpu"].items() if k != "wall") / \
                    res["cpu"]["wall"]
                print(f"{run}: {res['rate']:,.0f}/s p50 {res['p50_ms']:.1f} p99 "
                      f"{res['p99_ms']:.1f} non2xx {res['non_2xx']}{extra}; "
                      f"{_cpu_text(res['cpu'], res['requests'], 'request')}; cores busy "
                      f"{cores:.2f}", flush=True)
        print("summary (mean over rounds):")
        for variant in variants if args.rounds else ():  # --rounds 0: the idle phase only
            rates = [r["rate"] for r in rows[variant]]
            cpu = [sum(v for k, v in r["cpu"].items() if k not in (
                "wall", "other work on the machine", "load generator", "bench driver"))
                / r["requests"] * 1000 for r in rows[variant]]
            proc = [(r["cpu"].get("processors", 0) + r["cpu"].get("floor replicas", 0))
                    / r["requests"] * 1000 for r in rows[variant]]
            print(f"  {variant:9s} rate {sum(rates) / len(rates):7,.0f}/s {rates}; servers' "
                  f"CPU ms/request {sum(cpu) / len(cpu):.3f}; replicas' "
                  f"{sum(proc) / len(proc):.3f} {[round(p, 3) for p in proc]}")
    finally:
        remove_store(store)
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(haproxy, ignore_errors=True)


if __name__ == "__main__":
    main()
