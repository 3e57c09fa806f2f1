"""Shared helpers of the seats cluster and fault tests."""

from __future__ import annotations

from datetime import date

from gridfare.seats.train import TrainDate

DAY = date(2026, 10, 1)
STATIONS = ("Beijing", "Tianjin", "Jinan", "Nanjing", "Shanghai")


def trains(numbers=("G1", "G2", "G5", "D3", "D10", "T9"), days=2, seats=60) -> list[TrainDate]:
    return [
        TrainDate(
            n,
            date(2026, 10, 1 + d),
            STATIONS,
            {"first": 10, "second": seats},
            through=n.startswith("T"),
            service="express" if n[0] in "TZ" else "emu",
        )
        for d in range(days)
        for n in numbers
    ]


def start_seats(root, centres=("A", "B", "C"), placement=None, **options):
    from actors.seats_client import SeatsClient

    options.setdefault("freeze_wait_s", 2.0)
    client = SeatsClient.start(str(root), list(centres), centres[0], **options)
    client.load_timetable(trains(), placement=placement)
    return client


def stop_seats(client) -> None:
    from actors.seat_migrator import kill_seat_actors

    kill_seat_actors(str(client.aio.root.path))
    client.close()


def restart_actor(actor, timeout_s: float = 60.0) -> None:
    """Kill ``actor`` and return once Ray has restarted it (a new process answers).

    ``ray.kill`` only asks: a call made right after it may still reach the old incarnation,
    so a test that checks what the restarted actor rebuilt must wait for the restart.
    """
    import os
    import time

    import ray

    def pid():
        return ray.get(actor.__ray_call__.remote(lambda self: os.getpid()), timeout=timeout_s)

    before = pid()
    ray.kill(actor, no_restart=False)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pid() != before:
            return
        time.sleep(0.05)
    raise AssertionError(f"actor {actor} did not restart within {timeout_s} s")
