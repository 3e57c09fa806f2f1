"""Fixed monthly charge (``fixed``) and minimum monthly charge (``minimum``).

The minimum comes last: if everything else on the bill sums to less than it, the difference
is billed as ``minimum_topup_fen``, so the total is never below the minimum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from gridfare.tariffs.component import Stage
from gridfare.tariffs.params import Table
from gridfare.tariffs.usage import Usage

__all__ = ["Fixed", "Minimum", "parse_fixed", "parse_minimum"]


@dataclass(frozen=True)
class Fixed:
    amount_fen: int  # per account per month

    kind: ClassVar[str] = "fixed"
    stage: ClassVar[Stage] = Stage.FIXED
    lines: ClassVar[tuple[str, ...]] = ("fixed_fen",)
    requires: ClassVar[frozenset[str]] = frozenset()

    def charge(self, usage: Usage, lines: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"fixed_fen": np.full(len(usage), self.amount_fen, dtype=np.int64)}


@dataclass(frozen=True)
class Minimum:
    amount_fen: int  # the least a month's bill may total

    kind: ClassVar[str] = "minimum"
    stage: ClassVar[Stage] = Stage.MINIMUM
    lines: ClassVar[tuple[str, ...]] = ("minimum_topup_fen",)
    requires: ClassVar[frozenset[str]] = frozenset()

    def charge(self, usage: Usage, lines: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        billed = sum(
            (fen for line, fen in lines.items() if line not in self.lines),
            np.zeros(len(usage), np.int64),
        )
        return {"minimum_topup_fen": np.maximum(self.amount_fen - billed, 0)}


def parse_fixed(table: Table) -> Fixed:
    amount = table.amount_fen("amount")
    table.finish()
    return Fixed(amount_fen=amount)


def parse_minimum(table: Table) -> Minimum:
    amount = table.amount_fen("amount")
    table.finish()
    return Minimum(amount_fen=amount)
