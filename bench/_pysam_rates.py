"""The independent reference: NREL's PySAM ``Utilityrate5`` on a URDB record and a profile.

The record goes to PySAM from its JSON as SAM's own URDB import lays it out (periods and
tiers 1-based, ``max`` absent -> 1e38, unit codes 0 kWh / 1 kWh/kW / 2 kWh daily, price
rate + adj), never from gridfare's translation, so a mistake in the translator shows.

PySAM's calendar: the 8,760 hours of a 365-day year that starts on a Monday, with no leap
day. A year like 2018 or 2029 (non-leap, 1 January a Monday) is the same calendar, so
gridfare's bills for it must match; for other years see docs/urdb.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

__all__ = ["REFERENCE_LINES", "UNSUPPORTED", "PysamRate", "agrees", "cents", "pysam_bill",
           "pysam_supports"]

# gridfare line -> PySAM output (year x month, row 1 is the first year)
REFERENCE_LINES = {
    "energy": "charge_w_sys_ec_ym",
    "demand_tou": "charge_w_sys_dc_tou_ym",
    "demand_flat": "charge_w_sys_dc_fixed_ym",
    "fixed": "charge_w_sys_fixed_ym",
    "minimum_adjustment": "charge_w_sys_minimum_ym",
}
_UNIT = {"kWh": 0, "kWh/kW": 1, "kWh daily": 2}
_OPEN = 1e38
UNSUPPORTED = "PySAM Utilityrate5 takes fixed charges per month and minimums per month or year"


def pysam_supports(record: Mapping[str, object]) -> bool:
    """Whether PySAM can state ``record`` ($/day fixed or minimum charges it cannot)."""
    return (record.get("fixedchargeunits") in (None, "$/month")
            or not record.get("fixedchargefirstmeter")) and (
        record.get("minchargeunits") in (None, "$/month", "$/year")
        or not record.get("mincharge"))


def cents(value: float) -> int:
    """A PySAM figure rounded half up to the cent (from its shortest decimal repr)."""
    return int(Decimal(repr(float(value))).quantize(Decimal("0.01"), ROUND_HALF_UP) * 100)


def agrees(ours: int, value: float, slack: int = 0) -> bool:
    """Whether gridfare's cents are PySAM's figure rounded half up, within ``slack`` cents.

    PySAM computes in floats, so an exact half cent can reach it a hair below: 1.46 kW at
    7.25 /kW is 10.585, and 10.584999999999999 there. A figure within 1e-6 cent of a half
    cent is the tie it stands for, and the cent above it agrees too.
    """
    if abs(int(ours) - cents(value)) <= slack:
        return True
    hundredths = float(value) * 100
    near_tie = abs(hundredths - math.floor(hundredths) - 0.5) < 1e-6
    return near_tie and abs(int(ours) - cents(value)) <= slack + 1


def _f(value: object) -> float:
    return float(Decimal(str(value))) if value is not None else 0.0


def _price(tier: Mapping[str, object]) -> float:
    return float(Decimal(str(tier["rate"])) + Decimal(str(tier.get("adj") or 0)))


def _max(tier: Mapping[str, object], top: bool) -> float:
    return _OPEN if top or tier.get("max") is None else _f(tier["max"])


def _energy_matrix(record: Mapping[str, object]) -> list[list[float]]:
    rows = []
    for p, tiers in enumerate(record["energyratestructure"]):
        for t, tier in enumerate(tiers):
            rows.append([p + 1, t + 1, _max(tier, t == len(tiers) - 1),
                         _UNIT[tier.get("unit") or "kWh"], _price(tier), 0.0])
    return rows


def _demand_matrix(structure) -> list[list[float]]:
    return [[p + 1, t + 1, _max(tier, t == len(tiers) - 1), _price(tier)]
            for p, tiers in enumerate(structure) for t, tier in enumerate(tiers)]


def _schedule(rows) -> list[list[float]]:
    return [[period + 1 for period in row] for row in rows]


class PysamRate:
    """One record set up in a ``Utilityrate5`` model once; ``bill`` sets only the load."""

    def __init__(self, record: Mapping[str, object]) -> None:
        import PySAM.Utilityrate5 as utilityrate5

        model = utilityrate5.new()
        model.Lifetime.analysis_period = 1
        model.Lifetime.system_use_lifetime_output = 0
        model.Lifetime.inflation_rate = 0
        model.SystemOutput.gen = [0.0] * 8760
        model.SystemOutput.degradation = [0]
        model.Load.load_escalation = [0]
        rates = model.ElectricityRates
        rates.en_electricity_rates = 1
        rates.rate_escalation = [0]
        rates.ur_metering_option = 0
        rates.ur_nm_yearend_sell_rate = 0
        rates.ur_sell_eq_buy = 0
        rates.ur_en_ts_sell_rate = 0
        rates.ur_monthly_fixed_charge = _f(record.get("fixedchargefirstmeter"))
        annual = record.get("minchargeunits") == "$/year"
        rates.ur_monthly_min_charge = 0.0 if annual else _f(record.get("mincharge"))
        rates.ur_annual_min_charge = _f(record.get("mincharge")) if annual else 0.0
        rates.ur_ec_tou_mat = _energy_matrix(record)
        rates.ur_ec_sched_weekday = _schedule(record["energyweekdayschedule"])
        rates.ur_ec_sched_weekend = _schedule(record["energyweekendschedule"])
        tou = record.get("demandratestructure")
        flat = record.get("flatdemandstructure")
        rates.ur_dc_enable = 1 if tou or flat else 0
        if tou or flat:
            ones = [[1] * 24 for _ in range(12)]
            rates.ur_dc_tou_mat = _demand_matrix(tou) if tou else [[1, 1, _OPEN, 0.0]]
            rates.ur_dc_sched_weekday = (_schedule(record["demandweekdayschedule"]) if tou
                                         else ones)
            rates.ur_dc_sched_weekend = (_schedule(record["demandweekendschedule"]) if tou
                                         else ones)
            if flat:
                months = record["flatdemandmonths"]
                rates.ur_dc_flat_mat = [
                    [m, t + 1, _max(tier, t == len(flat[months[m]]) - 1), _price(tier)]
                    for m in range(12) for t, tier in enumerate(flat[months[m]])]
            else:
                rates.ur_dc_flat_mat = [[m, 1, _OPEN, 0.0] for m in range(12)]
        self._model = model

    def bill(self, load_kwh: Sequence[float]) -> dict[str, np.ndarray]:
        """``REFERENCE_LINES`` as (12,) float arrays of the currency, PySAM's figures."""
        if len(load_kwh) != 8760:
            raise ValueError("PySAM bills 8,760 hours")
        self._model.Load.load = load_kwh
        self._model.execute(0)
        outputs = self._model.Outputs
        return {line: np.array(getattr(outputs, name))[1]
                for line, name in REFERENCE_LINES.items()}


def pysam_bill(record: Mapping[str, object], load_kwh: np.ndarray) -> dict[str, np.ndarray]:
    """One bill from a fresh model: ``PysamRate(record).bill(load)``."""
    return PysamRate(record).bill([float(v) for v in load_kwh])
