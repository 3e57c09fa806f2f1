"""One account's bill under one tariff: the same ``Tariff.charge`` on a one-row ``Usage``.

Inputs come as text, int or Decimal (the CLI passes strings) and never go through float.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from datasets.schemas import CHARGE_LINES
from gridfare.errors import InvalidInput, QuantityOutOfRange, TouSplitMismatch
from gridfare.money import ENERGY_SCALE, FLOAT_EXACT_UNITS, fen_to_cny, scaled_int, to_decimal
from gridfare.money import QuantityBounds as Bounds
from gridfare.tariffs.power_factor import STANDARDS
from gridfare.tariffs.tariff import Tariff
from gridfare.tariffs.usage import PF_NOT_METERED, Usage

__all__ = ["Quote", "quote"]

Number = str | int | Decimal


@dataclass(frozen=True)
class Quote:
    tariff_code: str
    lines: tuple[tuple[str, Decimal], ...]  # non-zero lines, bill order, e.g. ("tier1", 117.19)
    total: Decimal

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: amounts as strings with two places, e.g. ``"282.15"``."""
        return {
            "tariff_code": self.tariff_code,
            "lines": {name: f"{amount:.2f}" for name, amount in self.lines},
            "total": f"{self.total:.2f}",
        }


def quote(
    tariff: Tariff,
    *,
    kwh: Number,
    peak_kwh: Number | None = None,
    flat_kwh: Number | None = None,
    valley_kwh: Number | None = None,
    critical_kwh: Number | None = None,
    max_demand_kw: Number | None = None,
    capacity_kva: Number | None = None,
    power_factor: Number | None = None,
    pf_standard: Number | None = None,
    month: int | str = 1,
    ytd_kwh: Number = 0,
) -> Quote:
    """Price one account's month under ``tariff``; see ``Tariff.charge`` for the rules.

    Every quantity is checked against ``tariff.bounds`` as a decimal, before it becomes an
    int64: beyond them the bill would not fit exact int64 fen (QuantityOutOfRange).
    """
    bounds = tariff.bounds
    energy = _quantity(kwh, "kwh", bounds)
    split = _tou_split(tariff, energy, bounds, critical_kwh, peak_kwh, flat_kwh, valley_kwh)
    columns: dict[str, int | bool] = {
        "kwh": energy,
        "ytd_kwh": _quantity(ytd_kwh, "ytd_kwh", bounds),
        "max_demand_kw": _required(tariff, "max_demand", max_demand_kw, "max_demand_kw", bounds),
        "capacity_kva": _required(tariff, "capacity", capacity_kva, "capacity_kva", bounds),
        "power_factor": _power_factor(power_factor),
        "pf_standard": _pf_standard(tariff, pf_standard),
        "tou_metered": split is not None,
        **(split or {}),
    }
    usage = Usage.of(_month(month), 1, **{k: np.array([v], np.int64 if k != "tou_metered"
                                                        else bool) for k, v in columns.items()})
    charged = tariff.charge(usage)
    fen = {line: int(charged[line][0]) for line in CHARGE_LINES}
    return Quote(
        tariff_code=tariff.code,
        lines=tuple((line.removesuffix("_fen"), fen_to_cny(v)) for line, v in fen.items() if v),
        total=fen_to_cny(sum(fen.values())),
    )


def _quantity(value: Number, field: str, bounds: Bounds) -> int:
    """A non-negative kWh / kW / kVA figure as 0.01 units; finer or larger figures are
    refused."""
    number = to_decimal(value, field)
    if number < 0:
        raise InvalidInput(f"{field}: {number} must not be negative")
    limit = FLOAT_EXACT_UNITS if field == "ytd_kwh" else bounds.limit(field)
    if number > Decimal(limit) / ENERGY_SCALE:
        raise QuantityOutOfRange(bounds.describe(field, number) if field != "ytd_kwh" else
                                 f"ytd_kwh {number} is above {Decimal(limit) / ENERGY_SCALE}, "
                                 "the most a float64 quantity holds to 0.01")
    return scaled_int(number, ENERGY_SCALE, field)


def _tou_split(tariff: Tariff, energy: int, bounds: Bounds,
               *given_values: Number | None) -> dict[str, int] | None:
    given = {
        period: _quantity(value, f"{period}_kwh", bounds)
        for period, value in zip(("critical", "peak", "flat", "valley"), given_values, strict=True)
        if value is not None
    }
    periods = tariff.tou_periods or ("peak", "flat", "valley")
    if not given:
        if tariff.tou_periods:
            raise InvalidInput(
                f"tariff {tariff.code} is time-of-use: give "
                + ", ".join(f"{p}_kwh" for p in periods)
                + " adding up to kwh"
            )
        return None
    missing = [f"{p}_kwh" for p in periods if p != "critical" and p not in given]
    if missing:
        raise InvalidInput(f"TOU split: {', '.join(missing)} must be given with the other periods")
    if tariff.tou_periods and "flat" not in periods and given.get("flat", 0):
        raise InvalidInput(f"flat_kwh: tariff {tariff.code} has no flat period; it must be 0")
    if sum(given.values()) != energy:
        parts = " + ".join(f"{p} {_kwh(v)}" for p, v in given.items())
        raise TouSplitMismatch(
            f"TOU split: {parts} = {_kwh(sum(given.values()))} kWh, but kwh is {_kwh(energy)}"
        )
    return given


def _kwh(units: int) -> str:
    return f"{Decimal(units) / ENERGY_SCALE:.2f}"


def _required(tariff: Tariff, need: str, value: Number | None, field: str,
              bounds: Bounds) -> int:
    if value is None:
        if need in tariff.requires:
            raise InvalidInput(
                f"{field}: tariff {tariff.code} bills by {need.replace('_', ' ')}; give {field}"
            )
        return 0
    return _quantity(value, field, bounds)


def _power_factor(value: Number | None) -> int:
    if value is None:
        return PF_NOT_METERED  # no adjustment
    number = to_decimal(value, "power_factor")
    if not 0 <= number <= 1:
        raise InvalidInput(f"power_factor: {number} must be in [0, 1]")
    # The measure rounds the month's power factor to two places, half up; 0.00 is a real
    # reading, surcharged by the table like any other (it has no floor).
    return int(number.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) * 100)


def _pf_standard(tariff: Tariff, value: Number | None) -> int:
    if value is None:
        # The same rule as the billing kernel for an account without a standard.
        return tariff.pf_standard_default
    number = to_decimal(value, "pf_standard")
    if number * 100 not in (0, *STANDARDS):
        raise InvalidInput(f"pf_standard: {number} must be 0.90, 0.85, 0.80 (or 0: none)")
    return int(number * 100)


def _month(value: int | str) -> int:
    try:
        month = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"month: {value!r} is not a month number") from None
    if not 1 <= month <= 12:
        raise InvalidInput(f"month: {month} is not in 1..12")
    return month
