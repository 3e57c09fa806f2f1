"""Bills and folds a file per bundle, found through the catalog's manifest: a file is
visible exactly when the catalog records its sections done; reruns move a section's rows;
unrecorded files are swept; files of the older section layout get rows once."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from datasets.catalog import Catalog
from datasets.datacentre import DataCentre, bundle_run
from datasets.generator import generate_city
from datasets.schemas import BILLS, HISTORY_FOLD, SectionFiles
from gridfare.billing.request import RunRequest
from gridfare.billing.runner import bill_sections, run_billing
from gridfare.errors import DataCentreError
from gridfare.tariffs import load_tariff_book
from tests.billing_reference import bill_bundled
from tests.unit.datasets.test_datacentre import bills_table

PERIOD = "2026-10"
CRASHED = "2026-10-20261101T080000-0c0d0e"  # a run id of the runner's shape
NOW = datetime(2026, 11, 1, 8, 0)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("manifest") / "dc"
    generate_city(DataCentre(str(root), create=True), accounts=1_200, sections=6,
                  period=PERIOD, through="2026-11", seed=9)
    return root


@pytest.fixture
def centre(template, tmp_path) -> DataCentre:
    return DataCentre(str(shutil.copytree(template, tmp_path / "dc")))


@pytest.fixture(scope="module")
def book():
    return load_tariff_book()


def files_on_disk(centre: DataCentre, period: str = PERIOD) -> set[str]:
    root = Path(centre.root)
    return {str(p.relative_to(root)) for dataset in ("bills", "history")
            for p in (root / dataset / f"period={period}").rglob("part-0.*")}


def named_files(centre: DataCentre, period: str = PERIOD) -> set[str]:
    files = centre.section_files(periods=[period])
    return {file for dataset in ("bills", "history")
            for _, file, _ in files.of_period(dataset, period)}


def view_bills(centre: DataCentre, period: str = PERIOD) -> pa.Table:
    """One period of the catalog's ``bills`` view (refreshed), by section and account."""
    Catalog(centre.catalog_path).refresh_views(centre.view_globs())
    with duckdb.connect(centre.catalog_path, read_only=True) as con:
        table = con.sql(f"SELECT * FROM bills WHERE period = '{period}' "
                        "ORDER BY section_id, account_id").to_arrow_table()
    return table.cast(BILLS).combine_chunks()


def every_read_bills(centre: DataCentre, period: str = PERIOD) -> pa.Table:
    return pa.concat_tables([centre.read_bills(period, s) for s in centre.sections(period)])


def test_a_bundle_is_invisible_until_the_catalog_records_its_sections(tmp_path):
    centre = DataCentre(tmp_path, create=True)
    empty = bills_table(section="S00003", kwh={9: 1.0}).slice(0, 0)
    fold = HISTORY_FOLD.empty_table()
    rows = centre.write_bundle(PERIOD, "r-1-00aa", [
        ("S00001", bills_table(section="S00001"), fold),
        ("S00002", bills_table(section="S00002", kwh={5: 3.0}), fold),
        ("S00003", empty, fold)])
    bills_file = f"bills/period={PERIOD}/bundle=r-1-00aa/part-0.parquet"
    assert [row for row in rows if row[0] == "bills"] == [
        ("bills", PERIOD, "S00001", bills_file, 0), ("bills", PERIOD, "S00002", bills_file, 1),
        ("bills", PERIOD, "S00003", bills_file, -1)]
    assert (tmp_path / bills_file).exists() and bundle_run(bills_file) == "r-1"
    # Renamed into place, not recorded: no reader sees it.
    assert centre.read_bills(PERIOD, "S00001").num_rows == 0
    assert centre.dataset("bills", PERIOD).count_rows() == 0
    catalog = Catalog(centre.catalog_path)
    catalog.start_run("r-1", PERIOD, ["S00001", "S00002", "S00003"], NOW)
    catalog.record_sections("r-1", [
        {"section_id": s, "status": "done",
         "files": [(d, f, p) for d, _, sec, f, p in rows if sec == s]}
        for s in ("S00001", "S00002")])
    assert centre.read_bills(PERIOD, "S00001").equals(bills_table(section="S00001"))
    assert centre.read_bills(PERIOD, "S00002")["account_id"].to_pylist() == [5]
    assert centre.read_bills(PERIOD, "S00003").num_rows == 0  # not recorded yet
    catalog.record_sections("r-1", [{"section_id": "S00003", "status": "done",
                                     "files": [("bills", bills_file, -1)]}])
    assert centre.read_bills(PERIOD, "S00003").equals(BILLS.empty_table())
    assert centre.dataset("bills", PERIOD).to_table()["section_id"].to_pylist() == [
        "S00001", "S00001", "S00002"]
    assert view_bills(centre).to_pylist() == centre.dataset("bills", PERIOD).to_table(
        ).to_pylist()


def test_a_bundle_write_checks_every_table_first_and_names_the_section(tmp_path):
    centre = DataCentre(tmp_path, create=True)
    fold = HISTORY_FOLD.empty_table()
    with pytest.raises(DataCentreError, match=r"section S00002: .*section_id other than"):
        centre.write_bundle(PERIOD, "r-1-00aa", [
            ("S00001", bills_table(section="S00001"), fold),
            ("S00002", bills_table(section="S00001"), fold)])
    assert not (tmp_path / "bills").exists()  # nothing written


def test_a_crash_between_rename_and_commit_is_invisible_and_swept(centre, book):
    catalog = Catalog(centre.catalog_path)
    first = run_billing(centre, catalog, RunRequest(PERIOD))
    before = every_read_bills(centre)
    # A task that wrote its bundle and died before its outcomes were recorded (the run
    # it belonged to is still running: its files are kept until it ends).
    catalog.start_run(CRASHED, PERIOD, centre.sections(PERIOD), NOW)
    reader = centre.reading(catalog.section_files(centre, periods=[]))
    outcomes = bill_sections(reader, book, PERIOD, centre.sections(PERIOD)[:3],
                             CRASHED)
    orphans = {file for o in outcomes for _, file, _ in o.files}
    assert len(orphans) == 2 and orphans <= files_on_disk(centre)
    assert every_read_bills(centre).equals(before)  # no bill doubled nor replaced
    assert view_bills(centre).num_rows == before.num_rows == first.billed
    assert centre.dataset("bills", PERIOD).count_rows() == first.billed
    # Another run's sweep keeps a running run's files...
    run_billing(centre, catalog, RunRequest(PERIOD, sections=["S00006"]))
    assert orphans <= files_on_disk(centre)
    # ...and the crashed run's resume, once it ends, sweeps them: nothing unnamed is left.
    run_billing(centre, catalog, RunRequest(resume_run_id=CRASHED))
    assert not orphans & files_on_disk(centre)
    assert files_on_disk(centre) == named_files(centre)
    assert every_read_bills(centre).drop(["run_id"]).equals(before.drop(["run_id"]))


def test_a_rerun_of_some_sections_moves_their_rows_and_keeps_the_other_bundle(centre, book):
    sections = centre.sections(PERIOD)
    bill_bundled(centre, book, PERIOD, run_id="2026-10-one")  # one bundle of 6
    (first_file,) = {f for f in files_on_disk(centre) if f.startswith("bills/")}
    before = every_read_bills(centre)
    bill_bundled(centre, book, PERIOD, sections=sections[1:3], run_id="2026-10-two")
    # The first bundle still holds the other four sections; the two moved to a new file.
    assert first_file in files_on_disk(centre) and files_on_disk(centre) == named_files(centre)
    files = centre.section_files(periods=[PERIOD])
    assert {files.get("bills", PERIOD, s)[0] for s in sections[1:3]} != {first_file}
    assert [files.get("bills", PERIOD, s) for s in (sections[0], sections[3])] == [
        (first_file, 0), (first_file, 3)]
    after = every_read_bills(centre)
    assert after.drop(["run_id"]).equals(before.drop(["run_id"]))  # reruns: the same bills
    assert set(centre.read_bills(PERIOD, sections[1])["run_id"].to_pylist()) == {
        "2026-10-two"}
    # The stale row groups of the first file are counted by no reader.
    whole = centre.dataset("bills", PERIOD).to_table()
    assert whole.num_rows == after.num_rows and whole.equals(after)
    assert view_bills(centre).to_pylist() == after.to_pylist()
    # The other four billed again: the first file is named by nobody, and swept.
    bill_bundled(centre, book, PERIOD, sections=[sections[0], *sections[3:]],
                 run_id="2026-10-three")
    assert first_file not in files_on_disk(centre)
    assert every_read_bills(centre).drop(["run_id"]).equals(before.drop(["run_id"]))
    # The next period reads its history through the moved folds: the same as the bills.
    later = bill_bundled(centre, book, "2026-11", run_id="2026-11-one")
    assert all(o.status == "done" for o in later)
    for section in sections:
        bound = centre._bound([section])
        fold = bound._read_fold(PERIOD, section)
        slow = bound._history_from_bills(section, ["2025-11", "2025-12", "2026-01",
                                                   "2026-02", "2026-03", "2026-04",
                                                   "2026-05", "2026-06", "2026-07",
                                                   "2026-08", "2026-09", PERIOD])
        key = [("account_id", "ascending"), ("month", "ascending"), ("kwh", "ascending")]
        assert fold.sort_by(key).equals(slow.sort_by(key).select(HISTORY_FOLD.names))


def test_files_of_the_section_layout_get_manifest_rows_once(centre, book):
    # A data centre of before bundles: a bills file and a fold file a section.
    reference = bill_bundled(centre, book, PERIOD, run_id="2026-10-ref")
    assert all(o.status == "done" for o in reference)
    stored = {s: (centre.read_bills(PERIOD, s), centre._bound([s])._read_fold(PERIOD, s))
              for s in centre.sections(PERIOD)}
    shutil.rmtree(Path(centre.root, "bills"))
    shutil.rmtree(Path(centre.root, "history"))
    Path(centre.catalog_path).unlink()
    for section, (bills, fold) in stored.items():
        centre._write("bills", bills, period=PERIOD, section=section)
        centre._write("history", fold, period=PERIOD, section=section)
    # Readers find them before any writer migrated them (the same rows, read from the
    # layout), and create nothing.
    assert centre.read_bills(PERIOD, "S00002").equals(stored["S00002"][0])
    assert centre.dataset("bills", PERIOD).count_rows() == sum(
        b.num_rows for b, _ in stored.values())
    assert not Path(centre.catalog_path).exists()
    # A writer migrates once; a section billed again moves to a bundle and its old file
    # is swept; the others are read from theirs.
    catalog = Catalog(centre.catalog_path)
    assert catalog.migrate(centre) == 12 and catalog.migrate(centre) == 0
    run_billing(centre, catalog, RunRequest(PERIOD, sections=["S00001"]))
    files = catalog.section_files(centre, periods=[PERIOD])
    assert "bundle=" in files.get("bills", PERIOD, "S00001")[0]
    assert files.get("bills", PERIOD, "S00002") == (
        f"bills/period={PERIOD}/section=S00002/part-0.parquet", 0)
    assert not Path(centre.path("bills", period=PERIOD, section="S00001")).exists()
    assert Path(centre.path("bills", period=PERIOD, section="S00002")).exists()
    for section, (bills, _) in stored.items():
        assert centre.read_bills(PERIOD, section).drop(["run_id"]).equals(
            bills.drop(["run_id"]))
    # The next period's history comes from the migrated folds as from the new ones.
    assert all(o.status == "done"
               for o in bill_bundled(centre, book, "2026-11", run_id="2026-11-m"))
    for period in (PERIOD, "2026-11"):
        assert view_bills(centre, period).to_pylist() == every_read_bills(
            centre, period).to_pylist()


def test_the_rows_a_task_is_sent_cross_a_process_whole():
    import pickle

    rows = [("bills", PERIOD, "S00001", "bills/a", 0), ("history", PERIOD, "S00001",
                                                          "history/a", 0),
            ("bills", PERIOD, "S00002", "bills/a", -1)]
    files = SectionFiles(rows)
    assert pickle.loads(pickle.dumps(files)) == files
    assert files.only(["S00002"]).rows() == [rows[2]]
    assert SectionFiles([*rows, ("bills", PERIOD, "S00001", "bills/b", 1)]).get(
        "bills", PERIOD, "S00001") == ("bills/b", 1)  # the last row of a key stands
