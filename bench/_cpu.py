"""CPU seconds the benches count apart from what they measure: a server process with all it
started (a PostgreSQL postmaster and its backends), and the bench's own child processes (a
load generator: wrk, pgbench)."""

from __future__ import annotations

import resource

__all__ = ["children_cpu_s", "process_tree_cpu", "seat_centres_nice", "server_cpu_s",
           "tree_cpu_by_kind"]


def server_cpu_s(pid: int) -> float:
    """User + system seconds of process ``pid`` and of every process below it, the ones it
    has reaped included: a postmaster reaps each backend that ends (a closed connection),
    whose time then lives only in the postmaster's ``children_*``. 0.0 once it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        t = root.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for proc in root.children(recursive=True):
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue  # ended between the listing and the read: its time is reaped
            total += t.user + t.system
    except psutil.Error:
        return 0.0
    return total


def children_cpu_s() -> float:
    """User + system seconds of this process's children that have ended and been waited
    for (a finished wrk or pgbench run)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def seat_centres_nice() -> int:
    """The niceness the cluster's workers run at, read from this driver's SeatCentre actor
    processes (a load generator runs at it: neither outranking the cluster nor yielding)."""
    import psutil

    found = {p.nice() for p in psutil.Process().children(recursive=True)
             if "SeatCentre" in p.name()}
    if len(found) != 1:
        raise RuntimeError(f"the seat centres' niceness is not one value: {found}")
    return found.pop()


def process_tree_cpu() -> dict[int, tuple[str, float]]:
    """This process and every process below it (a local Ray cluster it started: GCS,
    raylet, workers, actors): pid -> (its title, user + system seconds so far)."""
    import psutil

    me = psutil.Process()
    found: dict[int, tuple[str, float]] = {}
    for proc in [me, *me.children(recursive=True)]:
        try:
            with proc.oneshot():
                title = " ".join(proc.cmdline()[:1]) or proc.name()
                t = proc.cpu_times()
        except psutil.Error:
            continue
        found[proc.pid] = (title, t.user + t.system)
    return found


def _kind(pid: int, title: str) -> str:
    import os

    if pid == os.getpid():
        return "driver"
    for key, kind in (("ControlServer", "ControlServer"), ("NodeAgent", "NodeAgent"),
                      ("bill_bundle", "billing workers"), ("ray::IDLE", "billing workers"),
                      ("raylet", "raylet"), ("gcs_server", "GCS")):
        if key in title:
            return kind
    return "other Ray processes"


def tree_cpu_by_kind(before: dict[int, tuple[str, float]],
                     after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds spent between two ``process_tree_cpu`` snapshots, by kind of process
    (a process started between them counts whole; one that ended is lost: none should)."""
    spent: dict[str, float] = {}
    for pid, (title, seconds) in after.items():
        first_title, first = before.get(pid, (title, 0.0))
        # A worker's title is the task it runs: "billing" if it was so at either end.
        kind = _kind(pid, title)
        if kind == "other Ray processes":
            kind = _kind(pid, first_title)
        spent[kind] = spent.get(kind, 0.0) + seconds - first
    return dict(sorted(spent.items(), key=lambda item: -item[1]))
