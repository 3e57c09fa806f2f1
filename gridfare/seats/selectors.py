"""Which train-dates a migration moves: train patterns, kinds and a departure-date range.

A selector is written as whitespace-separated terms, e.g. ``"G% D%5 kind=through
dates=2026-10-01..2026-10-07"``:

- a **train pattern** in SQL ``LIKE`` style: ``%`` matches any run of characters (also
  none) and ``_`` exactly one, anywhere in the pattern: ``G1234`` (one train), ``G%``
  (prefix), ``%5`` (suffix), ``G%0`` (both). Matching ignores case. Only letters, digits,
  ``%`` and ``_`` are allowed;
- ``kind=K[,K...]`` with K one of ``through``/``local`` (scope) or
  ``express``/``emu``/``ordinary`` (service);
- ``dates=FROM..TO`` (inclusive) or ``dates=DAY``.

Terms of the same sort are OR-ed (``G% D%``: G or D trains; ``kind=express,emu``); different
sorts are AND-ed (``G% kind=through``: G trains that are through trains), and the two kind
families are AND-ed with each other (``kind=through,emu``: through EMU trains). A selector
must name at least one filter, so that a migration never moves everything by accident;
``%`` on its own is the explicit "every train".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from gridfare.errors import InvalidInput
from gridfare.seats.train import SCOPES, SERVICES, TrainDate

__all__ = ["TrainSelector", "like_to_regex"]

_PATTERN = re.compile(r"^[A-Z0-9%_]+$")


def like_to_regex(pattern: str) -> re.Pattern[str]:
    """A LIKE pattern (``%``, ``_``) as a compiled full-match regex (upper case)."""
    text = pattern.upper()
    if not _PATTERN.match(text):
        raise InvalidInput(
            f"selector: train pattern {pattern!r} may hold only letters, digits, % and _"
        )
    body = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in text)
    return re.compile(f"^{body}$")


@dataclass(frozen=True)
class TrainSelector:
    trains: tuple[str, ...] = ()  # LIKE patterns, upper case, OR-ed
    scopes: tuple[str, ...] = ()  # through / local, OR-ed
    services: tuple[str, ...] = ()  # express / emu / ordinary, OR-ed
    date_from: date | None = None
    date_to: date | None = None

    def __post_init__(self) -> None:
        trains = tuple(sorted({t.upper() for t in self.trains}))
        for t in trains:
            like_to_regex(t)
        for value, allowed, what in (
            (self.scopes, SCOPES, "scope"),
            (self.services, SERVICES, "service"),
        ):
            for v in value:
                if v not in allowed:
                    raise InvalidInput(f"selector: {what} {v!r} not one of {', '.join(allowed)}")
        if (self.date_from is None) != (self.date_to is None):
            raise InvalidInput("selector: a date range needs both ends (dates=FROM..TO)")
        if self.date_from is not None and self.date_from > self.date_to:
            raise InvalidInput(
                f"selector: date range {self.date_from}..{self.date_to} ends before it starts"
            )
        if not (trains or self.scopes or self.services or self.date_from):
            raise InvalidInput("selector: name at least one filter (use % for every train)")
        object.__setattr__(self, "trains", trains)
        object.__setattr__(self, "scopes", tuple(sorted(set(self.scopes))))
        object.__setattr__(self, "services", tuple(sorted(set(self.services))))
        object.__setattr__(self, "_regexes", tuple(like_to_regex(t) for t in trains))

    @classmethod
    def parse(cls, text: str) -> TrainSelector:
        trains: list[str] = []
        scopes: list[str] = []
        services: list[str] = []
        span: tuple[date, date] | tuple[None, None] = (None, None)
        for term in str(text).split():
            name, eq, value = term.partition("=")
            if not eq:
                trains.append(term)
            elif name == "kind":
                for kind in value.lower().split(","):
                    if kind in SCOPES:
                        scopes.append(kind)
                    elif kind in SERVICES:
                        services.append(kind)
                    else:
                        raise InvalidInput(
                            f"selector: kind {kind!r} not one of {', '.join(SCOPES + SERVICES)}"
                        )
            elif name == "dates":
                if span != (None, None):
                    raise InvalidInput(f"selector: dates given twice in {text!r}")
                span = _parse_dates(value)
            else:
                raise InvalidInput(f"selector: unknown term {term!r} (expected kind= or dates=)")
        return cls(tuple(trains), tuple(scopes), tuple(services), span[0], span[1])

    def __str__(self) -> str:
        terms = list(self.trains)
        kinds = self.scopes + self.services
        if kinds:
            terms.append("kind=" + ",".join(kinds))
        if self.date_from is not None:
            terms.append(f"dates={self.date_from.isoformat()}..{self.date_to.isoformat()}")
        return " ".join(terms)

    def matches(self, train: TrainDate) -> bool:
        if self.trains and not any(r.match(train.train_no.upper()) for r in self._regexes):
            return False
        if self.scopes and train.scope not in self.scopes:
            return False
        if self.services and train.service not in self.services:
            return False
        return self.date_from is None or self.date_from <= train.date <= self.date_to

    def select(self, trains: Iterable[TrainDate]) -> list[TrainDate]:
        """The matching train-dates, in key order."""
        return sorted((t for t in trains if self.matches(t)), key=lambda t: (t.date, t.train_no))


def _parse_dates(value: str) -> tuple[date, date]:
    first, dots, last = value.partition("..")
    try:
        start = date.fromisoformat(first)
        end = date.fromisoformat(last) if dots else start
    except ValueError as exc:
        raise InvalidInput(
            f"selector: dates={value!r}: expected YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD"
        ) from exc
    return start, end
