"""Two-part tariff basic charge (基本电费), by contracted capacity or by maximum demand.

``basis = "capacity"``: price (CNY per kVA·month) x contracted capacity. ``basis = "demand"``:
price (CNY per kW·month) x the month's maximum demand; with ``min_demand_ratio`` (e.g. 0.40)
the billed demand is at least that share of the contracted capacity, the floor rounded half
up to 0.01 kW.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from gridfare.money import round_raw_to_fen
from gridfare.tariffs.component import Stage, priced
from gridfare.tariffs.params import Table
from gridfare.tariffs.usage import Usage

__all__ = ["Basic", "parse"]

BASES = ("capacity", "demand")


@dataclass(frozen=True)
class Basic:
    basis: str  # "capacity" or "demand"
    price: int  # 1e-8 CNY per kVA·month or per kW·month
    min_demand_ratio_bp: int = 0  # demand basis: floor as a share of capacity, 1/10000

    kind: ClassVar[str] = "basic"
    stage: ClassVar[Stage] = Stage.BASIC
    lines: ClassVar[tuple[str, ...]] = ("basic_fen",)

    @property
    def requires(self) -> frozenset[str]:
        if self.basis == "capacity":
            return frozenset({"capacity"})
        return frozenset({"max_demand", "capacity"} if self.min_demand_ratio_bp else {"max_demand"})

    def charge(self, usage: Usage, lines: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.basis == "capacity":
            billed = usage.capacity_kva
        else:
            # round_raw_to_fen rounds any integer ratio half up; here 1/10000 -> 0.01 kW.
            floor = round_raw_to_fen(usage.capacity_kva * self.min_demand_ratio_bp, 10_000)
            billed = np.maximum(usage.max_demand_kw, floor)
        return {"basic_fen": priced(billed, self.price)}


def parse(table: Table) -> Basic:
    basis = table.string("basis", BASES)
    price = table.price("price")
    ratio = 0
    if table.has("min_demand_ratio"):
        if basis != "demand":
            raise table.error("min_demand_ratio", 'only applies with basis = "demand"')
        ratio = table.ratio_bp("min_demand_ratio")
    table.finish()
    return Basic(basis=basis, price=price, min_demand_ratio_bp=ratio)
