"""Railway seat inventory, pure: segment bitmaps, sales, the log, placement and migration.

``Inventory`` sells and refunds seats of one train-date; ``CentreState`` is a seat load
centre's state (the ``SeatCentre`` actor wraps it), made durable by ``WalWriter`` and
``Snapshot``; ``Directory`` maps train-dates to centres with versions; ``shares`` and
``plan_placement`` are the bureau placement formula; ``TrainSelector`` and ``Migration``
drive live migration; ``audit`` proves no seat-leg was sold twice and no sale was lost.
"""

from __future__ import annotations

from gridfare.seats.audit import AuditReport, audit
from gridfare.seats.centre import CentreState
from gridfare.seats.directory import Directory
from gridfare.seats.inventory import Inventory, Refund, Sale, SoldOut
from gridfare.seats.migration import Migration, after_restart
from gridfare.seats.placement import choose_centre_for_new_train, plan_placement, shares
from gridfare.seats.selectors import TrainSelector
from gridfare.seats.snapshot import Snapshot
from gridfare.seats.train import TrainDate, train_key
from gridfare.seats.wal import WalRecord, WalWriter, open_wal, read_wal

__all__ = [
    "AuditReport",
    "CentreState",
    "Directory",
    "Inventory",
    "Migration",
    "Refund",
    "Sale",
    "Snapshot",
    "SoldOut",
    "TrainDate",
    "TrainSelector",
    "WalRecord",
    "WalWriter",
    "after_restart",
    "audit",
    "choose_centre_for_new_train",
    "open_wal",
    "plan_placement",
    "read_wal",
    "shares",
    "train_key",
]
