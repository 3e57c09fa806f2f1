"""The largest quantities a tariff book can price exactly in int64 fen, and why they suffice.

Every charge is ``priced(quantity, price)``: a quantity in 0.01 units times a price in 1e-8
CNY, an int64 product of 1e-10 CNY. The product wraps silently past ``INT64_MAX``, so each
quantity is bounded at the edge (importer, quote, billing kernel) from the book's prices:

- energy (kWh after the multiplier: an account's month, each TOU period, each tier slice)
  is priced by the tier, TOU and funds prices, one ``priced`` call per line: it is bounded
  by ``(INT64_MAX - RAW_PER_FEN) // largest energy price`` (``RAW_PER_FEN`` is the headroom
  of the half-up rounding);
- demand and capacity (kW / kVA after the multiplier) are priced by the basic price alone;
- reactive energy (kvarh) is never priced, only folded into the power factor in float64:
  it takes the energy bound, which keeps its int64 sum exact;
- every quantity is also at most ``FLOAT_EXACT_UNITS`` (2**53 units): the data centre
  stores quantities as float64, which holds every 0.01 step exactly only up to there;
  demand also at most ``INT64_MAX // 10000``, as a demand-basis floor multiplies it by a
  share in 1/10000.

With every product at most ``INT64_MAX - RAW_PER_FEN`` raw, every energy or basic line is at
most ``INT64_MAX // RAW_PER_FEN + 1`` (about 9.2e10) fen. The power-factor adjustment is the
sum of the 8 energy and basic lines times at most ``MAX_ADJUST_BP`` (14,500) basis points:
about 1.1e16 < 2**63. Fixed and minimum amounts are at most ``MAX_AMOUNT_FEN`` (the loader
refuses more), so the total of the ``len(CHARGE_LINES)`` (12) lines is at most about 2.3e12
fen: no intermediate of ``Tariff.charge`` can wrap for a quantity within these bounds
(``tests/unit/tariffs/test_bounds.py`` checks it against Python's unbounded integers).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from datasets.schemas import CHARGE_LINES
from gridfare.money import (
    FLOAT_EXACT_UNITS,
    INT64_MAX,
    MAX_AMOUNT_FEN,
    MAX_DEMAND_UNITS,
    RAW_PER_FEN,
    QuantityBounds,
)
from gridfare.tariffs.basic import Basic
from gridfare.tariffs.funds import Funds
from gridfare.tariffs.tiered import Tiered
from gridfare.tariffs.tou import TimeOfUse

if TYPE_CHECKING:
    from gridfare.tariffs.tariff import Tariff

__all__ = ["MAX_ADJUST_BP", "bounds_of"]

MAX_ADJUST_BP = 14_500  # the power-factor table's largest entry (pf 0.00 at standard 0.90)
_PRODUCT_MAX = INT64_MAX - RAW_PER_FEN  # what ``priced`` accepts


def bounds_of(tariffs: Iterable[Tariff]) -> QuantityBounds:
    """The bounds under which every tariff of ``tariffs`` prices without wrapping."""
    energy_price = demand_price = 0
    for tariff in tariffs:
        for component in tariff.components:
            if isinstance(component, Tiered):
                energy_price = max(energy_price, *component.prices)
            elif isinstance(component, TimeOfUse):
                prices = [getattr(component, period) for period in component.periods]
                energy_price = max(energy_price, *prices)
            elif isinstance(component, Funds):
                energy_price = max(energy_price, component.rate)
            elif isinstance(component, Basic):
                demand_price = max(demand_price, component.price)
    return QuantityBounds(
        energy=_limit(energy_price),
        demand=min(MAX_DEMAND_UNITS, _limit(demand_price)),
        energy_price=energy_price,
        demand_price=demand_price,
    )


def _limit(price: int) -> int:
    return min(FLOAT_EXACT_UNITS, _PRODUCT_MAX // price) if price else FLOAT_EXACT_UNITS


# The module docstring's arithmetic, held where a changed constant would break it.
assert 8 * (INT64_MAX // RAW_PER_FEN + 1) * MAX_ADJUST_BP < INT64_MAX
assert len(CHARGE_LINES) * (2 * (INT64_MAX // RAW_PER_FEN + 1) + MAX_AMOUNT_FEN) < INT64_MAX
