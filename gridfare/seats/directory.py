"""The seat directory: which centre owns each train-date, with a version per train-date.

Every write names the version it was based on (``expected_version``) and is refused with
``StaleVersion`` if that is not the current one, never merged. ``place`` starts a train-date
at version 1; ``move`` and ``remove`` bump or end it. Each write returns a
``DirectoryRecord`` for the actor's log; ``apply`` replays records (idempotent: a record at
or below the current version is already in), so a restarted directory rebuilds its map.
A centre asked about a train-date it no longer owns answers ``TrainMoved`` with the owner
and version that ``check`` reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gridfare.errors import InvalidInput, StaleVersion, TrainMoved, UnknownTrain, WalCorrupt

__all__ = ["Directory", "DirectoryRecord", "Entry"]

DIRECTORY_OPS = ("place", "move", "remove")


@dataclass(frozen=True)
class Entry:
    centre: str
    version: int


@dataclass(frozen=True)
class DirectoryRecord:
    op: str
    key: str
    centre: str
    version: int  # the version after this write

    def to_dict(self) -> dict[str, object]:
        return {"op": self.op, "key": self.key, "centre": self.centre, "version": self.version}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> DirectoryRecord:
        try:
            record = cls(str(data["op"]), str(data["key"]), str(data["centre"]), data["version"])
        except KeyError as exc:
            raise InvalidInput(f"directory record {dict(data)!r}: missing {exc}") from exc
        if record.op not in DIRECTORY_OPS or not isinstance(record.version, int):
            raise InvalidInput(f"directory record {dict(data)!r}: bad op or version")
        return record


class Directory:
    def __init__(self, entries: Mapping[str, Entry] | None = None) -> None:
        self._entries: dict[str, Entry] = dict(entries or {})
        self._removed: dict[str, int] = {}  # key -> version at removal

    def lookup(self, key: str) -> Entry:
        entry = self._entries.get(key)
        if entry is None:
            raise UnknownTrain(f"directory: no centre holds train-date {key}")
        return entry

    def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    def keys_of(self, centre: str) -> list[str]:
        return sorted(k for k, e in self._entries.items() if e.centre == centre)

    def entries(self) -> dict[str, Entry]:
        return dict(sorted(self._entries.items()))

    def check(self, key: str, centre: str) -> Entry:
        """The entry if ``centre`` owns ``key``; else ``TrainMoved`` naming the owner."""
        entry = self.lookup(key)
        if entry.centre != centre:
            raise TrainMoved(key, entry.centre, entry.version)
        return entry

    def place(self, key: str, centre: str) -> DirectoryRecord:
        """A new train-date (version 1). Placing it again on the same centre is a no-op."""
        _check_centre(centre)
        entry = self._entries.get(key)
        if entry is not None:
            if entry.centre == centre:
                return DirectoryRecord("place", key, centre, entry.version)
            raise StaleVersion(
                f"directory: train-date {key} is already on {entry.centre} at version "
                f"{entry.version}; use move with that version"
            )
        version = self._removed.get(key, 0) + 1
        return self._write(DirectoryRecord("place", key, centre, version))

    def move(self, key: str, centre: str, expected_version: int) -> DirectoryRecord:
        _check_centre(centre)
        entry = self._expect(key, expected_version, "move")
        return self._write(DirectoryRecord("move", key, centre, entry.version + 1))

    def remove(self, key: str, expected_version: int) -> DirectoryRecord:
        entry = self._expect(key, expected_version, "remove")
        return self._write(DirectoryRecord("remove", key, entry.centre, entry.version + 1))

    def apply(self, record: DirectoryRecord) -> bool:
        """Replay one record; False if it is already in."""
        entry = self._entries.get(record.key)
        current = entry.version if entry is not None else self._removed.get(record.key, 0)
        if record.version <= current:
            return False
        if record.version != current + 1:
            raise WalCorrupt(
                f"directory record {record.to_dict()}: version {record.version} does not "
                f"follow {current}"
            )
        self._write(record)
        return True

    @classmethod
    def rebuild(cls, records: Iterable[DirectoryRecord]) -> Directory:
        directory = cls()
        for record in records:
            directory.apply(record)
        return directory

    def _expect(self, key: str, expected_version: int, op: str) -> Entry:
        entry = self.lookup(key)
        if expected_version != entry.version:
            raise StaleVersion(
                f"directory: {op} of train-date {key} was based on version {expected_version}, "
                f"but it is at version {entry.version} on {entry.centre}"
            )
        return entry

    def _write(self, record: DirectoryRecord) -> DirectoryRecord:
        if record.op == "remove":
            self._entries.pop(record.key, None)
            self._removed[record.key] = record.version
        else:
            self._entries[record.key] = Entry(record.centre, record.version)
            self._removed.pop(record.key, None)
        return record


def _check_centre(centre: object) -> None:
    if not isinstance(centre, str) or not centre:
        raise InvalidInput(f"directory: centre must be a non-empty string, got {centre!r}")
