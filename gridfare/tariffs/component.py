"""What every tariff component is: a small priced rule over the usage of n accounts.

A component is a frozen dataclass holding its validated parameters, with one
``charge(usage, lines) -> {line: int64 fen}`` method over a whole section. ``lines`` is the
read-only bill so far (earlier stages), which only the adjusting components read. Stages fix
the order inside a bill whatever the order in the tariff file.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import ClassVar, Protocol

import numpy as np

from gridfare.errors import InvalidInput
from gridfare.money import RAW_PER_FEN, round_raw_to_fen
from gridfare.tariffs.usage import Usage

__all__ = ["INPUTS", "Component", "Stage", "priced"]

# Metered inputs a tariff can require beyond total energy; the billing kernel sends accounts
# lacking one to audit exceptions instead of pricing them.
INPUTS = frozenset({"tou", "max_demand", "capacity", "power_factor"})

_INT64_MAX = int(np.iinfo(np.int64).max) - RAW_PER_FEN  # headroom for half-up rounding


class Stage(IntEnum):
    """Order of components inside ``Tariff.charge``."""

    ENERGY = 0
    BASIC = 1
    ADJUSTMENT = 2  # power factor: over energy and basic lines only
    FUNDS = 3
    FIXED = 4
    MINIMUM = 5  # tops up everything before it


class Component(Protocol):
    kind: ClassVar[str]
    stage: ClassVar[Stage]
    lines: ClassVar[tuple[str, ...]]  # the CHARGE_LINES this component may write

    @property
    def requires(self) -> frozenset[str]: ...

    def charge(self, usage: Usage, lines: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def priced(quantity: np.ndarray, price: int) -> np.ndarray:
    """A quantity in 0.01 units times a price in 1e-8 CNY per unit, half-up to the fen."""
    quantity = np.asarray(quantity, dtype=np.int64)
    if quantity.size:
        largest = max(abs(int(quantity.max())), abs(int(quantity.min())))
        # int64 wraps silently; refuse rather than bill a wrapped amount.
        if largest * price > _INT64_MAX:
            raise InvalidInput(
                f"usage: quantity {largest / 100} at price {price / 10**8} CNY is too large "
                "for exact int64 arithmetic"
            )
    return round_raw_to_fen(quantity * price)
