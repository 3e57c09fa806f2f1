"""History folds: a period's history is one file whatever the month, with the same rows (and
so the same bills) as the legacy file plus the bills files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from datasets.datacentre import FOLD_PART_NAME, DataCentre, _labelled
from datasets.generator import generate_city, span_periods
from datasets.schemas import HISTORY_FOLD, USAGE_HISTORY
from gridfare.billing.history import fold_history
from gridfare.billing.runner import bill_one_section, bill_sections
from gridfare.period import Period, label_of
from gridfare.tariffs import load_tariff_book

FIRST, LAST = "2026-10", "2027-02"  # crosses a year: annual tiers restart


@pytest.fixture(scope="module")
def book():
    return load_tariff_book()


def _bill(centre: DataCentre, book, period: str) -> None:
    sections = centre.sections(period)
    for outcome in bill_sections(centre, book, period, sections, "fold-test"):
        assert outcome.status == "done", outcome.error


def _files(root: Path, dataset: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted((root / dataset).rglob("part-0.*"))}


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
    rows = centre._history_from_bills(section, [str(p) for p in
                                                Period.parse(period).previous(12)])
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
    bills, folds = _files(copy, "bills"), _files(copy, "history")
    _bill(centre, book, "2026-12")  # a closed period, billed again
    _bill(centre, book, LAST)
    for section in centre.sections(LAST):  # and one section by the one-section path
        assert bill_one_section(centre, book, LAST, section, "fold-test").status == "done"
    assert _files(copy, "bills") == bills and _files(copy, "history") == folds


def test_without_a_fold_the_bills_files_give_the_same_bills(city, book, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(city, copy)
    bills = _files(copy, "bills")
    # As if a section's fold had not been written (a failure after its bills).
    shutil.rmtree(copy / "history" / "period=2027-01" / "section=S00002")
    _bill(DataCentre(str(copy)), book, LAST)
    assert _files(copy, "bills") == bills


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
def test_a_fold_in_an_old_format_is_skipped_then_replaced(city, book, tmp_path, old_name):
    copy = tmp_path / "copy"
    shutil.copytree(city, copy)
    bills = _files(copy, "bills")
    partition = copy / "history" / "period=2027-01" / "section=S00002"
    (partition / FOLD_PART_NAME).unlink()
    old = partition / old_name
    # A fold of before Arrow IPC, or of before months as indices: never read, never refused.
    old.write_bytes(b"not read")
    centre = DataCentre(str(copy))
    assert centre.periods("history") == span_periods(FIRST, LAST)
    assert centre.read_history("S00002", LAST).equals(_slow(centre, "S00002", LAST))
    _bill(centre, book, LAST)
    assert _files(copy, "bills") == bills
    _bill(centre, book, "2027-01")  # writing the fold again removes the old file
    assert not old.exists() and (partition / FOLD_PART_NAME).exists()
