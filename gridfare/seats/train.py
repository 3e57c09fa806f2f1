"""A train-date: one train number running on one departure date, and its seat classes.

Leg ``i`` runs from ``stations[i]`` to ``stations[i + 1]``; a train with ``n`` stations has
``n - 1`` legs and at most ``MAX_LEGS`` (63) of them, so that a seat's occupancy fits in one
uint64. The key of a train-date is ``"G1234@2026-10-01"`` (``train_key``), used by the
write-ahead log, the snapshots and the directory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from gridfare.errors import InvalidInput
from gridfare.seats.names import check_text

__all__ = [
    "MAX_LEGS",
    "SCOPES",
    "SEAT_CLASSES",
    "SERVICES",
    "TrainDate",
    "parse_key",
    "train_key",
]

SEAT_CLASSES: tuple[str, ...] = ("business", "first", "second", "sleeper")
SCOPES: tuple[str, ...] = ("through", "local")  # through: crosses bureaus; local: stays in one
SERVICES: tuple[str, ...] = ("express", "emu", "ordinary")  # Z/T express, G/D EMU, K ordinary
MAX_LEGS = 63
MAX_SEATS_PER_CLASS = 10_000

_TRAIN_NO = re.compile(r"[A-Z]?[0-9]{1,5}")  # fullmatch: "$" would let "G1\n" in


def train_key(train_no: str, day: date) -> str:
    """``("G1234", date(2026, 10, 1))`` -> ``"G1234@2026-10-01"``."""
    return f"{train_no}@{day.isoformat()}"


def parse_key(key: str) -> tuple[str, date]:
    """``"G1234@2026-10-01"`` -> ``("G1234", date(2026, 10, 1))``."""
    train_no, sep, day = str(key).partition("@")
    try:
        if not sep or not _TRAIN_NO.fullmatch(train_no):
            raise ValueError(key)
        return train_no, date.fromisoformat(day)
    except ValueError as exc:
        raise InvalidInput(f"train-date key {key!r}: expected TRAIN@YYYY-MM-DD") from exc


@dataclass(frozen=True)
class TrainDate:
    """One train on one departure date. ``classes`` may be given as a mapping; it is stored
    as ``((class, seats), ...)`` in ``SEAT_CLASSES`` order."""

    train_no: str
    date: date
    stations: tuple[str, ...]
    classes: tuple[tuple[str, int], ...]
    through: bool = False
    service: str = "emu"
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        stations = tuple(self.stations)
        classes = self.classes
        if isinstance(classes, Mapping):
            classes = tuple(classes.items())
        classes = tuple((str(c), n) for c, n in classes)
        _validate(self.train_no, self.date, stations, classes, self.through, self.service)
        order = {c: i for i, c in enumerate(SEAT_CLASSES)}
        object.__setattr__(self, "stations", stations)
        object.__setattr__(self, "classes", tuple(sorted(classes, key=lambda cn: order[cn[0]])))
        object.__setattr__(self, "key", train_key(self.train_no, self.date))

    @property
    def legs(self) -> int:
        return len(self.stations) - 1

    @property
    def scope(self) -> str:
        return "through" if self.through else "local"

    @property
    def seats(self) -> int:
        """All seats of all classes."""
        return sum(n for _, n in self.classes)

    def seats_of(self, cls: str) -> int:
        for name, n in self.classes:
            if name == cls:
                return n
        raise InvalidInput(
            f"train-date {self.key}: class {cls!r} is not on this train "
            f"(has {', '.join(c for c, _ in self.classes)})"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "train_no": self.train_no,
            "date": self.date.isoformat(),
            "stations": list(self.stations),
            "classes": {c: n for c, n in self.classes},
            "through": self.through,
            "service": self.service,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TrainDate:
        if not isinstance(data, Mapping):
            raise InvalidInput(f"train-date record {data!r}: must be an object")
        for name, kinds, what in (
            ("train_no", str, "a string"),
            ("date", str, "a string YYYY-MM-DD"),
            ("stations", (list, tuple), "a list of station names"),
            ("classes", Mapping, "an object of class: seats"),
        ):
            if name not in data:
                raise InvalidInput(f"train-date record: field {name!r} is required")
            if not isinstance(data[name], kinds):
                raise InvalidInput(
                    f"train-date record: field {name!r} must be {what}, got {data[name]!r:.80}"
                )
        unknown = sorted(set(data) - {"train_no", "date", "stations", "classes", "through",
                                      "service"})
        if unknown:
            raise InvalidInput(f"train-date record: unknown field {unknown[0]!r:.80}")
        try:
            return cls(
                train_no=data["train_no"],
                date=date.fromisoformat(str(data["date"])),
                stations=tuple(data["stations"]),
                classes=dict(data["classes"]),
                through=data.get("through", False),
                service=data.get("service", "emu"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"train-date record {dict(data)!r:.200}: {exc}") from exc


def _validate(
    train_no: object,
    day: object,
    stations: Sequence[object],
    classes: Sequence[tuple[str, object]],
    through: object,
    service: object,
) -> None:
    if not isinstance(train_no, str) or not _TRAIN_NO.fullmatch(train_no):
        where = f"train-date {train_no!r:.40}"
        raise InvalidInput(f"{where}: train_no must be like G1234 (a capital and 1-5 digits)")
    where = f"train-date {train_no}@{day}"
    if not isinstance(day, date):
        raise InvalidInput(f"{where}: date must be a datetime.date, got {day!r}")
    if len(stations) < 2:
        raise InvalidInput(f"{where}: needs at least 2 stations, got {len(stations)}")
    if len(stations) - 1 > MAX_LEGS:
        raise InvalidInput(f"{where}: {len(stations) - 1} legs; at most {MAX_LEGS} fit a uint64")
    for s in stations:
        check_text(s, f"{where}: station")
        if "@" in s:
            raise InvalidInput(f"{where}: station {s!r} must be a name without '@'")
    if len(set(stations)) != len(stations):
        raise InvalidInput(f"{where}: a station appears twice in {list(stations)}")
    if not classes:
        raise InvalidInput(f"{where}: needs at least one seat class")
    names = [c for c, _ in classes]
    if len(set(names)) != len(names):
        raise InvalidInput(f"{where}: a seat class appears twice in {names}")
    for name, n in classes:
        if name not in SEAT_CLASSES:
            raise InvalidInput(
                f"{where}: unknown seat class {name!r} (expected {', '.join(SEAT_CLASSES)})"
            )
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SEATS_PER_CLASS:
            raise InvalidInput(
                f"{where}: class {name} must have 1..{MAX_SEATS_PER_CLASS} seats, got {n!r}"
            )
    if not isinstance(through, bool):
        raise InvalidInput(f"{where}: through must be true or false, got {through!r}")
    if service not in SERVICES:
        raise InvalidInput(f"{where}: service {service!r} not one of {', '.join(SERVICES)}")
