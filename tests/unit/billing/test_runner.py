"""The single-process runner over a real (small) data centre and catalog."""

from __future__ import annotations

import os

import pytest

from datasets.catalog import Catalog
from datasets.datacentre import DataCentre
from datasets.generator import generate_city
from gridfare.billing.request import RunRequest, select_sections
from gridfare.billing.runner import run_billing
from gridfare.errors import DataCentreError, InvalidInput
from gridfare.tariffs import load_tariff_book

PERIOD = "2026-10"
INTERRUPTED = "2026-10-20261101T080000-0a0b0c"  # a run id of the runner's shape


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    root = tmp_path_factory.mktemp("city")
    generate_city(DataCentre(str(root), create=True), accounts=3_000, sections=12,
                  period=PERIOD, seed=5)
    return root


@pytest.fixture
def centre(city, tmp_path):
    # Each test gets its own copy: runs write bills and the catalog.
    import shutil

    copy = tmp_path / "dc"
    shutil.copytree(city, copy)
    return DataCentre(str(copy))


def bill_files(centre: DataCentre) -> dict[str, bytes]:
    root = centre.root
    from pathlib import Path

    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(Path(root, "bills").rglob("*.parquet"))}


def test_a_run_bills_every_section_and_records_it(centre):
    catalog = Catalog(centre.catalog_path)
    summary = run_billing(centre, catalog, RunRequest(PERIOD))
    assert len(summary.outcomes) == 12 and not summary.failed
    record = catalog.run(summary.run_id)
    assert (record.status, record.sections_done, record.billed) == ("done", 12, summary.billed)
    assert record.total_fen == summary.total_fen
    assert summary.billed + summary.exceptions >= 2_900  # inactive accounts are neither
    assert sum(centre.read_bills(PERIOD, s).num_rows
               for s in centre.sections(PERIOD)) == summary.billed
    # A bundle of one a section (this runner bills them one by one): one file each.
    assert len(bill_files(centre)) == 12 and centre.dataset(
        "bills", PERIOD).count_rows() == summary.billed
    # The audit exceptions are in the catalog, recorded with their sections.
    exceptions = catalog.exceptions(PERIOD)
    assert exceptions.num_rows == summary.exceptions == record.exceptions > 0
    assert sorted(zip(exceptions["section_id"].to_pylist(),
                      exceptions["account_id"].to_pylist(),
                      exceptions["rule"].to_pylist(), strict=True)) == sorted(
        (o.section_id, account, rule)
        for o in summary.outcomes for account, rule, _ in o.exception_rows)
    assert set(exceptions["run_id"].to_pylist()) == {summary.run_id}
    assert set(exceptions["period"].to_pylist()) == {PERIOD}


def test_a_rerun_replaces_a_sections_exceptions_and_a_failed_one_keeps_them(centre):
    catalog = Catalog(centre.catalog_path)
    first = run_billing(centre, catalog, RunRequest(PERIOD, sections=["S00003", "S00004"]))
    before = catalog.exceptions(PERIOD)
    assert before.num_rows == first.exceptions > 0
    again = run_billing(centre, catalog, RunRequest(PERIOD, sections=["S00003"]))
    after = catalog.exceptions(PERIOD)
    assert after.num_rows == before.num_rows  # replaced, never added
    assert after.drop(["run_id"]).equals(before.drop(["run_id"]))
    assert set(catalog.exceptions(PERIOD, ["S00003"])["run_id"].to_pylist()) == {again.run_id}
    assert set(catalog.exceptions(PERIOD, ["S00004"])["run_id"].to_pylist()) == {first.run_id}
    # A failed rerun leaves the section's bills and exceptions as they were.
    with open(centre.path("readings", period=PERIOD, section="S00003"), "wb") as handle:
        handle.write(b"not parquet")
    failed = run_billing(centre, catalog, RunRequest(PERIOD, sections=["S00003"]))
    assert [o.section_id for o in failed.failed] == ["S00003"]
    assert catalog.exceptions(PERIOD).equals(after)
    assert catalog.exceptions("2026-09").num_rows == 0


def test_rerunning_a_section_replaces_its_bills_never_duplicates(centre):
    catalog = Catalog(centre.catalog_path)
    run_billing(centre, catalog, RunRequest(PERIOD, sections=["S00003"]))
    first = centre.read_bills(PERIOD, "S00003")
    again = run_billing(centre, catalog, RunRequest(PERIOD, sections=["S00003"]))
    second = centre.read_bills(PERIOD, "S00003")
    assert second.num_rows == first.num_rows
    assert second.drop(["run_id"]).equals(first.drop(["run_id"]))
    assert set(second["run_id"].to_pylist()) == {again.run_id}


def test_reruns_give_identical_bytes_for_the_same_run(centre):
    catalog = Catalog(centre.catalog_path)
    summary = run_billing(centre, catalog, RunRequest(PERIOD, sections=["S0000*"]))
    before = bill_files(centre)
    # Resuming a finished run with everything done bills nothing and changes nothing.
    resumed = run_billing(centre, catalog, RunRequest(resume_run_id=summary.run_id))
    assert resumed.outcomes == ()
    assert bill_files(centre) == before


def test_resume_bills_only_what_was_not_done(centre):
    catalog = Catalog(centre.catalog_path)
    book = load_tariff_book()
    sections = centre.sections(PERIOD)
    # A run that was interrupted after recording two sections.
    catalog.start_run(INTERRUPTED, PERIOD, sections, started_at=_now())
    from gridfare.billing.runner import bill_one_section

    done = [bill_one_section(centre, book, PERIOD, s, INTERRUPTED) for s in sections[:2]]
    catalog.record_sections(INTERRUPTED, [o.as_record(finished_at=_now()) for o in done])
    resumed = run_billing(centre, catalog, RunRequest(PERIOD, resume_run_id=INTERRUPTED))
    assert [o.section_id for o in resumed.outcomes] == sections[2:]
    assert catalog.run(INTERRUPTED).status == "done"
    assert catalog.run(INTERRUPTED).sections_done == len(sections)


def test_a_bad_section_fails_alone(centre):
    # A corrupt readings file: that section fails with the error, the others complete.
    path = centre.path("readings", period=PERIOD, section="S00002")
    with open(path, "wb") as handle:
        handle.write(b"not parquet")
    catalog = Catalog(centre.catalog_path)
    summary = run_billing(centre, catalog, RunRequest(PERIOD))
    assert [o.section_id for o in summary.failed] == ["S00002"]
    assert "S00002" in summary.failed[0].error or "readings" in summary.failed[0].error
    record = catalog.run(summary.run_id)
    assert (record.status, record.sections_done, record.sections_failed) == ("failed", 11, 1)
    assert list(catalog.failures(summary.run_id)) == ["S00002"]


def test_finishing_a_run_records_its_last_outcomes_or_nothing(centre):
    catalog = Catalog(centre.catalog_path)
    sections = centre.sections(PERIOD)[:2]
    catalog.start_run("r", PERIOD, sections, started_at=_now())
    last = [{"section_id": sections[0], "status": "done", "billed": 7},
            {"section_id": "S99999", "status": "done"}]
    last[0]["exception_rows"] = ((1, "register_rollback", "cur < prev"),)
    with pytest.raises(DataCentreError, match="S99999"):
        catalog.finish_run("r", _now(), last)
    # Refused whole: the good outcome is not recorded and the run is still running.
    assert catalog.run("r").status == "running" and catalog.run("r").sections_done == 0
    assert catalog.exceptions(PERIOD).num_rows == 0
    record = catalog.finish_run("r", _now(), [
        last[0], {"section_id": sections[1], "status": "failed", "error": "bad readings"}])
    assert (record.status, record.sections_done, record.billed) == ("failed", 1, 7)
    assert catalog.failures("r") == {sections[1]: "bad readings"}
    assert catalog.exceptions(PERIOD).to_pylist() == [{
        "account_id": 1, "period": PERIOD, "section_id": sections[0],
        "rule": "register_rollback", "detail": "cur < prev", "run_id": "r"}]


def test_a_section_recorded_twice_in_one_batch_has_its_exceptions_once(centre):
    catalog = Catalog(centre.catalog_path)
    catalog.start_run("r", PERIOD, ["S00001"], started_at=_now())
    first = {"section_id": "S00001", "status": "done",
             "exception_rows": ((1, "register_rollback", "cur < prev"),)}
    last = {**first, "exception_rows": ((2, "missing_reading", "none"),)}
    catalog.record_sections("r", [first, last])
    assert catalog.exceptions(PERIOD).to_pylist() == [{
        "account_id": 2, "period": PERIOD, "section_id": "S00001",
        "rule": "missing_reading", "detail": "none", "run_id": "r"}]


def test_section_selection():
    available = ["S00001", "S00002", "S00010"]
    assert select_sections(available, None) == available
    assert select_sections(available, ["all"]) == available
    assert select_sections(available, ["S0000*"]) == ["S00001", "S00002"]
    with pytest.raises(InvalidInput, match="S9"):
        select_sections(available, ["S9"])


def _now():
    from datetime import datetime

    return datetime(2026, 11, 1, 8, 0)


def test_a_bundle_writes_the_same_bills_as_section_by_section(centre, tmp_path):
    import shutil

    from tests.billing_reference import bill_bundled

    book = load_tariff_book()
    other = DataCentre(str(shutil.copytree(centre.root, tmp_path / "other")))
    sections = centre.sections(PERIOD)
    one = bill_bundled(centre, book, PERIOD, run_id="run-1", bundle_max=1)
    bundled = bill_bundled(other, book, PERIOD, run_id="run-1", bundle_max=5)
    assert [o.section_id for o in bundled] == sections
    assert [(o.status, o.billed, o.exceptions, o.total_fen, o.exception_rows)
            for o in bundled] == [
        (o.status, o.billed, o.exceptions, o.total_fen, o.exception_rows) for o in one]
    # 12 files against 3, the same bills section by section and as one dataset.
    assert (len(bill_files(centre)), len(bill_files(other))) == (12, 3)
    for section in sections:
        assert other.read_bills(PERIOD, section).equals(centre.read_bills(PERIOD, section))
    assert other.dataset("bills", PERIOD).to_table().equals(
        centre.dataset("bills", PERIOD).to_table())
    # Each section's outcome names its row group in its bundle's file, and its fold.
    files = {(o.section_id, dataset): (file, part) for o in bundled
             for dataset, file, part in o.files}
    assert [files[(s, "bills")][1] for s in sections[:5]] == [0, 1, 2, 3, 4]
    assert len({files[(s, "history")][0] for s in sections}) == 3


class _FailingBundles:
    """The real data centre, except that a bundle holding ``section`` cannot be written
    (what a full disk or a bad table does to that one write)."""

    def __init__(self, centre: DataCentre, section: str) -> None:
        self._centre, self._section = centre, section

    def __getattr__(self, name: str):
        return getattr(self._centre, name)

    def write_bundle(self, period, bundle, sections):
        if any(section == self._section for section, _, _ in sections):
            raise DataCentreError(f"cannot write {bundle} (section {self._section})")
        return self._centre.write_bundle(period, bundle, sections)


def test_a_section_that_cannot_be_read_or_written_fails_alone_in_its_bundle(centre):
    from pathlib import Path

    from gridfare.billing.runner import bill_sections

    Path(centre.path("accounts", section="S00002")).write_bytes(b"not parquet")
    store = _FailingBundles(centre, "S00004")
    outcomes = bill_sections(store, load_tariff_book(), PERIOD,
                             ["S00001", "S00002", "S00003", "S00004", "S00005"], "run-1")
    assert [o.status for o in outcomes] == ["done", "failed", "done", "failed", "done"]
    assert "S00002" in outcomes[1].error and "S00004" in outcomes[3].error
    assert all(o.seconds >= 0 for o in outcomes)
    # The bundle was written again section by section: the others each in a file.
    assert len({o.files[0][1] for o in outcomes if o.status == "done"}) == 3
    assert outcomes[3].files == ()
    catalog = Catalog(centre.catalog_path)
    catalog.start_run("run-1", PERIOD, ["S00001", "S00003", "S00004", "S00005"], _now())
    catalog.finish_run("run-1", _now(), [o.as_record() for o in outcomes
                                          if o.section_id != "S00002"])
    assert centre.read_bills(PERIOD, "S00003").num_rows == outcomes[2].billed > 0
    assert centre.read_bills(PERIOD, "S00004").num_rows == 0


def test_a_catalog_whose_file_was_replaced_gets_its_tables_again(centre):
    # A ControlServer outlives a data centre deleted and generated again (make demo twice).
    catalog = Catalog(centre.catalog_path)
    catalog.start_run("old", PERIOD, ["S00001"], started_at=_now())
    os.remove(centre.catalog_path)
    catalog.start_run("new", PERIOD, ["S00001"], started_at=_now())
    assert [r.run_id for r in catalog.runs()] == ["new"]


def test_a_start_takes_the_callers_listings_or_lists_them_itself(centre):
    from datetime import datetime

    from gridfare.billing.runner import start_or_resume

    catalog = Catalog(centre.catalog_path)
    clock = lambda: datetime(2026, 11, 1, 8)  # noqa: E731
    listed = start_or_resume(centre, catalog, RunRequest(PERIOD), clock)
    assert listed.sections == centre.sections(PERIOD) == centre.all_sections()
    # Given (the ControlServer lists both at once): a section with accounts and no
    # readings file is billed all the same (its active accounts get exceptions).
    readings = centre.sections(PERIOD)
    given = start_or_resume(centre, catalog, RunRequest(PERIOD), clock,
                            with_readings=readings[1:], with_accounts=readings)
    assert given.sections == readings
    assert catalog.pending_sections(given.run_id) == readings
