from __future__ import annotations

from dataclasses import replace

from gridfare.seats.audit import audit
from gridfare.seats.inventory import Inventory
from gridfare.seats.wal import WalRecord

from .conftest import STATIONS, make_train

B, T, J, N, S = STATIONS


def centre_with_sales():
    train = make_train()
    inventory = Inventory(train)
    log = [replace(inventory.create_record(), lsn=1)]
    for rid, args in [
        ("r1", (B, J, "second", 2)),
        ("r2", (J, S, "second", 1)),
        ("r3", (B, S, "business", 1)),
    ]:
        log.append(inventory.sell(*args, rid).record)
    log.append(inventory.refund("r3").record)
    log = [replace(r, lsn=i + 1) for i, r in enumerate(log)]
    return train, inventory, log


def test_a_clean_centre_passes():
    _, inventory, log = centre_with_sales()
    report = audit({"A": log}, {"A": {inventory.key: inventory}})
    assert report.ok
    assert (report.train_dates, report.open_sales, report.changes) == (1, 2, 4)


def test_an_injected_double_sale_is_named():
    _, inventory, log = centre_with_sales()
    # A buggy centre logged a sale of seat 1 on Tianjin -> Nanjing, which r1 holds.
    bad = WalRecord(
        op="sell", key=inventory.key, seq=5, request_id="evil", cls="second", seats=(1,),
        legs=0b110, from_station=T, to_station=N, lsn=6,
    )  # fmt: skip
    report = audit({"A": [*log, bad]}, {"A": {inventory.key: inventory}})
    kinds = report.kinds()
    assert kinds["double_sale"] == 1
    double = next(v for v in report.violations if v.kind == "double_sale")
    assert double.request_id == "evil" and "already held by r1" in double.detail
    # The inventory does not hold the acknowledged (bad) sale either.
    assert kinds["lost_sale"] == 1


def test_an_injected_lost_sale_is_named():
    train, inventory, log = centre_with_sales()
    forgetful = Inventory(train)
    forgetful.replay(log[:2])  # lost r2 (and the r3 sale/refund)
    report = audit({"A": log}, {"A": {inventory.key: forgetful}})
    lost = [v for v in report.violations if v.kind == "lost_sale"]
    assert [v.request_id for v in lost] == ["r2"]
    assert report.kinds()["occupancy_mismatch"] == 1


def test_a_sale_no_log_acknowledges_is_a_phantom():
    _, inventory, log = centre_with_sales()
    inventory.sell(N, S, "business", 1, "ghost")
    report = audit({"A": log}, {"A": {inventory.key: inventory}})
    assert [(v.kind, v.request_id) for v in report.violations] == [
        ("phantom_sale", "ghost"),
        ("occupancy_mismatch", ""),
    ]


def test_a_train_date_in_two_inventories_or_none():
    train, inventory, log = centre_with_sales()
    copy = Inventory(train)
    copy.replay(log)
    twice = audit({"A": log}, {"A": {train.key: inventory}, "B": {train.key: copy}})
    assert twice.kinds()["held_twice"] == 1
    nowhere = audit({"A": log}, {"A": {}})
    assert nowhere.kinds() == {"not_held": 1, "lost_sale": 2}


def test_logs_that_disagree_or_miss_a_change():
    _, inventory, log = centre_with_sales()
    other = replace(log[2], seats=(4,))
    conflict = audit({"A": log, "B": [other]}, {"A": {inventory.key: inventory}})
    assert conflict.kinds()["conflicting_records"] == 1
    missing = audit({"A": [log[0], *log[2:]]}, {"A": {inventory.key: inventory}})
    assert missing.kinds()["missing_record"] == 1
    # The same record copied into another centre's log (a migration) is fine.
    copied = audit({"A": log, "B": [replace(log[2], lsn=99)]}, {"A": {inventory.key: inventory}})
    assert copied.ok
