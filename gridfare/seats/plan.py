"""A bureau's placement plan: current vs target seat shares per centre and the train moves
that reach the target (pure: the client and ``gridfare seats plan --offline`` share it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from gridfare.seats.placement import (
    PlannedMove,
    loads,
    moves_to_target,
    plan_placement,
    target_shares,
)
from gridfare.seats.train import TrainDate

__all__ = ["PlacementPlan", "placement_plan", "trains_by_centre"]


@dataclass(frozen=True)
class PlacementPlan:
    centres: tuple[str, ...]
    main: str
    seats: dict[str, int]  # centre -> seats held now
    targets: dict[str, Fraction]  # centre -> target share
    moves: tuple[PlannedMove, ...]

    def render(self) -> str:
        total = sum(self.seats.values()) or 1
        after = dict(self.seats)
        for m in self.moves:
            after[m.source] -= m.seats
            after[m.target] += m.seats
        lines = [f"{'centre':10} {'seats':>12} {'current':>8} {'target':>8} {'after':>8}"]
        for c in self.centres:
            role = " (main)" if c == self.main else ""
            lines.append(
                f"{c + role:10} {self.seats.get(c, 0):>12,} "
                f"{self.seats.get(c, 0) / total:>8.2%} {float(self.targets[c]):>8.2%} "
                f"{after.get(c, 0) / total:>8.2%}"
            )
        lines.append(f"{len(self.moves)} moves reach the target:")
        lines += [
            f"  migrate {m.train} {m.source} -> {m.target} ({m.seats:,} seats)" for m in self.moves
        ]
        return "\n".join(lines)


def placement_plan(
    current: Mapping[str, str],
    train_seats: Mapping[str, int],
    centres: Sequence[str],
    main: str,
    r: str = "0.65",
) -> PlacementPlan:
    """Current vs target shares per centre and the train moves that reach the target.
    ``current`` maps each train to a centre (``None`` for a new train: it is placed by the
    formula first and its placement is part of the plan)."""
    targets = target_shares(list(centres), main, Fraction(str(r)))
    placed = {t: c for t, c in current.items() if c is not None}
    new = {t: train_seats[t] for t in current if current[t] is None}
    if new:
        placed |= plan_placement(new, list(centres), main, Fraction(str(r)))
    held = dict.fromkeys(centres, 0) | loads({t: c for t, c in current.items() if c}, train_seats)
    moves = moves_to_target(placed, train_seats, targets) if placed else []
    return PlacementPlan(tuple(centres), main, held, targets, tuple(moves))


def trains_by_centre(
    owners: Mapping[str, str], trains: Iterable[TrainDate]
) -> tuple[dict[str, str], dict[str, int]]:
    """Per train number: the centre holding most of its seats, and its seats per departure."""
    weight: dict[str, dict[str, int]] = {}
    seats: dict[str, int] = {}
    for t in trains:
        centre = owners.get(t.key)
        if centre is None:
            continue
        by = weight.setdefault(t.train_no, {})
        by[centre] = by.get(centre, 0) + t.seats
        seats[t.train_no] = t.seats
    current = {n: max(sorted(by), key=lambda c: by[c]) for n, by in weight.items()}
    return current, seats
