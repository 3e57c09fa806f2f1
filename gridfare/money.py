"""Exact money: integer fen (0.01 CNY) and half-up rounding.

Vectorized charges are computed in integer *raw* units: energy in 0.01 kWh
(``ENERGY_SCALE``) times a price in 1e-8 CNY (``PRICE_SCALE``) gives 1e-10 CNY, which is
``RAW_PER_FEN`` raw units per fen. Everything stays in int64, so no float ever touches
an amount; rounding to the fen is half-up (half away from zero, as ``ROUND_HALF_UP``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

import numpy as np

from gridfare.errors import InvalidInput, QuantityOutOfRange

ENERGY_SCALE = 100  # integer energy units per kWh (0.01 kWh resolution)
PRICE_SCALE = 10**8  # integer price units per CNY
FEN_PER_CNY = 100
RAW_PER_FEN = ENERGY_SCALE * PRICE_SCALE // FEN_PER_CNY  # 1e-10 CNY units per fen
INT64_MAX = 2**63 - 1
# Bounds every quantity and price is checked against (why: ``gridfare.tariffs.bounds``).
FLOAT_EXACT_UNITS = 2**53  # float64 holds every integer up to here, so every 0.01 step
MAX_PRICE = 10_000 * PRICE_SCALE  # 10,000 CNY per kWh, kW or kVA: beyond is a typo
# A demand-basis floor is capacity x a share in 1/10000: that product must fit too.
MAX_DEMAND_UNITS = INT64_MAX // 10_000 - 1
MAX_AMOUNT_FEN = 10**10  # a fixed or minimum charge of 100 M CNY a month: beyond is a typo

DEMAND_QUANTITIES = frozenset({"max_demand_kw", "capacity_kva"})  # the rest are energy

_FEN = Decimal("0.01")
_EXPONENTS = 40  # decimal exponents a number may have (1e-40 .. 1e40)


def to_decimal(value: object, what: str) -> Decimal:
    """Parse ``value`` (str, int or Decimal; never float) as a Decimal, naming ``what``."""
    if isinstance(value, float):
        # A float has already lost the exact figure; the caller must pass the text.
        value = repr(value)
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise InvalidInput(f"{what}: {value!r} is not a number") from exc
    if not result.is_finite():
        raise InvalidInput(f"{what}: {value!r} is not a finite number")
    if result and not -_EXPONENTS <= result.adjusted() <= _EXPONENTS:
        # Far beyond every bound, and arithmetic on 1e999999999 overflows the context.
        raise QuantityOutOfRange(f"{what}: {value!r} is out of range")
    return result


def scaled_int(value: Decimal, scale: int, what: str) -> int:
    """``value * scale`` as an exact int; refuse a value finer than ``1/scale``.

    Callers bound ``value`` first: the int of ``1e999999`` would take the process's memory.
    """
    with localcontext() as context:
        # Exact, whatever the digits: the default 28 would round 0.0100...01 to 1 unit.
        context.prec = len(value.as_tuple().digits) + len(str(scale)) + 2
        scaled = value * scale
    if scaled != scaled.to_integral_value():
        raise InvalidInput(f"{what}: {value} has more precision than 1/{scale}")
    return int(scaled)


def price_units(value: object, what: str) -> int:
    """A price in CNY (per kWh, kW, kVA or month) as integer 1e-8 CNY units."""
    return scaled_int(to_decimal(value, what), PRICE_SCALE, what)


def round_raw_to_fen(raw: np.ndarray | int, raw_per_fen: int = RAW_PER_FEN) -> np.ndarray:
    """Round integer raw amounts to fen, half away from zero, exactly (int64 in, int64 out)."""
    raw = np.asarray(raw, dtype=np.int64)
    half = raw_per_fen // 2
    magnitude = (np.abs(raw) + half) // raw_per_fen
    return np.where(raw < 0, -magnitude, magnitude).astype(np.int64)


def apply_rate_to_fen(base_fen: np.ndarray, rate_bp: np.ndarray | int) -> np.ndarray:
    """``base_fen * rate_bp / 10000`` (a rate in 1/100 of a percent) rounded half-up to fen."""
    raw = np.asarray(base_fen, dtype=np.int64) * np.asarray(rate_bp, dtype=np.int64)
    return round_raw_to_fen(raw, 10_000)


def fen_to_cny(fen: int) -> Decimal:
    """Integer fen as a Decimal CNY amount with two places."""
    return (Decimal(int(fen)) / FEN_PER_CNY).quantize(_FEN)


def cny_to_fen(amount: Decimal | str | int) -> int:
    """A CNY amount rounded half-up to the fen, as integer fen."""
    value = to_decimal(amount, "amount").quantize(_FEN, rounding=ROUND_HALF_UP)
    return int(value * FEN_PER_CNY)


def format_cny(fen: int) -> str:
    """``28215`` -> ``'282.15'``."""
    return f"{fen_to_cny(fen):.2f}"


@dataclass(frozen=True)
class QuantityBounds:
    """Largest quantities, in 0.01 units after the multiplier, that price exactly."""

    energy: int  # kWh: an account's month, a TOU period, reactive kvarh
    demand: int  # kW of maximum demand, kVA of contracted capacity
    energy_price: int  # the largest energy price behind ``energy``, 1e-8 CNY per kWh
    demand_price: int  # the basic price behind ``demand``, 1e-8 CNY per kW or kVA

    def describe(self, what: str, value: Decimal | int | float, *,
                 demand: bool | None = None) -> str:
        """Why ``value`` of ``what`` is refused, for a person (one line); ``demand`` says
        which bound (default: from ``what``'s name)."""
        demand = what in DEMAND_QUANTITIES if demand is None else demand
        limit = self.demand if demand else self.energy
        price = self.demand_price if demand else self.energy_price
        unit = "kW or kVA" if demand else "kWh"
        most = f"{Decimal(limit) / ENERGY_SCALE:,.2f} {unit}"
        if price and limit < FLOAT_EXACT_UNITS:
            return (f"{what} {value} is above {most}, the most that exact int64 fen can "
                    f"price at {Decimal(price) / PRICE_SCALE} CNY per {unit.split()[0]}")
        return f"{what} {value} is above {most}, the most a float64 quantity holds to 0.01"

    @classmethod
    def unpriced(cls) -> QuantityBounds:
        """Bounds that know no prices: only what float64 holds exactly to 0.01."""
        return cls(FLOAT_EXACT_UNITS, MAX_DEMAND_UNITS, 0, 0)

    def limit(self, what: str) -> int:
        """The bound of quantity ``what`` (a ``Usage`` column or a reading's name)."""
        return self.demand if what in DEMAND_QUANTITIES else self.energy
