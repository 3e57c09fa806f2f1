"""Where seats live: the bureau placement formula, a placement plan, and new-train choice.

**Formula** (the 2015 article): with ``N`` centres in a bureau, the main centre (which also
does data maintenance, accounting and fare calculation) should hold ``P = R / N`` of the
bureau's seats and each of the ``N - 1`` load centres ``S = (1 - P) / (N - 1)``; ``R = 0.65``
by default. ``N = 3`` gives 21.67 % and 39.17 % (the article rounds it down to 39.1 %).
With ``N = 1`` the main centre holds everything. Shares are exact ``Fraction``s.

**Plan**: trains largest first (ties by train number), each to the centre furthest below its
target in seats (ties: the earlier centre in the given list). Every centre ends within one
train's seats of its target (the largest train's).

**New train**: the idlest centre holding the fewest seats, read off the centres' reports:
the idlest is the lowest CPU (ties: fewer sales per minute, then centre id); every centre
within ``CPU_BAND`` (10 percentage points) of its CPU counts as idle too, and among those
the one storing the fewest seats wins (ties: lower CPU, fewer sales per minute, centre id).

**Rebalance** (``moves_to_target``): from the current assignment, repeatedly move the one
train from the most-over centre to the most-under centre that most reduces the total
distance to the targets; stop when no single move helps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from gridfare.errors import InvalidInput

__all__ = [
    "CPU_BAND",
    "DEFAULT_R",
    "CentreReport",
    "PlannedMove",
    "choose_centre_for_new_train",
    "loads",
    "moves_to_target",
    "plan_placement",
    "shares",
    "target_shares",
]

DEFAULT_R = Fraction(65, 100)
CPU_BAND = 0.10

Ratio = Fraction | Decimal | int | str | float


def _ratio(value: Ratio, what: str) -> Fraction:
    if isinstance(value, bool):
        raise InvalidInput(f"{what}: expected a number, got {value!r}")
    try:
        # A float is read through its shortest repr so that 0.65 means 65/100.
        return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        raise InvalidInput(f"{what}: {value!r} is not a number") from exc


def shares(n_centres: int, r: Ratio = DEFAULT_R) -> tuple[Fraction, Fraction]:
    """``(main_share, load_share)`` for a bureau of ``n_centres`` centres."""
    if isinstance(n_centres, bool) or not isinstance(n_centres, int) or n_centres < 1:
        raise InvalidInput(f"placement: n_centres must be an integer >= 1, got {n_centres!r}")
    factor = _ratio(r, "placement: r")
    if not 0 < factor <= n_centres:
        raise InvalidInput(
            f"placement: r must be in (0, n_centres] = (0, {n_centres}] so that the main "
            f"share R/N is in (0, 1]; got {factor}"
        )
    if n_centres == 1:
        return Fraction(1), Fraction(0)
    main = factor / n_centres
    return main, (1 - main) / (n_centres - 1)


def target_shares(centres: Sequence[str], main: str, r: Ratio = DEFAULT_R) -> dict[str, Fraction]:
    """Each centre's target share of the bureau's seats."""
    _check_centres(centres, main)
    main_share, load_share = shares(len(centres), r)
    return {c: main_share if c == main else load_share for c in centres}


def loads(assignment: Mapping[str, str], train_seats: Mapping[str, int]) -> dict[str, int]:
    """Seats held per centre under ``assignment`` (train -> centre)."""
    held: dict[str, int] = {}
    for train, centre in assignment.items():
        held[centre] = held.get(centre, 0) + train_seats[train]
    return held


def plan_placement(
    train_seats: Mapping[str, int],
    centres: Sequence[str],
    main: str,
    r: Ratio = DEFAULT_R,
) -> dict[str, str]:
    """Assign every train to a centre so that seats follow the target shares."""
    targets = target_shares(centres, main, r)
    _check_seats(train_seats)
    total = sum(train_seats.values())
    held = dict.fromkeys(centres, 0)
    assignment: dict[str, str] = {}
    for train in sorted(train_seats, key=lambda t: (-train_seats[t], t)):
        # max() keeps the first of equal deficits, i.e. the earlier centre in the list.
        centre = max(centres, key=lambda c: targets[c] * total - held[c])
        assignment[train] = centre
        held[centre] += train_seats[train]
    return dict(sorted(assignment.items()))


@dataclass(frozen=True)
class PlannedMove:
    train: str
    source: str
    target: str
    seats: int


def moves_to_target(
    current: Mapping[str, str],
    train_seats: Mapping[str, int],
    targets: Mapping[str, Fraction],
) -> list[PlannedMove]:
    """The moves that bring ``current`` (train -> centre) close to ``targets`` (centre ->
    share, see ``target_shares``); for ``gridfare seats plan``."""
    _check_seats(train_seats)
    if sum(targets.values()) != 1:
        raise InvalidInput(f"placement: target shares add up to {sum(targets.values())}, not 1")
    for train, centre in current.items():
        if train not in train_seats:
            raise InvalidInput(f"placement: train {train} has no seat count")
        if centre not in targets:
            raise InvalidInput(f"placement: train {train} is on {centre}, which has no target")
    where = dict(current)
    total = sum(train_seats[t] for t in where)
    held = dict.fromkeys(targets, 0) | loads(where, train_seats)
    moves: list[PlannedMove] = []
    for _ in range(len(where) * len(targets) + 1):
        gap = {c: held[c] - targets[c] * total for c in targets}  # > 0: over target
        source = max(targets, key=lambda c: (gap[c], c))
        target = min(targets, key=lambda c: (gap[c], c))
        over, under = gap[source], -gap[target]
        best = None
        for train in sorted(t for t, c in where.items() if c == source):
            s = train_seats[train]
            gain = over + under - abs(over - s) - abs(under - s)
            if gain > 0 and (best is None or gain > best[0]):
                best = (gain, train)
        if best is None:
            break
        train = best[1]
        moves.append(PlannedMove(train, source, target, train_seats[train]))
        where[train] = target
        held[source] -= train_seats[train]
        held[target] += train_seats[train]
    return moves


@dataclass(frozen=True)
class CentreReport:
    """A centre's load, as the centre reports it (rebuilt, never stored)."""

    centre_id: str
    seats_stored: int
    seats_unsold: int
    sales_per_minute: float
    cpu: float  # 0.0 .. 1.0 over the last window


def choose_centre_for_new_train(reports: Sequence[CentreReport], band: float = CPU_BAND) -> str:
    """The idlest centre holding the fewest seats (the rule is in the module docstring)."""
    if not reports:
        raise InvalidInput("placement: no centre reports to choose a centre for a new train")
    for r in reports:
        if not 0.0 <= r.cpu <= 1.0:
            raise InvalidInput(f"placement: centre {r.centre_id} cpu {r.cpu} not in [0, 1]")
    idlest = min(reports, key=lambda r: (r.cpu, r.sales_per_minute, r.centre_id))
    idle = [r for r in reports if r.cpu <= idlest.cpu + band]
    chosen = min(idle, key=lambda r: (r.seats_stored, r.cpu, r.sales_per_minute, r.centre_id))
    return chosen.centre_id


def _check_centres(centres: Sequence[str], main: str) -> None:
    if not centres:
        raise InvalidInput("placement: a bureau needs at least one centre")
    if len(set(centres)) != len(centres):
        raise InvalidInput(f"placement: a centre is listed twice in {list(centres)}")
    if main not in centres:
        raise InvalidInput(f"placement: main centre {main!r} is not in {list(centres)}")


def _check_seats(train_seats: Mapping[str, int]) -> None:
    for train, seats in train_seats.items():
        if isinstance(seats, bool) or not isinstance(seats, int) or seats < 1:
            raise InvalidInput(f"placement: train {train} seats must be >= 1, got {seats!r}")
