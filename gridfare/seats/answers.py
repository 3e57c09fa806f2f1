"""What a seat centre answers, as dataclasses that cross processes (Ray pickles them).

A sale is ``Sold | SoldOut | Moved | Frozen | Refused``; a refund ``Refunded | Moved |
Frozen | Refused``; a query ``Remaining | Moved``. ``Moved`` names the new owner and its
directory version (the client follows it); ``Frozen`` means the train-date stayed frozen
for its migration longer than the centre waits (the client retries); ``Refused`` carries
the ``GridfareError`` itself, so it is raised as its own class, never revived by name.

``to_dict`` gives the JSON the HTTP API and the Python client answer (see docs/seats.md).

A batch of sales is answered as one ``SaleAnswers``: the same answers in columns (a kind
byte and the seats or seats remaining per request; ``Moved``, ``Frozen`` and ``Refused``
kept as themselves), typed on access from the request rows they answer; it crosses
processes as plain values (``SaleAnswers.to_wire`` / ``from_wire``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import Enum, IntEnum
from functools import lru_cache

from gridfare.errors import GridfareError, SeatError, TrainFrozen

__all__ = [
    "Answer",
    "BulkAnswers",
    "Frozen",
    "Moved",
    "Refunded",
    "Refused",
    "Remaining",
    "SaleAnswers",
    "SaleKind",
    "Sold",
    "SoldOut",
    "Status",
    "remaining_from_wire",
    "remaining_wire",
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


def remaining_wire(answer: Remaining | Moved) -> list:
    """A query's answer as plain values, what the centre's ``remaining`` sends back:
    ``["ok", {class: seats}]`` or ``["moved", centre, version]``. Ray serialises lists,
    dicts, str and int with msgpack alone; anything else (a dataclass, and even a tuple)
    goes to its pickle path as well, on both ends. The names a ``Remaining`` repeats are
    the query's, so they stay with the caller (``remaining_from_wire``)."""
    if isinstance(answer, Remaining):
        return [Status.OK.value, answer.classes]
    if isinstance(answer, Moved):
        return [Status.MOVED.value, answer.centre, answer.version]
    raise SeatError(f"not a query's answer: {answer!r}")


def remaining_from_wire(key: str, from_station: str, to_station: str, wire: Sequence
                        ) -> Remaining | Moved:
    """The typed answer of the query ``(key, from, to)`` from ``remaining_wire``'s
    values."""
    status = wire[0] if len(wire) else None
    if status == Status.OK.value and len(wire) == 2:
        return Remaining(key, from_station, to_station, dict(wire[1]))
    if status == Status.MOVED.value and len(wire) == 3:
        return Moved(key, wire[1], int(wire[2]))
    raise SeatError(f"not a query's answer on the wire: {wire!r}")


class SaleKind(IntEnum):
    """A request's answer in a ``SaleAnswers`` (0: not answered yet)."""

    SOLD = 1
    REPEAT = 2  # sold before under the same request_id: the same seats again
    SOLD_OUT = 3
    OTHER = 4  # Moved, Frozen or Refused, kept as the answer itself


@lru_cache(maxsize=65536)
def _key(train_no: str, day: object) -> str:
    text = day.isoformat() if isinstance(day, date) else str(day)
    return f"{train_no}@{text}"


class _AnswerSequence(Sequence):
    """Answers typed on access that compare, print and slice as the list of them would."""

    __hash__ = None  # mutable

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same typed answers (a list included)."""
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"

    def _slice(self, i: slice) -> list:
        return [self[j] for j in range(*i.indices(len(self)))]


class SaleAnswers(_AnswerSequence):
    """The answers of one batch of sales, in columns: what ``sell_many`` sends back.

    Per request a ``SaleKind`` byte and a value (the seat numbers of a sale, the seats
    remaining of a sold-out); the rare ``Moved``, ``Frozen`` and ``Refused`` answers are
    kept whole in ``others``. Over the wire (``to_wire``) it is the kind bytes, one list of
    small ints and lists, and that dict: a few C-level objects per request, where a list
    of answer dataclasses was a Python-level reduce per answer on the centre and a dict
    per answer in the caller (profiled on ``bench/seats.py``'s Redis stream: pickling and
    unpickling the dataclasses cost a centre and the driver ~14 us per request).

    The names an answer repeats (train-date, stations, class, request_id) are the
    request's, so they do not travel back: the caller ``bind``s the rows it sent, and
    indexing gives the typed answer (``Sold``, ``SoldOut``, ...), built on access.
    ``rows`` are ``sell``'s arguments, read from ``first`` on (2: the 7-item rows of
    ``sell_many``; 0: an inventory's ``(from, to, cls, count, request_id)`` rows, with
    ``keys`` naming their train-date).
    """

    __slots__ = ("_first", "_keys", "_rows", "kinds", "others", "values")

    def __init__(self, n: int, rows: Sequence | None = None, *, keys: Sequence | str | None = None,
                 first: int = 2) -> None:
        self.kinds = bytearray(n)
        self.values: list = [None] * n
        self.others: dict[int, Answer] = {}
        self._rows, self._keys, self._first = rows, keys, first

    # ---- building (the centre) --------------------------------------------------------

    def sold(self, i: int, seats: tuple[int, ...], repeat: bool = False) -> None:
        self.kinds[i] = SaleKind.REPEAT if repeat else SaleKind.SOLD
        self.values[i] = seats

    def sold_out(self, i: int, remaining: int) -> None:
        self.kinds[i] = SaleKind.SOLD_OUT
        self.values[i] = remaining

    def __setitem__(self, i: int, answer: Answer) -> None:
        """Put a typed answer in slot ``i``."""
        if isinstance(answer, Sold):
            self.sold(i, tuple(answer.seats), answer.repeat)
        elif isinstance(answer, SoldOut):
            self.sold_out(i, answer.remaining)
        else:
            self.kinds[i] = SaleKind.OTHER
            self.values[i] = None
            self.others[i] = answer

    def __reduce__(self):
        return _from_wire, (bytes(self.kinds), self.values, self.others)

    def to_wire(self) -> list:
        """The answers as plain values, what the centre's ``sell_many`` sends back:
        ``[kind bytes, values, others]``, each sale's seats a list. Ray sends bytes, lists,
        dicts, str and int with msgpack alone; a tuple (a sale's seats as the inventory
        gives them) or the object itself would take its pickle path as well, on both ends.
        Only the rare ``others`` (``Moved``, ``Frozen``, ``Refused``) are pickled."""
        return [bytes(self.kinds),
                [list(v) if v.__class__ is tuple else v for v in self.values], self.others]

    @classmethod
    def from_wire(cls, wire: Sequence) -> SaleAnswers:
        """The answers ``to_wire`` gave (unbound: ``bind`` the rows they answer)."""
        try:
            kinds, values, others = wire
            if (not isinstance(kinds, bytes) or not isinstance(values, list)
                    or not isinstance(others, dict) or len(values) != len(kinds)):
                raise ValueError
        except (TypeError, ValueError):
            raise SeatError(f"not a batch of sale answers on the wire: {wire!r:.200}") from None
        return _from_wire(kinds, values, others)

    # ---- reading (the caller) ---------------------------------------------------------

    def bind(self, rows: Sequence, keys: Sequence | str | None = None, first: int = 2
             ) -> SaleAnswers:
        """Name the request rows these answers answer (in order); returns self."""
        if len(rows) != len(self.kinds):
            raise SeatError(f"{len(self.kinds)} answers for {len(rows)} requests")
        self._rows, self._keys, self._first = rows, keys, first
        return self

    def tally(self) -> dict[SaleKind, int]:
        """How many answers there are of each kind (read from the kind bytes)."""
        return {kind: self.kinds.count(kind) for kind in SaleKind}

    @property
    def sold_count(self) -> int:
        """Answers that are ``Sold`` (new sales and repeats)."""
        return self.kinds.count(SaleKind.SOLD) + self.kinds.count(SaleKind.REPEAT)

    def __len__(self) -> int:
        return len(self.kinds)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self._slice(i)
        kind = self.kinds[i]
        if kind == SaleKind.OTHER:
            return self.others[i if i >= 0 else i + len(self)]
        if kind == 0:
            return None
        if self._rows is None:
            raise SeatError("answers not bound to their requests (SaleAnswers.bind)")
        row, f = self._rows[i], self._first
        keys = self._keys
        key = (keys if isinstance(keys, str) else keys[i] if keys is not None
               else _key(row[0], row[1]))
        value = self.values[i]
        if kind == SaleKind.SOLD_OUT:
            return SoldOut(key, row[f + 2], row[f], row[f + 1], row[f + 3], value)
        return Sold(key, row[f + 4], row[f + 2], row[f], row[f + 1], tuple(value),
                    kind == SaleKind.REPEAT)


def _from_wire(kinds: bytes, values: list, others: dict) -> SaleAnswers:
    answers = SaleAnswers(0)
    answers.kinds, answers.values, answers.others = bytearray(kinds), values, others
    return answers


class BulkAnswers(_AnswerSequence):
    """A bulk call's answers in request order, assembled from its calls' answers (each a
    ``SaleAnswers`` or a list) without typing them: indexing types one on access.

    ``put(indices, part)`` says that the part's answers answer those requests (a later
    part overrides an earlier one for a request sent again after ``Moved``); ``set``
    gives one request an answer of its own. ``sold_count`` and ``tally`` read the parts'
    kind bytes: a request sent again was never sold before, so no sale counts twice.
    """

    def __init__(self, n: int) -> None:
        import numpy as np  # here: only a bulk caller needs it

        self._parts: list[Sequence] = []
        self._part = np.full(n, -1, dtype=np.int32)
        self._pos = np.zeros(n, dtype=np.int32)
        self._own: dict[int, Answer] = {}

    def put(self, indices: Sequence[int], part: Sequence) -> None:
        import numpy as np

        where = np.asarray(indices, dtype=np.int64)
        self._part[where] = len(self._parts)
        self._pos[where] = np.arange(len(where), dtype=np.int32)
        self._parts.append(part)

    def set(self, i: int, answer: Answer) -> None:
        self._own[i] = answer
        self._part[i] = -1

    @property
    def sold_count(self) -> int:
        """``Sold`` answers (new sales and repeats)."""
        return sum(p.sold_count if isinstance(p, SaleAnswers)
                   else sum(isinstance(a, Sold) for a in p) for p in self._parts)

    def __len__(self) -> int:
        return len(self._part)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self._slice(i)
        if i < 0:
            i += len(self)
        if i in self._own:
            return self._own[i]
        part = int(self._part[i])
        return None if part < 0 else self._parts[part][int(self._pos[i])]
