"""SeatDirectory: train-date -> (centre, version), a thin shell over ``gridfare.seats.Directory``.

Every write is appended to ``<root>/directory/log.jsonl`` and fsynced before it is answered;
``__init__`` rebuilds the map from that log, so a restarted directory answers exactly what
it acknowledged. Restart policy: ``max_restarts=-1``, ``max_task_retries=-1``: a retried
``place`` of the same centre is a no-op and a retried ``move`` names the version it was based
on, so a repeat is refused (``StaleVersion``) rather than applied twice; the migrator reads
the directory again before deciding what that means.

``generation`` counts the writes: clients cache the whole map and refresh it when a centre
answers ``moved`` with a newer version than they hold.
"""

from __future__ import annotations

import ray

from actors import named_detached
from actors.seat_runtime import quiet_gc, seats_suffix
from gridfare.errors import SeatError
from gridfare.seats.directory import Directory, DirectoryRecord
from gridfare.seats.store import SeatsRoot


def directory_name(root: str) -> str:
    return f"gridfare-seat-directory-{seats_suffix(root)}"


def get_seat_directory(root: str) -> ray.actor.ActorHandle:
    return named_detached(SeatDirectory, directory_name(root)).remote(str(SeatsRoot(root).path))


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class SeatDirectory:
    def __init__(self, root: str) -> None:
        self._root = SeatsRoot(root)
        self._centres = self._root.config().centres
        self._file, records = self._root.open_directory_log()
        self._directory = Directory.rebuild(records)
        self._generation = len(records)
        quiet_gc()  # the map is long-lived: keep full collections out of the flip's path

    def _log(self, records: list[DirectoryRecord]) -> None:
        self._file.append([SeatsRoot.encode_directory_record(r) for r in records])
        self._generation += len(records)

    def _check_centre(self, centre: str) -> None:
        if centre not in self._centres:
            raise SeatError(f"directory: centre {centre!r} is not one of {self._centres}")

    def place_many(self, keys: list[str], centre: str) -> dict[str, int]:
        """Place new train-dates on ``centre`` (placing again on the same centre is a no-op)."""
        self._check_centre(centre)
        written, versions = [], {}
        for key in keys:
            known = self._directory.get(key)
            record = self._directory.place(key, centre)
            if known is None:
                written.append(record)
            versions[key] = record.version
        self._log(written)
        return versions

    def move(self, key: str, centre: str, expected_version: int) -> int:
        """Flip ``key`` to ``centre``; refused unless it is at ``expected_version``."""
        self._check_centre(centre)
        record = self._directory.move(key, centre, expected_version)
        self._log([record])
        return record.version

    def lookup(self, key: str) -> tuple[str, int]:
        entry = self._directory.lookup(key)
        return entry.centre, entry.version

    def entries(self) -> tuple[int, dict[str, tuple[str, int]]]:
        """``(generation, {key: (centre, version)})``."""
        return self._generation, {
            k: (e.centre, e.version) for k, e in self._directory.entries().items()
        }

    def generation(self) -> int:
        return self._generation

    def centres(self) -> tuple[str, ...]:
        return self._centres
