"""Billing periods (``YYYY-MM``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gridfare.errors import InvalidInput

_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")  # fullmatch: no trailing newline


@dataclass(frozen=True, order=True)
class Period:
    """One calendar month of billing."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        match = _PERIOD.fullmatch(str(text))
        if not match:
            raise InvalidInput(f"period {text!r}: expected YYYY-MM, e.g. 2026-10")
        return cls(int(match.group(1)), int(match.group(2)))

    def shift(self, months: int) -> Period:
        index = self.year * 12 + self.month - 1 + months
        return Period(index // 12, index % 12 + 1)

    def previous(self, months: int) -> list[Period]:
        """The ``months`` periods before this one, oldest first."""
        return [self.shift(-k) for k in range(months, 0, -1)]

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"
