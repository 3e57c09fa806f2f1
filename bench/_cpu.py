"""CPU seconds the benches count apart from what they measure: a server process with all it
started (a PostgreSQL postmaster and its backends), and the bench's own child processes (a
load generator: wrk, pgbench)."""

from __future__ import annotations

import resource

__all__ = ["children_cpu_s", "seat_centres_nice", "server_cpu_s"]


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
