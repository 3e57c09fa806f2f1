"""What a seat centre answers, as dataclasses that cross processes (Ray pickles them).

A sale is ``Sold | SoldOut | Moved | Frozen | Refused``; a refund ``Refunded | Moved |
Frozen | Refused``; a query ``Remaining | Moved``. ``Moved`` names the new owner and its
directory version (the client follows it); ``Frozen`` means the train-date stayed frozen
for its migration longer than the centre waits (the client retries); ``Refused`` carries
the ``GridfareError`` itself, so it is raised as its own class, never revived by name.

``to_dict`` gives the JSON the HTTP API and the Python client answer (see docs/seats.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gridfare.errors import GridfareError, TrainFrozen

__all__ = [
    "Answer",
    "Frozen",
    "Moved",
    "Refunded",
    "Refused",
    "Remaining",
    "Sold",
    "SoldOut",
    "Status",
    "settled",
]


class Status(str, Enum):
    SOLD = "sold"
    SOLD_OUT = "sold_out"
    REFUNDED = "refunded"
    OK = "ok"
    MOVED = "moved"


@dataclass(frozen=True)
class Sold:
    key: str
    request_id: str
    cls: str
    from_station: str
    to_station: str
    seats: tuple[int, ...]
    repeat: bool  # the request_id was sold before: the same seats again

    def to_dict(self) -> dict[str, object]:
        return {"status": Status.SOLD.value, "key": self.key, "request_id": self.request_id,
                "cls": self.cls, "from": self.from_station, "to": self.to_station,
                "seats": list(self.seats), "repeat": self.repeat}


@dataclass(frozen=True)
class SoldOut:
    """Not enough seats: an answer, not an error (nothing is remembered; a retry may sell)."""

    key: str
    cls: str
    from_station: str
    to_station: str
    requested: int
    remaining: int

    def to_dict(self) -> dict[str, object]:
        return {"status": Status.SOLD_OUT.value, "key": self.key, "cls": self.cls,
                "from": self.from_station, "to": self.to_station, "requested": self.requested,
                "remaining": self.remaining}


@dataclass(frozen=True)
class Refunded:
    key: str
    request_id: str
    cls: str
    seats: tuple[int, ...]
    repeat: bool  # refunded before: nothing changed now

    def to_dict(self) -> dict[str, object]:
        return {"status": Status.REFUNDED.value, "key": self.key, "request_id": self.request_id,
                "cls": self.cls, "seats": list(self.seats), "repeat": self.repeat}


@dataclass(frozen=True)
class Remaining:
    key: str
    from_station: str
    to_station: str
    classes: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        return {"status": Status.OK.value, "key": self.key, "from": self.from_station,
                "to": self.to_station, "classes": dict(self.classes)}


@dataclass(frozen=True)
class Moved:
    key: str
    centre: str
    version: int

    def to_dict(self) -> dict[str, object]:
        return {"status": Status.MOVED.value, "key": self.key, "centre": self.centre,
                "version": self.version}


@dataclass(frozen=True)
class Frozen:
    key: str
    message: str


@dataclass(frozen=True)
class Refused:
    error: GridfareError


Answer = Sold | SoldOut | Refunded | Remaining | Moved | Frozen | Refused


def settled(answer: Answer) -> Answer:
    """``answer`` itself, or its error raised (``Refused``: the error; ``Frozen``:
    ``TrainFrozen``)."""
    if isinstance(answer, Refused):
        raise answer.error
    if isinstance(answer, Frozen):
        raise TrainFrozen(answer.message)
    return answer
