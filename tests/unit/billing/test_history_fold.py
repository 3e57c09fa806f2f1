"""History folds: a period's history is one file whatever the month, with the same rows (and
so the same bills) as the legacy file plus the bills files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from datasets.datacentre import DataCentre, _labelled
from datasets.generator import generate_city, span_periods
from datasets.schemas import HISTORY_FOLD, USAGE_HISTORY
from gridfare.billing.history import fold_history
from gridfare.period import Period, label_of
from gridfare.tariffs import load_tariff_book
from tests.billing_reference import bill_bundled

FIRST, LAST = "2026-10", "2027-02"  # crosses a year: annual tiers restart


@pytest.fixture(scope="module")
def book():
    return load_tariff_book()


def _bill(centre: DataCentre, book, period: str, bundle_max: int | None = None) -> None:
    # One run id a period: a period billed again is the same run's bills, byte for byte.
    for outcome in bill_bundled(centre, book, period, run_id=f"{period}-fold-test",
                                bundle_max=bundle_max):
        assert outcome.status == "done", outcome.error


def _stored(centre: DataCentre) -> dict[tuple[str, str, str], pa.Table]:
    """Every section's bills and fold of every period, as the manifest finds them."""
    centre = centre.reading(centre.section_files())  # one read of the catalog
    return {(dataset, period, section): centre._read(dataset, period=period, section=section)
            for period in centre.periods("bills") for section in centre.sections(period)
            for dataset in ("bills", "history")}


def _delete_rows(root: Path, dataset: str, period: str, section: str) -> None:
    """As if a section's file had never been recorded (its manifest row gone)."""
    import duckdb

    with duckdb.connect(str(root / "catalog.duckdb")) as con:
        con.execute("DELETE FROM section_files WHERE dataset = ? AND period = ? AND "
                    "section_id = ?", [dataset, period, section])


@pytest.fixture(scope="module")
def city(tmp_path_factory, book) -> Path:
    root = tmp_path_factory.mktemp("fold") / "dc"
    centre = DataCentre(str(root), create=True)
    generate_city(centre, accounts=3_000, sections=6, period=FIRST, through=LAST, seed=5)
    for period in span_periods(FIRST, LAST):
        _bill(centre, book, period)
    return root


def _slow(centre: DataCentre, section: str, period: str) -> pa.Table:
    """read_history as it is without folds (the legacy file and the bills files)."""
    rows = centre._bound([section])._history_from_bills(
        section, [str(p) for p in Period.parse(period).previous(12)])
    return _labelled(rows.sort_by([("account_id", "ascending"), ("month", "ascending")]))


def test_a_fold_gives_the_rows_of_the_bills_files(city):
    centre = DataCentre(str(city))
    later = span_periods(FIRST, LAST)[1:]
    assert centre.periods("history") == span_periods(FIRST, LAST)
    for period in later:
        for section in centre.sections(period):
            folded = centre.read_history(section, period)
            assert folded.schema == USAGE_HISTORY
            assert folded.equals(_slow(centre, section, period)), (section, period)
    # The last period billed reads 4 earlier bills files through the fold.
    assert set(centre.read_history("S00001", LAST)["period"].to_pylist()) >= set(
        span_periods(FIRST, "2027-01"))


def test_rerunning_a_period_gives_identical_bills_and_folds(city, book, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(city, copy)
    centre = DataCentre(str(copy))
    before = _stored(centre)
    _bill(centre, book, "2026-12")  # a closed period, billed again
    _bill(centre, book, LAST, bundle_max=4)  # in other bundles than the first time
    _bill(centre, book, LAST, bundle_max=1)  # and each section a bundle of its own
    after = _stored(centre)
    assert after.keys() == before.keys()
    assert all(after[key].equals(before[key]) for key in before), [
        key for key in before if not after[key].equals(before[key])]
    # The bundles the reruns replaced were swept: one bills and one fold file a bundle.
    assert len(list((copy / "bills" / f"period={LAST}").rglob("*.parquet"))) == 6
    assert len(list((copy / "history" / f"period={LAST}").rglob("*.arrow"))) == 6
    assert len(list((copy / "bills" / "period=2026-12").rglob("*.parquet"))) == 1


def test_without_a_fold_the_bills_files_give_the_same_bills(city, book, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(city, copy)
    centre = DataCentre(str(copy))
    before = _stored(centre)
    # As if a section's fold had not been recorded: its history comes from the bills.
    _delete_rows(copy, "history", "2027-01", "S00002")
    _bill(centre, book, LAST)
    after = _stored(centre)
    assert all(after[key].equals(before[key]) for key in before if key[0] == "bills")


def _history(rows: list[tuple[int, str, float]]) -> pa.Table:
    return pa.table({"account_id": pa.array([r[0] for r in rows], pa.int64()),
                     "period": [r[1] for r in rows], "kwh": [r[2] for r in rows]},
                    schema=USAGE_HISTORY)


def test_the_bill_takes_precedence_and_the_oldest_month_drops_out():
    carried = _history([(1, "2025-10", 5.0), (1, "2026-09", 9.0), (2, "2026-10", 7.0),
                        (3, "2026-10", 3.0), (3, "2026-11", 4.0), (2, "2026-09", 1.0),
                        (2, "2026-09", 1.0)])  # a legacy month held twice stays twice
    bills = pa.table({"account_id": pa.array([2, 4], pa.int64()),
                      "period": ["2026-10", "2026-10"], "kwh": [70.0, 40.0],
                      "tier1_fen": [1, 2]})
    fold = fold_history(carried, bills, Period.parse("2026-10"))
    assert fold.schema == HISTORY_FOLD  # months as indices
    labelled = [{**row, "month": label_of(row["month"])} for row in fold.to_pylist()]
    assert sorted(labelled, key=lambda r: (r["account_id"], r["month"])) == [
        {"account_id": 1, "month": "2026-09", "kwh": 9.0},
        {"account_id": 2, "month": "2026-09", "kwh": 1.0},
        {"account_id": 2, "month": "2026-09", "kwh": 1.0},
        {"account_id": 2, "month": "2026-10", "kwh": 70.0},  # the bill, not the legacy 7
        {"account_id": 3, "month": "2026-10", "kwh": 3.0},  # no bill: the legacy row
        {"account_id": 3, "month": "2026-11", "kwh": 4.0},  # a later legacy row is kept
        {"account_id": 4, "month": "2026-10", "kwh": 40.0},
    ]
    assert fold.equals(fold_history(carried, bills, Period.parse("2026-10")))


def test_legacy_rows_past_the_first_billed_month_are_carried(book, tmp_path):
    centre = DataCentre(str(tmp_path / "dc"), create=True)
    generate_city(centre, accounts=600, sections=2, period="2026-10", through="2026-12",
                  seed=3)
    legacy = centre.read_usage_history("S00001")
    accounts = centre.read_accounts("S00001").to_pylist()
    read = {a for p in span_periods("2026-10", "2026-12")
            for a in centre.read_readings(p, "S00001")["account_id"].to_pylist()}
    closed = [a["account_id"] for a in accounts if a["account_id"] not in read][:3]
    assert closed
    ids = closed + [a for a in sorted(read)][:40]  # never read (never billed), and billed
    late = _history([(a, p, 123.0) for a in ids for p in ("2026-11", "2026-12")])
    centre.write_history("S00001", pa.concat_tables([legacy, late]))
    for period in span_periods("2026-10", "2026-12"):
        _bill(centre, book, period)
        following = str(Period.parse(period).shift(1))
        folded = centre.read_history("S00001", following)
        assert folded.equals(_slow(centre, "S00001", following)), period
    # An account never billed keeps its legacy rows of those months; a billed one its bills.
    rows = {(r["account_id"], r["period"]): r["kwh"]
            for r in centre.read_history("S00001", "2027-01").to_pylist()}
    assert all(rows[(a, p)] == 123.0 for a in closed for p in ("2026-11", "2026-12"))
    assert rows[(ids[-1], "2026-12")] != 123.0


@pytest.mark.parametrize("old_name", ["part-0.parquet", "part-0.arrow"])
def test_a_fold_in_an_old_format_is_skipped_then_swept(city, book, tmp_path, old_name):
    copy = tmp_path / "copy"
    shutil.copytree(city, copy)
    centre = DataCentre(str(copy))
    before = _stored(centre)
    _delete_rows(copy, "history", "2027-01", "S00002")
    old = copy / "history" / "period=2027-01" / "section=S00002" / old_name
    old.parent.mkdir(parents=True)
    # A fold of before Arrow IPC, or of before months as indices, in the section layout of
    # before bundles: never read, never refused.
    old.write_bytes(b"not read")
    assert centre.periods("history") == span_periods(FIRST, LAST)
    assert centre.read_history("S00002", LAST).equals(_slow(centre, "S00002", LAST))
    _bill(centre, book, LAST)
    after = _stored(centre)
    assert all(after[key].equals(before[key]) for key in before if key[0] == "bills")
    _bill(centre, book, "2027-01")  # the period's sweep removes the old file
    assert not old.exists() and not old.parent.exists()
    assert centre._read_fold("2027-01", "S00002").equals(before[("history", "2027-01",
                                                                 "S00002")])
