"""What a seats client may ask, as validated dataclasses: the edge's one validation layer.

The HTTP API builds them from a JSON object (``from_json``: every field's type and rule is
checked, unknown fields refused, before anything is sent to a centre), the Python client
and the CLI build them from arguments (the same ``__post_init__``). So a request that
reaches a centre is whole and well-formed; the centre checks the rules that need its state
(the train-date's stations and classes, the order's request_id).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property, lru_cache

from gridfare.errors import InvalidInput
from gridfare.seats.inventory import MAX_PER_ORDER, MAX_REQUEST_ID
from gridfare.seats.names import check_centre_id, check_migration_id, check_text
from gridfare.seats.selectors import TrainSelector
from gridfare.seats.train import SEAT_CLASSES, train_key

__all__ = [
    "MAX_SELECTOR",
    "MigrateRequest",
    "RefundRequest",
    "RemainingQuery",
    "SellRequest",
    "TrainDateRef",
    "check_day",
    "check_sell_rows",
    "check_train_no",
]

MAX_SELECTOR = 512
_TRAIN_NO = re.compile(r"[A-Z]?[0-9]{1,5}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def check_train_no(value: object, what: str = "train_no") -> str:
    if not isinstance(value, str) or not _is_train_no(value):
        raise InvalidInput(f"{what} {value!r:.60}: expected e.g. G1234 (a capital, 1-5 digits)")
    return value


@lru_cache(maxsize=65536)  # a bulk call names the same trains and days again and again
def _is_train_no(value: str) -> bool:
    return _TRAIN_NO.fullmatch(value) is not None


def check_day(value: object, what: str = "date") -> str:
    """A departure date as ``YYYY-MM-DD`` (a ``datetime.date`` is accepted from Python)."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        day = _day(value)
        if day is not None:
            return day
    raise InvalidInput(f"{what} {value!r:.60}: expected YYYY-MM-DD")


@lru_cache(maxsize=4096)
def _day(value: str) -> str | None:
    if _DAY.fullmatch(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    return None


@lru_cache(maxsize=65536)
def _key(train_no: str, day: str) -> str:
    return train_key(train_no, date.fromisoformat(day))


def _typed(body: Mapping[str, object], name: str, kind: type, required: bool, default=None):
    if name not in body:
        if required:
            raise InvalidInput(f"field {name!r} is required")
        return default
    value = body[name]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidInput(f"field {name!r} must be an integer, got {value!r:.60}")
    if kind is not int and not isinstance(value, kind):
        raise InvalidInput(f"field {name!r} must be a {kind.__name__}, got {value!r:.60}")
    return value


def _only(body: Mapping[str, object], known: set[str]) -> None:
    if not isinstance(body, Mapping):
        raise InvalidInput("the body must be a JSON object")
    unknown = sorted(str(k) for k in set(body) - known)
    if unknown:
        expected = ", ".join(sorted(known))
        raise InvalidInput(f"unknown field {unknown[0]!r:.60} (expected {expected})")


@dataclass(frozen=True)
class TrainDateRef:
    """One train-date named by a client (``GET /trains/{train_no}/{date}``)."""

    train_no: str
    date: str

    def __post_init__(self) -> None:
        check_train_no(self.train_no)
        object.__setattr__(self, "date", check_day(self.date))

    @property
    def key(self) -> str:
        return train_key(self.train_no, date.fromisoformat(self.date))


_SELL_JSON = {"train_no": "train_no", "date": "date", "from": "from_station",
              "to": "to_station", "class": "cls", "count": "count", "request_id": "request_id"}


@dataclass(frozen=True)
class SellRequest:
    train_no: str
    date: str
    from_station: str
    to_station: str
    cls: str
    count: int
    request_id: str

    def __post_init__(self) -> None:
        check_train_no(self.train_no)
        object.__setattr__(self, "date", check_day(self.date))
        check_text(self.from_station, "from")
        check_text(self.to_station, "to")
        if self.cls not in SEAT_CLASSES:
            raise InvalidInput(
                f"class {self.cls!r:.60}: expected one of {', '.join(SEAT_CLASSES)}")
        count = self.count
        if isinstance(count, bool) or not isinstance(count, int):
            raise InvalidInput(f"count {count!r:.60}: must be an integer")
        if not 1 <= count <= MAX_PER_ORDER:
            raise InvalidInput(f"count {count}: must be 1..{MAX_PER_ORDER} seats per order")
        check_text(self.request_id, "request_id", MAX_REQUEST_ID)

    @classmethod
    def from_json(cls, body: Mapping[str, object]) -> SellRequest:
        _only(body, set(_SELL_JSON))
        return cls(**{attr: _typed(body, name, int if name == "count" else str, True)
                      for name, attr in _SELL_JSON.items()})

    @cached_property
    def key(self) -> str:
        return _key(self.train_no, self.date)

    def as_tuple(self) -> tuple:
        """The arguments of ``SeatCentre.sell``."""
        return (self.train_no, self.date, self.from_station, self.to_station, self.cls,
                self.count, self.request_id)

    def as_list(self) -> list:
        """One row of ``SeatCentre.sell_many``: a list, which Ray sends with msgpack alone
        (a tuple row would send the whole batch through its pickle path too)."""
        return [self.train_no, self.date, self.from_station, self.to_station, self.cls,
                self.count, self.request_id]


def check_sell_rows(requests: Iterable[SellRequest | Sequence]) -> list[tuple[str, list]]:
    """``(train-date key, sell_many's row)`` for each request (the row a list:
    ``SellRequest.as_list``), checked by ``SellRequest``'s
    rules (a row that breaks one raises ``SellRequest``'s own error). A bulk call names a
    few trains, days and stations again and again: each distinct one is checked once, so
    300,000 rows cost a third of building as many ``SellRequest``s (the client checks them
    all before it sends any)."""
    trips: dict[tuple, tuple[str, str]] = {}  # (train_no, day) -> (key, day as YYYY-MM-DD)
    places: set[tuple[str, object]] = set()  # ("from" | "to", station) checked
    checked = []
    for request in requests:
        if isinstance(request, SellRequest):
            checked.append((request.key, request.as_list()))
            continue
        try:
            train_no, day, first, last, cls, count, request_id = request
            trip = trips.get((train_no, day))
            if trip is None:
                check_train_no(train_no)
                normal = check_day(day)
                trip = trips[train_no, day] = (_key(train_no, normal), normal)
            for place in (("from", first), ("to", last)):
                if place not in places:
                    check_text(place[1], place[0])
                    places.add(place)
            if (cls not in SEAT_CLASSES or isinstance(count, bool) or not isinstance(count, int)
                    or not 1 <= count <= MAX_PER_ORDER):
                raise InvalidInput("a rule")  # SellRequest below says which
            check_text(request_id, "request_id", MAX_REQUEST_ID)
        except (InvalidInput, TypeError, ValueError):
            SellRequest(*request)  # raises the same error a SellRequest would
            raise
        checked.append((trip[0], [train_no, trip[1], first, last, cls, count, request_id]))
    return checked


@dataclass(frozen=True)
class RefundRequest:
    train_no: str
    date: str
    request_id: str

    def __post_init__(self) -> None:
        check_train_no(self.train_no)
        object.__setattr__(self, "date", check_day(self.date))
        check_text(self.request_id, "request_id", MAX_REQUEST_ID)

    @classmethod
    def from_json(cls, body: Mapping[str, object]) -> RefundRequest:
        _only(body, {"train_no", "date", "request_id"})
        return cls(*(_typed(body, name, str, True) for name in ("train_no", "date", "request_id")))

    @cached_property
    def key(self) -> str:
        return _key(self.train_no, self.date)

    def as_tuple(self) -> tuple:
        return (self.train_no, self.date, self.request_id)


@dataclass(frozen=True)
class RemainingQuery:
    train_no: str
    date: str
    from_station: str
    to_station: str

    def __post_init__(self) -> None:
        check_train_no(self.train_no)
        object.__setattr__(self, "date", check_day(self.date))
        check_text(self.from_station, "from")
        check_text(self.to_station, "to")

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> RemainingQuery:
        names = ("train_no", "date", "from", "to")
        _only(query, set(names))
        for name in names:
            if not query.get(name):
                raise InvalidInput(f"query parameter {name!r} is required")
        return cls(*(query[name] for name in names))

    @property
    def key(self) -> str:
        return train_key(self.train_no, date.fromisoformat(self.date))

    def as_list(self) -> list[str]:
        """The one argument of ``SeatCentre.remaining``: a list, which Ray sends with
        msgpack alone (a tuple would take its pickle path too)."""
        return [self.train_no, self.date, self.from_station, self.to_station]


@dataclass(frozen=True)
class MigrateRequest:
    selector: str
    target: str
    id: str | None = None
    auto: bool = True

    def __post_init__(self) -> None:
        check_text(self.selector, "selector", MAX_SELECTOR)
        TrainSelector.parse(self.selector)  # its rules, before the migrator is asked
        check_centre_id(self.target, "target centre")
        if self.id is not None:
            check_migration_id(self.id)
        if not isinstance(self.auto, bool):
            raise InvalidInput(f"auto {self.auto!r:.60}: must be true or false")

    @classmethod
    def from_json(cls, body: Mapping[str, object]) -> MigrateRequest:
        _only(body, {"selector", "target", "id", "auto"})
        return cls(
            _typed(body, "selector", str, True),
            _typed(body, "target", str, True),
            _typed(body, "id", str, False),
            _typed(body, "auto", bool, False, True),
        )
