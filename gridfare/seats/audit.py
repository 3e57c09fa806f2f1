"""Prove from the logs and the inventories that no seat-leg was sold twice and no sale lost.

Input: every centre's log records (complete from each train-date's ``create``; only what
``read_wal`` returns, i.e. acknowledged records) and every centre's inventories.

1. **Logs agree**: a train-date's change ``seq`` may appear in several logs (a migration
   copies it), but always with the same content; otherwise ``conflicting_records``. A gap
   in ``seq`` is ``missing_record``.
2. **No double sale**: the changes are replayed in ``seq`` order into empty occupancy; a sale
   of a seat-leg that is held at that moment is ``double_sale`` (naming both requests); a
   refund of an order that is not open is ``bad_refund``.
3. **Exactly one inventory**: every train-date with an open sale is held by exactly one
   centre (``held_twice`` / ``not_held``); in it, every acknowledged open sale is present with
   the same seats (else ``lost_sale``), it holds no open order the logs do not acknowledge
   (``phantom_sale``) and its occupancy equals the replayed one (``occupancy_mismatch``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from gridfare.seats.inventory import Inventory
from gridfare.seats.train import TrainDate
from gridfare.seats.wal import WalRecord

__all__ = ["AuditReport", "Violation", "audit"]

_SHOWN = 10  # seats named in one occupancy violation


@dataclass(frozen=True)
class Violation:
    kind: str
    key: str
    detail: str
    request_id: str = ""
    centre: str = ""

    def __str__(self) -> str:
        who = f" {self.request_id}" if self.request_id else ""
        where = f" on {self.centre}" if self.centre else ""
        return f"{self.kind}: {self.key}{who}{where}: {self.detail}"


@dataclass(frozen=True)
class AuditReport:
    violations: tuple[Violation, ...]
    train_dates: int
    open_sales: int  # acknowledged, not refunded
    changes: int  # distinct sell/refund records replayed

    @property
    def ok(self) -> bool:
        return not self.violations

    def kinds(self) -> Counter[str]:
        return Counter(v.kind for v in self.violations)


@dataclass(frozen=True)
class _Open:
    cls: str
    seats: tuple[int, ...]
    legs: int


def audit(
    logs: Mapping[str, Iterable[WalRecord]],
    inventories: Mapping[str, Mapping[str, Inventory]],
) -> AuditReport:
    """Check every train-date found in any log or inventory."""
    violations: list[Violation] = []
    trains: dict[str, TrainDate] = {}
    changes: dict[str, dict[int, tuple[str, WalRecord]]] = {}
    for centre, records in sorted(logs.items()):
        for record in records:
            if record.op == "create" and record.train is not None:
                trains.setdefault(record.key, record.train)
            if record.op not in ("sell", "refund"):
                continue
            seen = changes.setdefault(record.key, {}).get(record.seq)
            if seen is None:
                changes[record.key][record.seq] = (centre, record)
            elif replace(seen[1], lsn=0) != replace(record, lsn=0):
                violations.append(
                    Violation(
                        "conflicting_records",
                        record.key,
                        f"seq {record.seq}: {seen[0]} logged {_brief(seen[1])}, "
                        f"{centre} logged {_brief(record)}",
                        record.request_id,
                        centre,
                    )
                )
    holders: dict[str, list[str]] = {}
    for centre, held in sorted(inventories.items()):
        for key, inventory in held.items():
            holders.setdefault(key, []).append(centre)
            trains.setdefault(key, inventory.train)

    open_sales = 0
    for key in sorted(set(trains) | set(changes)):
        train = trains.get(key)
        if train is None:
            violations.append(Violation("missing_record", key, "no create record or inventory"))
            continue
        active = _replay(train, changes.get(key, {}), violations)
        open_sales += len(active)
        where = holders.get(key, [])
        if len(where) > 1:
            violations.append(
                Violation("held_twice", key, f"held by {len(where)} centres: {', '.join(where)}")
            )
        if not where:
            if active:
                violations.append(
                    Violation("not_held", key, f"{len(active)} open sales, no inventory holds it")
                )
                violations.extend(
                    Violation("lost_sale", key, "in no inventory", rid) for rid in sorted(active)
                )
            continue
        for centre in where:
            _compare(inventories[centre][key], centre, active, violations)
    return AuditReport(
        tuple(violations),
        train_dates=len(trains),
        open_sales=open_sales,
        changes=sum(len(c) for c in changes.values()),
    )


def _replay(
    train: TrainDate,
    changes: Mapping[int, tuple[str, WalRecord]],
    violations: list[Violation],
) -> dict[str, _Open]:
    key = train.key
    masks = {cls: np.zeros(n, dtype=np.uint64) for cls, n in train.classes}
    active: dict[str, _Open] = {}
    last = max(changes, default=0)
    for seq in range(1, last + 1):
        if seq not in changes:
            violations.append(Violation("missing_record", key, f"no log holds change seq {seq}"))
            continue
        centre, r = changes[seq]
        occupancy = masks.get(r.cls)
        seats = [s for s in r.seats if occupancy is not None and 1 <= s <= occupancy.size]
        if occupancy is None or len(seats) != len(r.seats):
            violations.append(Violation("bad_record", key, f"seq {seq}: {_brief(r)}", "", centre))
            continue
        idx = np.asarray(seats) - 1
        seg = np.uint64(r.legs)
        if r.op == "sell":
            clash = (occupancy[idx] & seg) != 0
            if clash.any():
                taken = {seats[i] for i in np.flatnonzero(clash)}
                others = sorted(
                    rid
                    for rid, o in active.items()
                    if o.cls == r.cls and o.legs & r.legs and taken & set(o.seats)
                )
                violations.append(
                    Violation(
                        "double_sale",
                        key,
                        f"seq {seq}: {r.cls} seats {sorted(taken)} legs {r.legs:#x} already "
                        f"held by {', '.join(others)}",
                        r.request_id,
                        centre,
                    )
                )
            if r.request_id in active:
                violations.append(
                    Violation("double_sale", key, f"seq {seq}: sold twice", r.request_id, centre)
                )
            occupancy[idx] |= seg
            active[r.request_id] = _Open(r.cls, r.seats, r.legs)
        else:
            order = active.pop(r.request_id, None)
            if order != _Open(r.cls, r.seats, r.legs):
                violations.append(
                    Violation(
                        "bad_refund", key, f"seq {seq}: no such open order", r.request_id, centre
                    )
                )
            occupancy[idx] &= ~seg
    return active


def _compare(
    inventory: Inventory, centre: str, active: Mapping[str, _Open], violations: list[Violation]
) -> None:
    key = inventory.key
    held = {
        rid: _Open(o.cls, o.seats, o.legs) for rid, o in inventory.orders.items() if not o.refunded
    }
    for rid in sorted(active):
        if held.get(rid) != active[rid]:
            violations.append(
                Violation(
                    "lost_sale", key, f"acknowledged {active[rid]} not in inventory", rid, centre
                )
            )
    for rid in sorted(set(held) - set(active)):
        violations.append(
            Violation("phantom_sale", key, f"{held[rid]} acknowledged by no log", rid, centre)
        )
    replayed = _occupancy(inventory.train, active)
    for cls, _ in inventory.train.classes:
        differ = np.flatnonzero(inventory.masks(cls) != replayed[cls])
        if differ.size:
            seats = (differ[:_SHOWN] + 1).tolist()
            violations.append(
                Violation(
                    "occupancy_mismatch",
                    key,
                    f"{cls}: {differ.size} seats differ from the logs, e.g. {seats}",
                    "",
                    centre,
                )
            )


def _occupancy(train: TrainDate, active: Mapping[str, _Open]) -> dict[str, np.ndarray]:
    masks = {cls: np.zeros(n, dtype=np.uint64) for cls, n in train.classes}
    for o in active.values():
        idx = np.asarray(o.seats) - 1
        masks[o.cls][idx] |= np.uint64(o.legs)
    return masks


def _brief(r: WalRecord) -> str:
    return f"{r.op} {r.request_id} {r.cls} seats {list(r.seats)} legs {r.legs:#x}"
