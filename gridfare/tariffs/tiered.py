"""Residential tiered energy (阶梯电价), monthly or annual-cumulative.

This month's energy fills the tiers from where the account already stands: from 0 for
monthly tiers; from the energy billed earlier in the calendar year (``usage.ytd_kwh``) for
annual tiers, so the annual edges carry over from month to month. An edge belongs to the tier
below it: with edges 240 / 400, 240 kWh is all tier 1 and 240.01 kWh puts 0.01 in tier 2.
With prices 0 / +0.05 / +0.30 the same component is the tier increment some provinces add
on top of time-of-use prices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from gridfare.tariffs.component import Stage, priced
from gridfare.tariffs.params import Table
from gridfare.tariffs.usage import Usage

__all__ = ["Tiered", "parse"]

TIER_LINES = ("tier1_fen", "tier2_fen", "tier3_fen")
BASES = ("monthly", "annual")


@dataclass(frozen=True)
class Tiered:
    basis: str  # "monthly" or "annual"
    edges: tuple[int, ...]  # upper edge of every tier but the open top one, 0.01 kWh
    prices: tuple[int, ...]  # one per tier, 1e-8 CNY/kWh

    kind: ClassVar[str] = "tiered"
    stage: ClassVar[Stage] = Stage.ENERGY
    lines: ClassVar[tuple[str, ...]] = TIER_LINES
    requires: ClassVar[frozenset[str]] = frozenset()

    def charge(self, usage: Usage, lines: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = usage.ytd_kwh if self.basis == "annual" else np.zeros_like(usage.kwh)
        end = start + usage.kwh
        bounds = (0, *self.edges, None)
        charged = {}
        for tier, price in enumerate(self.prices):
            low, high = bounds[tier], bounds[tier + 1]
            in_tier = np.clip(end, low, high) - np.clip(start, low, high)
            charged[TIER_LINES[tier]] = priced(in_tier, price)
        return charged


def parse(table: Table) -> Tiered:
    basis = table.string("basis", BASES)
    edges = table.edges("edges_kwh")
    if len(edges) > len(TIER_LINES) - 1:
        raise table.error("edges_kwh", f"at most {len(TIER_LINES) - 1} edges, got {len(edges)}")
    prices = table.prices("prices")
    if len(prices) != len(edges) + 1:
        raise table.error(
            "prices",
            f"expected {len(edges) + 1} prices for {len(edges)} edges, got {len(prices)}",
        )
    table.finish()
    return Tiered(basis=basis, edges=edges, prices=prices)
