"""A tariff: its components, in bill order, priced over the usage of n accounts at once."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from types import MappingProxyType

import numpy as np

from datasets.schemas import CHARGE_LINES
from gridfare.errors import InvalidInput, QuantityOutOfRange, TariffError
from gridfare.money import FLOAT_EXACT_UNITS, QuantityBounds
from gridfare.tariffs.bounds import bounds_of
from gridfare.tariffs.component import Component
from gridfare.tariffs.power_factor import PowerFactor
from gridfare.tariffs.tou import TimeOfUse
from gridfare.tariffs.usage import Usage

__all__ = ["Tariff"]

_NON_NEGATIVE = (
    "kwh",
    "critical",
    "peak",
    "flat",
    "valley",
    "max_demand_kw",
    "capacity_kva",
    "ytd_kwh",
)


@dataclass(frozen=True)
class Tariff:
    """A validated tariff. Build it with ``load_tariff``; price it with ``charge``."""

    code: str
    name: str
    customer_kind: str  # one of datasets.schemas.CUSTOMER_KINDS
    components: tuple[Component, ...]
    description: str = ""

    def __post_init__(self) -> None:
        kinds = [component.kind for component in self.components]
        if len(set(kinds)) != len(kinds):
            raise TariffError(f"{self.code}: a tariff has at most one component of each kind")
        # Bill order is fixed by stage, whatever the order in the file.
        ordered = tuple(sorted(self.components, key=lambda component: component.stage))
        object.__setattr__(self, "components", ordered)

    @property
    def requires(self) -> frozenset[str]:
        """Metered inputs beyond total energy, from ``component.INPUTS``."""
        return frozenset().union(*(component.requires for component in self.components))

    @cached_property
    def bounds(self) -> QuantityBounds:
        """The largest quantities this tariff prices exactly in int64 fen."""
        return bounds_of([self])

    @property
    def tou_periods(self) -> tuple[str, ...]:
        """The TOU periods the tariff prices (e.g. peak, valley), or () if it has no TOU."""
        tou = self._component(TimeOfUse)
        return tou.periods if tou else ()

    @property
    def pf_standard_default(self) -> int:
        """Power-factor standard in hundredths for accounts without one; 0 if none."""
        pf = self._component(PowerFactor)
        return pf.standard_default if pf else 0

    def charge(self, usage: Usage) -> dict[str, np.ndarray]:
        """Every CHARGE_LINES line for each account, int64 fen, each rounded half-up.

        ``usage`` should hold only accounts that have the inputs in ``requires``; negative
        quantities, unsplit TOU energy and unknown power-factor standards raise InvalidInput,
        and quantities beyond ``bounds`` QuantityOutOfRange, rather than bill a wrong amount.
        """
        _check(usage, self.bounds)
        lines = {line: np.zeros(len(usage), dtype=np.int64) for line in CHARGE_LINES}
        for component in self.components:
            lines.update(component.charge(usage, MappingProxyType(lines)))
        return lines

    def _component(self, cls: type) -> Component | None:
        return next((c for c in self.components if isinstance(c, cls)), None)


def _check(usage: Usage, bounds: QuantityBounds) -> None:
    for name in _NON_NEGATIVE:
        column = getattr(usage, name)
        bad = np.flatnonzero(column < 0)
        if bad.size:
            row = int(bad[0])
            raise InvalidInput(
                f"usage: {name} is negative in {bad.size} rows (row {row}: {column[row]})"
            )
        limit = FLOAT_EXACT_UNITS if name == "ytd_kwh" else bounds.limit(name)
        bad = np.flatnonzero(column > limit)
        if bad.size:
            row = int(bad[0])
            raise QuantityOutOfRange(
                f"usage row {row}: {bounds.describe(name, Decimal(int(column[row])) / 100)}"
            )
