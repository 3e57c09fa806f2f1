"""Government funds and surcharges (政府性基金及附加), each a rate per kWh of total energy.

The rates are summed and applied once, so the line is rounded once, as bills print one
funds line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from gridfare.tariffs.component import Stage, priced
from gridfare.tariffs.params import Table
from gridfare.tariffs.usage import Usage

__all__ = ["Funds", "parse"]


@dataclass(frozen=True)
class Funds:
    rates: tuple[tuple[str, int], ...]  # (name, 1e-8 CNY/kWh)

    kind: ClassVar[str] = "funds"
    stage: ClassVar[Stage] = Stage.FUNDS
    lines: ClassVar[tuple[str, ...]] = ("funds_fen",)
    requires: ClassVar[frozenset[str]] = frozenset()

    @property
    def rate(self) -> int:
        return sum(rate for _, rate in self.rates)

    def charge(self, usage: Usage, lines: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"funds_fen": priced(usage.kwh, self.rate)}


def parse(table: Table) -> Funds:
    rates_table = table.table("rates")
    names = rates_table.keys()
    if not names:
        raise table.error("rates", "expected at least one named rate")
    rates = tuple((name, rates_table.price(name)) for name in names)
    rates_table.finish()
    table.finish()
    return Funds(rates=rates)
