"""Every reader checks what it reads against the schema and its partition; stray files in
the lake are skipped (dot-names) or refused (anything else), never read as data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from datasets.datacentre import DataCentre
from gridfare.errors import DataCentreError, ForeignData, InvalidInput
from tests.unit.datasets.test_datacentre import (
    accounts_table,
    bills_table,
    legacy_bills,
    readings_table,
)

PERIOD = "2026-10"


@pytest.fixture
def dc(tmp_path: Path) -> DataCentre:
    centre = DataCentre(tmp_path)
    for section in ("S00001", "S00002"):
        centre.write_accounts(section, accounts_table(section))
        centre.write_readings(PERIOD, section, readings_table())
        legacy_bills(centre, PERIOD, section, bills_table(section=section))
    return centre


def _every_reader(dc: DataCentre):
    return {
        "sections": lambda: dc.sections(PERIOD),
        "all_sections": dc.all_sections,
        "section_sizes": lambda: dc.section_sizes(PERIOD),
        "bills dataset": lambda: dc.dataset("bills", PERIOD).to_table(),
        "accounts dataset": lambda: dc.dataset("accounts").to_table(),
        "account_sections": dc.read_account_sections,
        "periods": lambda: dc.periods("bills"),
    }


def test_a_bills_file_under_another_period_is_refused_not_summed(dc: DataCentre) -> None:
    src = Path(dc.path("bills", period=PERIOD, section="S00001"))
    wrong = Path(dc.path("bills", period="2026-09", section="S00001"))
    wrong.parent.mkdir(parents=True)
    shutil.copy(src, wrong)
    with pytest.raises(ForeignData, match=r"period=2026-09.*period is '2026-10'"):
        dc.dataset("bills", "2026-09")
    with pytest.raises(ForeignData, match="period other than '2026-09'"):
        dc.read_bills("2026-09", "S00001")
    # History reads the bills of earlier months: the foreign file is refused there too.
    with pytest.raises(ForeignData, match="2026-09"):
        dc.read_history("S00001", PERIOD)


def test_a_bills_file_under_another_section_is_refused(dc: DataCentre) -> None:
    src = Path(dc.path("bills", period=PERIOD, section="S00001"))
    shutil.copy(src, dc.path("bills", period=PERIOD, section="S00002"))
    with pytest.raises(ForeignData, match="section_id is 'S00001'"):
        dc.dataset("bills", PERIOD)
    with pytest.raises(ForeignData, match="section_id other than 'S00002'"):
        dc.read_bills(PERIOD, "S00002")


def test_a_readings_file_in_bills_is_refused_not_rows_of_nulls(dc: DataCentre) -> None:
    readings = Path(dc.path("readings", period=PERIOD, section="S00001"))
    shutil.copy(readings, dc.path("bills", period=PERIOD, section="S00001"))
    with pytest.raises(ForeignData, match="missing column 'section_id'"):
        dc.dataset("bills", PERIOD)
    with pytest.raises(ForeignData, match="missing column"):
        dc.read_bills(PERIOD, "S00001")


def test_a_file_of_other_types_is_refused(dc: DataCentre) -> None:
    path = dc.path("accounts", section="S00001")
    table = accounts_table("S00001")
    loose = table.set_column(0, "account_id", table["account_id"].cast(pa.int32()))
    pq.write_table(loose, path)
    for read in (lambda: dc.read_accounts("S00001"), lambda: dc.dataset("accounts")):
        with pytest.raises(ForeignData, match="'account_id' is int32, the schema says int64"):
            read()


def test_nulls_in_a_partition_column_of_a_foreign_file_are_refused(dc: DataCentre) -> None:
    path = dc.path("bills", period=PERIOD, section="S00001")
    table = bills_table()
    schema = pa.schema([f.with_nullable(True) for f in table.schema])
    nulls = table.cast(schema).set_column(1, pa.field("period", pa.string()),
                                          pa.array([PERIOD, None]))
    pq.write_table(nulls, path, write_statistics=False)  # no statistics: the column is read
    with pytest.raises(ForeignData, match="1 rows have period other than"):
        dc.dataset("bills", PERIOD)


@pytest.mark.parametrize("stray", [
    "bills/period=2026-10/section=S00001/part-1.parquet",
    "bills/period=2026-10/section=S00001/bills.csv",
    "bills/period=2026-10/notes.txt",
    "bills/period=2026-10/section=S00001/extra/part-0.parquet",
    "bills/period=2026-10/section=S 1/part-0.parquet",
    "bills/period=2026-10/S00003/part-0.parquet",
    "accounts/section=S00001/part-0.parquet.bak",
    "accounts/section=..x/part-0.parquet",
    "readings/period=2026-10/section=S00001/part-0.csv",
])
def test_stray_files_are_refused_naming_them(dc: DataCentre, stray: str) -> None:
    path = Path(dc.root, stray)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"stray")
    dataset = stray.split("/")[0]
    read = {"bills": lambda: dc.dataset("bills", PERIOD), "accounts": dc.all_sections,
            "readings": lambda: dc.sections(PERIOD)}[dataset]
    with pytest.raises(ForeignData, match=f"{Path(stray).name}|{Path(stray).parent.name}"):
        read()


@pytest.mark.parametrize("stray", ["bills/notes.txt", "bills/period=2026-13",
                                   "bills/2026-10"])
def test_stray_entries_beside_the_periods_are_refused(dc: DataCentre, stray: str) -> None:
    path = Path(dc.root, stray)
    if stray.endswith(".txt"):
        path.write_bytes(b"x")
    else:
        path.mkdir()
    with pytest.raises(ForeignData, match=Path(stray).name):
        dc.periods("bills")


def test_dot_names_are_skipped_on_purpose(dc: DataCentre) -> None:
    before = {name: reader() for name, reader in _every_reader(dc).items()
              if name != "section_sizes"}
    for leftover in ("bills/period=2026-10/section=S00001/.part-0.parquet.tmp-123",
                     "bills/period=2026-10/.DS_Store", "accounts/.hidden/part-0.parquet",
                     "bills/.period=2026-11/section=S00001/part-0.parquet"):
        path = Path(dc.root, leftover)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    after = {name: reader() for name, reader in _every_reader(dc).items()
             if name != "section_sizes"}
    assert after == before


@pytest.mark.parametrize("section", ["..", "../S00001", "S00001/../../x", ".hidden", "a b",
                                     "S\x00", "x" * 65, "S00001\n"])
def test_section_ids_cannot_leave_their_partition(dc: DataCentre, section: str) -> None:
    for use in (lambda: dc.read_accounts(section), lambda: dc.read_bills(PERIOD, section),
                lambda: dc.write_accounts(section, accounts_table(section)),
                lambda: dc.path("readings", period=PERIOD, section=section)):
        with pytest.raises(InvalidInput, match="section"):
            use()


@pytest.mark.parametrize("period", ["../2026-10", "2026-10/..", "2026-10\n", "2026-1"])
def test_periods_cannot_leave_their_partition(dc: DataCentre, period: str) -> None:
    for use in (lambda: dc.sections(period), lambda: dc.dataset("bills", period),
                lambda: dc.read_readings(period, "S00001")):
        with pytest.raises(InvalidInput, match="period"):
            use()


def test_unknown_dataset_names_are_refused(dc: DataCentre) -> None:
    for name in ("../bills", "bills/..", "catalog.duckdb", ""):
        with pytest.raises(DataCentreError, match="unknown dataset"):
            dc.dataset(name, PERIOD)


class _CountingOpens(pafs.FileSystemHandler):
    """The local filesystem, counting the opens of each file."""

    def __init__(self) -> None:
        self.local = pafs.LocalFileSystem()
        self.opens: dict[str, int] = {}

    def _count(self, path: str) -> None:
        self.opens[path] = self.opens.get(path, 0) + 1

    def __eq__(self, other): return self is other
    def __ne__(self, other): return self is not other
    def __hash__(self): return id(self)
    def get_type_name(self): return "counting"
    def normalize_path(self, path): return self.local.normalize_path(path)
    def get_file_info(self, paths): return self.local.get_file_info(paths)
    def get_file_info_selector(self, selector): return self.local.get_file_info(selector)
    def create_dir(self, path, recursive): self.local.create_dir(path, recursive=recursive)
    def delete_dir(self, path): self.local.delete_dir(path)
    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)
    def delete_root_dir_contents(self): raise NotImplementedError
    def delete_file(self, path): self.local.delete_file(path)
    def move(self, src, dest): self.local.move(src, dest)
    def copy_file(self, src, dest): self.local.copy_file(src, dest)
    def open_output_stream(self, path, metadata): return self.local.open_output_stream(path)
    def open_append_stream(self, path, metadata): raise NotImplementedError

    def open_input_stream(self, path):
        self._count(path)
        return self.local.open_input_stream(path)

    def open_input_file(self, path):
        self._count(path)
        return self.local.open_input_file(path)


def test_the_lazy_dataset_reads_each_footer_once(dc: DataCentre) -> None:
    import duckdb

    handler = _CountingOpens()
    centre = DataCentre(dc.root, filesystem=pafs.PyFileSystem(handler))
    dataset = centre.dataset("bills", PERIOD)
    # The bills files' opens (not the catalog's, read for the manifest).
    checked = {path: n for path, n in handler.opens.items() if "/bills/" in path}
    assert len(checked) == 2 and set(checked.values()) == {1}
    # Scans (three aggregates, as summary runs) open the files but read no footer again:
    # the whole scan costs no more opens than unchecked ones would.
    relation = duckdb.connect().from_arrow(dataset)
    for _ in range(3):
        assert relation.aggregate("count(*)").fetchall() == [(4,)]
    scans = {path: count - checked[path] for path, count in handler.opens.items()
             if path in checked}
    assert set(scans.values()) == {3}


def test_a_legacy_history_read_for_billing_gives_the_rows_as_stored(tmp_path: Path) -> None:
    # Billing reads the legacy labels as Parquet's dictionary (each distinct one parsed
    # once): the same rows as the file read plainly, an odd label left out as before.
    from datasets.schemas import HISTORY_FOLD, history_months

    centre = DataCentre(tmp_path, create=True)
    history = pa.table({"account_id": pa.array([1, 1, 2, 2, 3], pa.int64()),
                        "period": ["2026-08", "2025-13", "2026-07", "2026-09", "2026-07"],
                        "kwh": [10.0, 99.0, 5.0, 7.0, 1.5]})
    centre.write_history("S00001", history)
    carried = centre.read_history_carry("S00001", PERIOD)
    assert carried.schema == HISTORY_FOLD
    assert carried.sort_by([("account_id", "ascending"), ("month", "ascending")]).equals(
        history_months(centre.read_usage_history("S00001")).sort_by(
            [("account_id", "ascending"), ("month", "ascending")]))
    assert centre.read_history_carry("S00002", PERIOD).num_rows == 0  # no legacy file


@pytest.mark.parametrize("foreign", [
    pa.table({"account_id": pa.array([1], pa.int64()), "period": pa.array([202609]),
              "kwh": [1.0]}),
    pa.table({"account_id": pa.array([1], pa.int64()), "kwh": [1.0]}),
])
def test_a_foreign_legacy_history_is_refused_as_the_plain_reader_refuses_it(
        tmp_path: Path, foreign: pa.Table) -> None:
    centre = DataCentre(tmp_path, create=True)
    centre.write_history("S00001", pa.table({"account_id": pa.array([1], pa.int64()),
                                             "period": ["2026-09"], "kwh": [1.0]}))
    pq.write_table(foreign, centre.path("usage_history", section="S00001"))
    with pytest.raises(ForeignData) as plain:
        centre.read_usage_history("S00001")
    with pytest.raises(ForeignData) as billing:
        centre.read_history_carry("S00001", PERIOD)
    assert str(billing.value) == str(plain.value)
