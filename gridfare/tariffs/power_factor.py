"""Power-factor adjustment (功率因数调整电费), after the 1983 national measure.

《功率因数调整电费办法》((83)水电财字第215号) adjusts the basic charge plus the energy charge
by a percentage looked up from the month's average power factor, rounded to 0.01, against
the account's standard: 0.90, 0.85 or 0.80. Funds, fixed and minimum charges are not
adjusted. The tables, in percent (the code holds basis points, 1/100 %); negative = rebate
(减收), positive = surcharge (增收):

========  ==============================================  ===========================
standard  reductions above the standard                   increases below it
========  ==============================================  ===========================
0.90      0.15 per 0.01 to 0.94 (-0.60); 0.95..1.00 -0.75  0.5 per 0.01 to 0.70 (+10),
                                                           1 per 0.01 to 0.65 (+15),
                                                           2 per 0.01 below
0.85      0.1 per 0.01 to 0.90 (-0.50); 0.91 -0.65,        same steps, 5 points lower:
          0.92 -0.80, 0.93 -0.95; 0.94..1.00 -1.10         +10 at 0.65, +15 at 0.60
0.80      0.1 per 0.01 to 0.90 (-1.00); 0.91 -1.15,        same steps, 10 points lower:
          0.92..1.00 -1.30                                 +10 at 0.60, +15 at 0.55
========  ==============================================  ===========================

Sources: the document itself was not reachable from here. The structure of all three tables
(breakpoints, per-0.01 steps, 0.80: -1.15 at 0.91 and -1.30 from 0.92) agrees with an
independent implementation citing the document (GitHub, Go, ``AdjustPowerFactorFee``,
"根据(83)水电财字第215号文《功率因数调整电费办法》计算"). That implementation gives -1.0 %
for 0.85 at 0.94..1.00, which contradicts its own 0.15 % step from 0.91 (-0.65). -1.10 is
used here: it continues that step and is the table as remembered; it was NOT checked
against the document's text, nor were any of the 0.85 / 0.80 reduction entries.

The increases have no floor: a measured factor of 0.00 (a month of almost only reactive
energy) is +145 % at 0.90, +135 % at 0.85, +125 % at 0.80. "Not metered" is
``PF_NOT_METERED``, never 0, so it cannot be confused with such a reading.

An account without a standard of its own takes the tariff's ``standard_default`` (the
kernel and the quote apply the same rule; none: not adjusted). A standard of 0 exempts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from gridfare.errors import InvalidInput
from gridfare.money import apply_rate_to_fen
from gridfare.tariffs.component import Stage
from gridfare.tariffs.params import Table
from gridfare.tariffs.usage import PF_NOT_METERED, Usage

__all__ = ["ADJUSTED_LINES", "STANDARDS", "PowerFactor", "adjustment_bp", "parse"]

ADJUSTED_LINES = (
    *("tier1_fen", "tier2_fen", "tier3_fen"),
    *("critical_fen", "peak_fen", "flat_fen", "valley_fen"),
    "basic_fen",
)
STANDARDS = (90, 85, 80)  # hundredths


def _increase(pf: int, standard: int) -> int:
    """Basis points for pf below the standard: +0.5 %, then +1 %, then +2 % per 0.01."""
    ten, fifteen = standard - 20, standard - 25  # where +10 % and +15 % are reached
    if pf >= ten:
        return (standard - pf) * 50
    if pf >= fifteen:
        return 1000 + (ten - pf) * 100
    return 1500 + (fifteen - pf) * 200


# Reductions at and above the standard, read off the three tables: pf -> basis points.
_REDUCTIONS: dict[int, dict[int, int]] = {
    90: {90: 0, 91: -15, 92: -30, 93: -45, 94: -60} | dict.fromkeys(range(95, 101), -75),
    85: {pf: -(pf - 85) * 10 for pf in range(85, 91)}
    | {91: -65, 92: -80, 93: -95}
    | dict.fromkeys(range(94, 101), -110),
    80: {pf: -(pf - 80) * 10 for pf in range(80, 91)}
    | {91: -115}
    | dict.fromkeys(range(92, 101), -130),
}


def adjustment_bp(pf: int, standard: int) -> int:
    """The table entry for power factor ``pf`` against ``standard`` (both hundredths);
    0 for a factor not metered (``PF_NOT_METERED``) or an account not adjusted (standard 0).
    """
    if pf == PF_NOT_METERED or standard == 0:
        return 0
    if standard not in _REDUCTIONS or not 0 <= pf <= 100:
        raise InvalidInput(
            f"power_factor: no table entry for pf {pf / 100} at standard {standard / 100}"
        )
    return _REDUCTIONS[standard][pf] if pf >= standard else _increase(pf, standard)


# _TABLE[standard, pf] in basis points for pf 0..100; rows other than 0/80/85/90 are never
# read, and row 0 (not adjusted) is zeros.
_TABLE = np.zeros((101, 101), dtype=np.int64)
for _standard in STANDARDS:
    _TABLE[_standard, :] = [adjustment_bp(pf, _standard) for pf in range(101)]


@dataclass(frozen=True)
class PowerFactor:
    standard_default: int = 0  # hundredths; 0: accounts carry their own standard

    kind: ClassVar[str] = "power_factor"
    stage: ClassVar[Stage] = Stage.ADJUSTMENT
    lines: ClassVar[tuple[str, ...]] = ("pf_adjust_fen",)
    requires: ClassVar[frozenset[str]] = frozenset({"power_factor"})

    def charge(self, usage: Usage, lines: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        _check(usage)
        base = sum((lines[name] for name in ADJUSTED_LINES), np.zeros(len(usage), np.int64))
        metered = usage.power_factor != PF_NOT_METERED
        rate = np.where(metered, _TABLE[usage.pf_standard, np.maximum(usage.power_factor, 0)], 0)
        return {"pf_adjust_fen": apply_rate_to_fen(base, rate)}


def _check(usage: Usage) -> None:
    pf = usage.power_factor
    bad = np.flatnonzero(((pf < 0) & (pf != PF_NOT_METERED)) | (pf > 100))
    if bad.size:
        raise InvalidInput(
            f"usage: power_factor {pf[bad[0]]} (row {bad[0]}) is not in 0..100 "
            f"(or {PF_NOT_METERED}: not metered)"
        )
    bad = np.flatnonzero(~np.isin(usage.pf_standard, (0, *STANDARDS)))
    if bad.size:
        raise InvalidInput(
            f"usage: pf_standard {usage.pf_standard[bad[0]]} (row {bad[0]}) is not 0, 80, 85 or 90"
        )


def parse(table: Table) -> PowerFactor:
    standard = 0
    if table.has("standard_default"):
        value = table.decimal("standard_default")
        if value * 100 not in STANDARDS:
            raise table.error("standard_default", f"expected 0.90, 0.85 or 0.80, got {value}")
        standard = int(value * 100)
    table.finish()
    return PowerFactor(standard_default=standard)
