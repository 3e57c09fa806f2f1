"""Time-of-use energy (分时电价): critical peak (尖峰), peak (峰), flat (平), valley (谷).

Peak and valley are always priced; flat and critical are optional (a residential TOU tariff
may have only peak and valley). Critical-peak prices apply in ``critical_months`` (all year
if not given); in other months, or in a tariff without a critical price, energy metered in
the critical register is priced at the peak price and billed on the peak line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from gridfare.errors import InvalidInput
from gridfare.tariffs.component import Stage, priced
from gridfare.tariffs.params import Table
from gridfare.tariffs.usage import Usage

__all__ = ["PERIODS", "TimeOfUse", "parse"]

PERIODS = ("critical", "peak", "flat", "valley")
ALL_YEAR = frozenset(range(1, 13))


@dataclass(frozen=True)
class TimeOfUse:
    peak: int  # 1e-8 CNY/kWh
    valley: int
    flat: int | None = None  # None: the tariff has no flat period
    critical: int | None = None  # None: critical energy is priced at peak
    critical_months: frozenset[int] = ALL_YEAR

    kind: ClassVar[str] = "tou"
    stage: ClassVar[Stage] = Stage.ENERGY
    lines: ClassVar[tuple[str, ...]] = ("critical_fen", "peak_fen", "flat_fen", "valley_fen")
    requires: ClassVar[frozenset[str]] = frozenset({"tou"})

    @property
    def periods(self) -> tuple[str, ...]:
        """The periods this tariff prices, in bill order."""
        return tuple(p for p in PERIODS if getattr(self, p) is not None)

    def charge(self, usage: Usage, lines: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check(usage)
        critical = self.critical if usage.month in self.critical_months else None
        at_peak = usage.peak if critical is not None else usage.peak + usage.critical
        charged = {
            "peak_fen": priced(at_peak, self.peak),
            "valley_fen": priced(usage.valley, self.valley),
        }
        if critical is not None:
            charged["critical_fen"] = priced(usage.critical, critical)
        if self.flat is not None:
            charged["flat_fen"] = priced(usage.flat, self.flat)
        return charged

    def _check(self, usage: Usage) -> None:
        # The kernel audits these out via Tariff.requires; pricing them anyway would bill 0.
        unsplit = np.flatnonzero(~usage.tou_metered)
        if unsplit.size:
            raise InvalidInput(f"tou: {unsplit.size} accounts have no TOU split (row {unsplit[0]})")
        if self.flat is None and usage.flat.any():
            row = int(np.flatnonzero(usage.flat)[0])
            raise InvalidInput(f"tou: the tariff has no flat period but row {row} has flat energy")


def parse(table: Table) -> TimeOfUse:
    prices = {p: table.price(p) for p in PERIODS if p in ("peak", "valley") or table.has(p)}
    months = ALL_YEAR
    if table.has("critical_months"):
        if "critical" not in prices:
            raise table.error("critical_months", "given without a critical price")
        months = table.months("critical_months")
    table.finish()
    return TimeOfUse(critical_months=months, **prices)
