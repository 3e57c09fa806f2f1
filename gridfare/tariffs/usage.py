"""What a tariff prices: the usage of n accounts for one period, as exact int64 columns.

Energy and demand are integers in 1/ENERGY_SCALE units (0.01 kWh, 0.01 kW, 0.01 kVA); a
power factor and its standard are integers in hundredths (0.95 -> 95). A power factor that
was not metered is ``PF_NOT_METERED`` (-1), never 0: a measured factor that rounds to 0.00
is a real reading, and the national table surcharges it (it has no floor). A standard of 0
means the account is not adjusted. The same structure carries one account (a quote) or a
whole section (billing): one implementation serves both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridfare.errors import InvalidInput, QuantityOutOfRange

__all__ = ["PF_NOT_METERED", "Usage"]

PF_NOT_METERED = -1  # power_factor of an account without reactive metering (or no energy)
_COLUMNS = (
    "kwh",
    "critical",
    "peak",
    "flat",
    "valley",
    "max_demand_kw",
    "capacity_kva",
    "power_factor",
    "pf_standard",
    "ytd_kwh",
)


@dataclass(frozen=True)
class Usage:
    """Usage of n accounts in one period; every array is int64 of length n."""

    month: int  # 1..12, the billing period's month (seasonal rules, annual tiers)
    kwh: np.ndarray  # total energy, 0.01 kWh
    critical: np.ndarray  # TOU critical-peak energy, 0.01 kWh (0 where not metered)
    peak: np.ndarray  # TOU peak energy, 0.01 kWh
    flat: np.ndarray  # TOU flat energy, 0.01 kWh
    valley: np.ndarray  # TOU valley energy, 0.01 kWh
    tou_metered: np.ndarray  # bool: the TOU split above is real
    max_demand_kw: np.ndarray  # 0.01 kW (0 where not metered)
    capacity_kva: np.ndarray  # contracted capacity, 0.01 kVA (0 where none)
    power_factor: np.ndarray  # hundredths 0..100, PF_NOT_METERED = not metered
    pf_standard: np.ndarray  # hundredths (90, 85, 80), 0 = no adjustment
    ytd_kwh: np.ndarray  # energy billed earlier in the same calendar year, 0.01 kWh

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12:
            raise InvalidInput(f"usage: month {self.month} is not in 1..12")
        n = len(self.kwh)
        for name in (*_COLUMNS, "tou_metered"):
            column = getattr(self, name)
            if len(column) != n:
                raise InvalidInput(f"usage: column {name} has {len(column)} rows, kwh has {n}")

    def __len__(self) -> int:
        return len(self.kwh)

    @classmethod
    def of(cls, month: int, n: int, **columns: np.ndarray) -> Usage:
        """Build usage for n accounts; columns not given are zeros (tou_metered: False,
        power_factor: PF_NOT_METERED)."""
        unknown = set(columns) - {*_COLUMNS, "tou_metered"}
        if unknown:
            raise InvalidInput(f"usage: unknown columns {sorted(unknown)}")
        try:
            values = {
                name: np.asarray(columns[name] if name in columns else _absent(name, n),
                                 dtype=np.int64)
                for name in _COLUMNS
            }
        except OverflowError as exc:
            raise QuantityOutOfRange(f"usage: a quantity does not fit int64: {exc}") from exc
        tou = np.asarray(columns.get("tou_metered", np.zeros(n, bool)), dtype=bool)
        return cls(month=month, tou_metered=tou, **values)

    def take(self, mask: np.ndarray) -> Usage:
        """The usage of the accounts where ``mask`` is true (or at the given indices)."""
        values = {name: getattr(self, name)[mask] for name in (*_COLUMNS, "tou_metered")}
        return Usage(month=self.month, **values)


def _absent(name: str, n: int) -> np.ndarray:
    """The value of a column not given: nothing metered."""
    return np.full(n, PF_NOT_METERED if name == "power_factor" else 0, np.int64)
