"""A seeded synthetic national timetable and a demand model with a few hot trains.

- Trains: G (high-speed EMU), D (EMU), Z (direct express), T (express), K (fast ordinary)
  in roughly 40/25/10/10/15 %; 2-20 stations (G/D 2-15, Z/T/K 5-20); seats per class from
  the train's formation (G 16 cars: 28 business, 56 first, 1000 second; G 8 cars: 10, 28,
  500; D: first and second only; Z/T/K: sleepers, K sometimes seats only).
- Kinds: ``service`` from the prefix (G/D ``emu``, Z/T ``express``, K ``ordinary``); about
  half the trains are ``through`` (stations from anywhere), the rest ``local`` (stations of
  their home bureau).
- 18 bureaus and 33 centres (bureau ``B01``'s centres are ``B01C1`` (main), ``B01C2``...).
- ``generate_demand``: requests over the sale days where train popularity follows a Zipf
  law, so a few hot trains draw most requests; counts are mostly 1.

The same arguments and seed always give the same timetable and requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from gridfare.errors import InvalidInput
from gridfare.seats.train import TrainDate

__all__ = [
    "Request",
    "Timetable",
    "TrainSpec",
    "generate_demand",
    "generate_timetable",
]

PREFIXES: tuple[str, ...] = ("G", "D", "Z", "T", "K")
_PREFIX_WEIGHTS = (0.40, 0.25, 0.10, 0.10, 0.15)
_SERVICE = {"G": "emu", "D": "emu", "Z": "express", "T": "express", "K": "ordinary"}
_STOPS = {"G": (2, 15), "D": (2, 15), "Z": (5, 20), "T": (5, 20), "K": (5, 20)}


@dataclass(frozen=True)
class TrainSpec:
    train_no: str
    stations: tuple[str, ...]
    classes: tuple[tuple[str, int], ...]
    through: bool
    service: str
    bureau: str

    @property
    def seats(self) -> int:
        return sum(n for _, n in self.classes)

    def on(self, day: date) -> TrainDate:
        return TrainDate(
            self.train_no, day, self.stations, self.classes, self.through, self.service
        )


@dataclass(frozen=True)
class Timetable:
    trains: tuple[TrainSpec, ...]
    days: tuple[date, ...]
    bureaus: tuple[tuple[str, tuple[str, ...]], ...]  # (bureau, centres; the first is main)

    def train_dates(self) -> Iterator[TrainDate]:
        for day in self.days:
            for train in self.trains:
                yield train.on(day)

    def centres(self, bureau: str) -> tuple[str, ...]:
        return dict(self.bureaus)[bureau]

    def train_seats(self, bureau: str) -> dict[str, int]:
        """Seats per train (one departure) of a bureau's trains, for ``plan_placement``."""
        return {t.train_no: t.seats for t in self.trains if t.bureau == bureau}


@dataclass(frozen=True)
class Request:
    train_no: str
    date: date
    from_station: str
    to_station: str
    cls: str
    count: int
    request_id: str


def _bureaus(n_bureaus: int, n_centres: int) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not 1 <= n_bureaus <= n_centres:
        raise InvalidInput(f"timetable: need 1 <= n_bureaus <= n_centres, got {n_bureaus}")
    sizes = [n_centres // n_bureaus + (i < n_centres % n_bureaus) for i in range(n_bureaus)]
    return tuple(
        (f"B{b + 1:02d}", tuple(f"B{b + 1:02d}C{c + 1}" for c in range(size)))
        for b, size in enumerate(sizes)
    )


def _classes(prefix: str, rng: np.random.Generator) -> tuple[tuple[str, int], ...]:
    long = rng.random() < 0.4  # 16 cars rather than 8
    if prefix == "G":
        return (
            (("business", 28), ("first", 56), ("second", 1000))
            if long
            else (
                ("business", 10),
                ("first", 28),
                ("second", 500),
            )
        )
    if prefix == "D":
        return (("first", 96), ("second", 1000)) if long else (("first", 48), ("second", 550))
    if prefix == "Z":
        return (("second", 300), ("sleeper", 440))
    if prefix == "T":
        return (("second", 700), ("sleeper", 300))
    if rng.random() < 0.6:
        return (("second", 900), ("sleeper", 300))
    return (("second", 1200),)


def generate_timetable(
    seed: int = 0,
    n_trains: int = 3000,
    *,
    start: date = date(2026, 10, 1),
    days: int = 15,
    n_bureaus: int = 18,
    n_centres: int = 33,
    n_stations: int = 900,
) -> Timetable:
    if n_trains < 1 or days < 1 or n_stations < 20 * n_bureaus:
        raise InvalidInput(
            f"timetable: need n_trains >= 1, days >= 1 and n_stations >= {20 * n_bureaus}; "
            f"got {n_trains}, {days}, {n_stations}"
        )
    rng = np.random.default_rng(seed)
    bureaus = _bureaus(n_bureaus, n_centres)
    stations = [f"ST{i:04d}" for i in range(n_stations)]
    per_bureau = n_stations // n_bureaus
    prefixes = rng.choice(len(PREFIXES), size=n_trains, p=_PREFIX_WEIGHTS)
    numbers: dict[str, list[int]] = {}
    for i, prefix in enumerate(PREFIXES):
        count = int(np.count_nonzero(prefixes == i))
        if count > 9999:
            raise InvalidInput(f"timetable: {count} {prefix} trains do not fit 4 digits")
        numbers[prefix] = sorted(rng.choice(np.arange(1, 10000), size=count, replace=False))
    trains = []
    for i, prefix in enumerate(PREFIXES):
        for number in numbers[prefix]:
            b = int(rng.integers(n_bureaus))
            through = bool(rng.random() < 0.5)
            low, high = _STOPS[prefix]
            n_stops = int(rng.integers(low, high + 1))
            pool = (
                np.arange(n_stations)
                if through
                else np.arange(b * per_bureau, (b + 1) * per_bureau)
            )
            chosen = rng.choice(pool, size=n_stops, replace=False)
            trains.append(
                TrainSpec(
                    train_no=f"{prefix}{int(number)}",
                    stations=tuple(stations[s] for s in chosen),
                    classes=_classes(PREFIXES[i], rng),
                    through=through,
                    service=_SERVICE[prefix],
                    bureau=bureaus[b][0],
                )
            )
    return Timetable(
        trains=tuple(trains),
        days=tuple(start + timedelta(days=d) for d in range(days)),
        bureaus=bureaus,
    )


def generate_demand(
    timetable: Timetable, seed: int = 0, n_requests: int = 10_000, zipf: float = 1.1
) -> list[Request]:
    """Ticket requests; train ``k`` in a seeded popularity order draws weight ``1/k**zipf``."""
    if n_requests < 0 or zipf <= 0:
        raise InvalidInput(f"demand: need n_requests >= 0 and zipf > 0, got {n_requests}, {zipf}")
    rng = np.random.default_rng(seed)
    n = len(timetable.trains)
    rank = rng.permutation(n) + 1
    weights = 1.0 / rank.astype(np.float64) ** zipf
    picks = rng.choice(n, size=n_requests, p=weights / weights.sum())
    day_picks = rng.integers(len(timetable.days), size=n_requests)
    counts = rng.choice([1, 2, 3, 4, 5], size=n_requests, p=[0.7, 0.18, 0.07, 0.03, 0.02])
    requests = []
    for q in range(n_requests):
        train = timetable.trains[int(picks[q])]
        first, last = sorted(rng.choice(len(train.stations), size=2, replace=False).tolist())
        seats = np.array([n for _, n in train.classes], dtype=np.float64)
        cls = train.classes[int(rng.choice(len(seats), p=seats / seats.sum()))][0]
        requests.append(
            Request(
                train_no=train.train_no,
                date=timetable.days[int(day_picks[q])],
                from_station=train.stations[first],
                to_station=train.stations[last],
                cls=cls,
                count=int(counts[q]),
                request_id=f"q{seed}-{q:08d}",
            )
        )
    return requests
