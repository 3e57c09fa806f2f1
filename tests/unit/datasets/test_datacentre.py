"""The Parquet data centre: layout, round trips, atomic and idempotent writes, ENOSPC."""

from __future__ import annotations

import datetime as dt
import errno
import io
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from datasets.datacentre import (
    DataCentre,
    check_period,
    periods_before,
    shift_period,
)
from datasets.schemas import (
    ACCOUNTS,
    BILLS,
    CHARGE_LINES,
    READINGS,
    USAGE_HISTORY,
)
from gridfare.errors import DataCentreError, DataCentreFull, InvalidInput

PERIOD = "2026-10"


def accounts_table(section: str = "S00001", ids: tuple[int, ...] = (1, 2, 3)) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "account_id": list(ids),
            "section_id": [section] * n,
            "customer_kind": ["residential"] * n,
            "tariff_code": ["cn-bj-residential-monthly"] * n,
            "capacity_kva": [None] * n,
            "pf_standard": [None] * n,
            "active": [True] * n,
            "opened_on": [dt.date(2001, 1, 1)] * n,
        },
        schema=ACCOUNTS,
    )


def readings_table(period: str = PERIOD, ids: tuple[int, ...] = (1, 2)) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "account_id": list(ids),
            "meter_point_id": [i * 10 + 1 for i in ids],
            "period": [period] * n,
            "reading_date": [dt.date(2026, 10, 28)] * n,
            "prev_register": [100.0] * n,
            "cur_register": [250.5] * n,
            "multiplier": [1] * n,
            "critical_kwh": [None] * n,
            "peak_kwh": [None] * n,
            "flat_kwh": [None] * n,
            "valley_kwh": [None] * n,
            "max_demand_kw": [None] * n,
            "reactive_kvarh": [None] * n,
        },
        schema=READINGS,
    )


def bills_table(
    period: str = PERIOD, section: str = "S00001", kwh: dict[int, float] | None = None
) -> pa.Table:
    kwh = kwh or {1: 150.5, 2: 99.0}
    n = len(kwh)
    columns: dict[str, list] = {
        "account_id": list(kwh),
        "period": [period] * n,
        "section_id": [section] * n,
        "tariff_code": ["cn-bj-residential-monthly"] * n,
        "kwh": list(kwh.values()),
        "power_factor": [None] * n,
    }
    for line in CHARGE_LINES:
        columns[line] = [100] * n
    columns["total_fen"] = [100 * len(CHARGE_LINES)] * n
    columns["run_id"] = ["run-1"] * n
    return pa.table(columns, schema=BILLS)


def legacy_bills(dc: DataCentre, period: str, section: str, table: pa.Table) -> int:
    """A bills file of the older layout (``section=`` directories, a file a section), as a
    data centre from before bundles holds it: readers find it through the manifest rows
    the migration gives it (or, before that, the same rows read from the layout)."""
    return dc._write("bills", table, period=period, section=section)


def visible_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# ------------------------------------------------------------------------- periods
def test_period_helpers() -> None:
    assert shift_period("2026-01", -1) == "2025-12"
    assert shift_period("2026-12", 1) == "2027-01"
    assert periods_before("2026-02", 3) == ["2025-11", "2025-12", "2026-01"]
    with pytest.raises(InvalidInput, match="YYYY-MM"):
        check_period("2026-13")


# ------------------------------------------------------------------------- layout
def test_layout_paths_and_glob(tmp_path: Path) -> None:
    dc = DataCentre(tmp_path)
    assert dc.uri == str(tmp_path)
    assert dc.is_local
    assert dc.catalog_path == f"{tmp_path}/catalog.duckdb"
    assert dc.path("bills", period=PERIOD, section="S00001") == (
        f"{tmp_path}/bills/period=2026-10/section=S00001/part-0.parquet"
    )
    assert dc.glob("bills") == f"{tmp_path}/bills/*/*/*.parquet"
    assert dc.glob("accounts") == f"{tmp_path}/accounts/*/*.parquet"
    assert set(dc.view_globs()) == {"accounts", "readings", "usage_history", "bills",
                                    "tariff_comparisons"}
    with pytest.raises(DataCentreError, match="unknown dataset"):
        dc.glob("nope")
    with pytest.raises(DataCentreError, match="needs a period"):
        dc.path("readings", section="S00001")


def test_file_uri_and_non_local_glob(tmp_path: Path) -> None:
    dc = DataCentre(f"file://{tmp_path}")
    dc.write_accounts("S00001", accounts_table())
    assert dc.read_accounts("S00001").num_rows == 3
    wrapped = DataCentre(str(tmp_path), filesystem=pafs.PyFileSystem(_Handler()))
    assert wrapped.glob("bills") is None
    assert wrapped.view_globs() == {}
    assert wrapped.read_accounts("S00001").num_rows == 3


def test_duckdb_reads_the_glob_with_hive_partitioning(tmp_path: Path) -> None:
    dc = DataCentre(tmp_path)
    for section in ("S00001", "S00002"):
        legacy_bills(dc, PERIOD, section, bills_table(section=section))
    query = (
        f"select section, period, count(*) from read_parquet('{dc.glob('bills')}', "
        "hive_partitioning=true) group by all order by 1"
    )
    assert duckdb.sql(query).fetchall() == [("S00001", PERIOD, 2), ("S00002", PERIOD, 2)]


# ------------------------------------------------------------------------- round trips
def test_round_trip_every_dataset(tmp_path: Path) -> None:
    dc = DataCentre(tmp_path)
    history = pa.table(
        {"account_id": [1, 1], "period": ["2026-08", "2026-09"], "kwh": [10.0, 12.5]},
        schema=USAGE_HISTORY,
    )
    dc.write_accounts("S00001", accounts_table())
    dc.write_readings(PERIOD, "S00001", readings_table())
    dc.write_history("S00001", history)
    written = legacy_bills(dc, PERIOD, "S00001", bills_table())

    assert dc.read_accounts("S00001").equals(accounts_table())
    assert dc.read_readings(PERIOD, "S00001").equals(readings_table())
    assert dc.read_usage_history("S00001").equals(history)
    assert dc.read_bills(PERIOD, "S00001").equals(bills_table())
    assert written == Path(dc.path("bills", period=PERIOD, section="S00001")).stat().st_size
    assert dc.sections(PERIOD) == ["S00001"]
    assert dc.all_sections() == ["S00001"]
    assert dc.periods("readings") == [PERIOD]
    assert not [name for name in visible_files(tmp_path) if ".tmp-" in name]


def test_writes_cast_to_the_schema_and_name_a_bad_column(tmp_path: Path) -> None:
    dc = DataCentre(tmp_path)
    loose = readings_table().cast(
        pa.schema([f.with_type(pa.int64()) if f.name == "multiplier" else f for f in READINGS])
    )
    dc.write_readings(PERIOD, "S00001", loose)
    assert dc.read_readings(PERIOD, "S00001").schema == READINGS

    bad = readings_table().set_column(4, "prev_register", pa.array(["x", "y"]))
    with pytest.raises(DataCentreError, match="readings: column 'prev_register'"):
        dc.write_readings(PERIOD, "S00001", bad)
    with pytest.raises(DataCentreError, match="missing column 'period'"):
        dc.write_readings(PERIOD, "S00001", readings_table().drop_columns(["period"]))
    with pytest.raises(DataCentreError, match="rows have period other than"):
        dc.write_readings("2026-11", "S00001", readings_table())
    with pytest.raises(DataCentreError, match="section_id other than"):
        dc.write_accounts("S00002", accounts_table())


def test_parquet_bytes_are_deterministic(tmp_path: Path) -> None:
    table = bills_table()
    first = DataCentre(tmp_path / "a", create=True)
    second = DataCentre(tmp_path / "b", create=True)
    legacy_bills(first, PERIOD, "S00001", table)
    legacy_bills(second, PERIOD, "S00001", table)
    a = Path(first.path("bills", period=PERIOD, section="S00001")).read_bytes()
    b = Path(second.path("bills", period=PERIOD, section="S00001")).read_bytes()
    assert a == b
    assert pq.ParquetFile(io.BytesIO(a)).metadata.row_group(0).column(0).compression == "SNAPPY"


def test_rerun_replaces_not_duplicates(tmp_path: Path) -> None:
    dc = DataCentre(tmp_path)
    for _ in range(3):
        legacy_bills(dc, PERIOD, "S00001", bills_table())
    assert dc.read_bills(PERIOD, "S00001").num_rows == 2
    legacy_bills(dc, PERIOD, "S00001", bills_table(kwh={7: 1.0}))
    assert dc.read_bills(PERIOD, "S00001")["account_id"].to_pylist() == [7]
    assert visible_files(tmp_path) == ["bills/period=2026-10/section=S00001/part-0.parquet"]


def test_whole_dataset_reads_every_section_in_order(tmp_path: Path) -> None:
    dc = DataCentre(tmp_path, create=True)
    assert dc.dataset("bills", PERIOD).to_table().equals(BILLS.empty_table())
    for section in ("S00002", "S00001"):
        legacy_bills(dc, PERIOD, section, bills_table(section=section))
        dc.write_accounts(section, accounts_table(section, ids=(int(section[-1]),)))
    bills = dc.dataset("bills", PERIOD).to_table()
    assert bills.schema == BILLS
    assert bills["section_id"].to_pylist() == ["S00001"] * 2 + ["S00002"] * 2
    assert dc.dataset("accounts").to_table()["account_id"].to_pylist() == [1, 2]
    with pytest.raises(DataCentreError, match="needs a period"):
        dc.dataset("bills")
    with pytest.raises(DataCentreError, match="has no period"):
        dc.dataset("accounts", PERIOD)


# ------------------------------------------------------------------------- missing data
def test_missing_files_read_as_empty_tables(tmp_path: Path) -> None:
    dc = DataCentre(tmp_path, create=True)
    assert dc.read_readings(PERIOD, "S09999").schema == READINGS
    assert dc.read_readings(PERIOD, "S09999").num_rows == 0
    assert dc.read_bills(PERIOD, "S00001").equals(BILLS.empty_table())
    assert dc.read_accounts("S00001").equals(ACCOUNTS.empty_table())
    assert dc.read_history("S00001", PERIOD).equals(USAGE_HISTORY.empty_table())
    assert dc.sections(PERIOD) == []
    assert dc.all_sections() == []


def test_missing_root_is_an_error_naming_the_uri(tmp_path: Path) -> None:
    dc = DataCentre(tmp_path / "nowhere")
    for read in (
        lambda: dc.write_accounts("S00001", accounts_table()),
        lambda: dc.dataset("bills", PERIOD).to_table(),
        lambda: dc.read_readings(PERIOD, "S00001"),
        lambda: dc.sections(PERIOD),
        lambda: dc.all_sections(),
        lambda: dc.read_history("S00001", PERIOD),
    ):
        with pytest.raises(DataCentreError, match="nowhere"):
            read()
    assert not (tmp_path / "nowhere").exists()
    DataCentre(tmp_path / "nowhere", create=True).write_accounts("S00001", accounts_table())
    assert dc.read_accounts("S00001").num_rows == 3


def test_corrupt_file_is_a_data_centre_error(tmp_path: Path) -> None:
    dc = DataCentre(tmp_path)
    path = Path(dc.path("accounts", section="S00001"))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not parquet")
    with pytest.raises(DataCentreError, match="cannot read"):
        dc.read_accounts("S00001")


# ------------------------------------------------------------------------- history
def test_read_history_bill_beats_usage_history(tmp_path: Path) -> None:
    dc = DataCentre(tmp_path)
    dc.write_history(
        "S00001",
        pa.table(
            {
                "account_id": [1, 1, 1, 2, 1],
                "period": ["2025-09", "2025-10", "2026-09", "2026-09", "2026-10"],
                "kwh": [1.0, 2.0, 3.0, 4.0, 5.0],
            },
            schema=USAGE_HISTORY,
        ),
    )
    # A bill for 2026-09 replaces account 1's legacy figure; account 3 exists only in bills.
    legacy_bills(dc,
        "2026-09",
        "S00001",
        bills_table("2026-09", kwh={1: 30.0, 3: 60.0}),
    )
    history = dc.read_history("S00001", PERIOD)
    assert history.schema == USAGE_HISTORY
    assert history.to_pylist() == [
        {"account_id": 1, "period": "2025-10", "kwh": 2.0},
        {"account_id": 1, "period": "2026-09", "kwh": 30.0},
        {"account_id": 2, "period": "2026-09", "kwh": 4.0},
        {"account_id": 3, "period": "2026-09", "kwh": 60.0},
    ]
    assert dc.read_history("S00001", PERIOD, months=1).num_rows == 3
    assert dc.read_history("S00001", PERIOD, months=0).num_rows == 0
    unordered = dc.read_history("S00001", PERIOD, ordered=False)
    assert unordered.schema == USAGE_HISTORY
    key = lambda row: (row["account_id"], row["period"])  # noqa: E731
    assert sorted(unordered.to_pylist(), key=key) == history.to_pylist()


def test_a_table_of_exactly_the_schema_still_has_its_non_nullable_columns_checked(
        tmp_path: Path) -> None:
    dc = DataCentre(tmp_path)
    table = accounts_table()
    with_null = table.set_column(3, ACCOUNTS.field("tariff_code"),
                                 pa.array(["a", None, "c"], pa.string()))
    assert with_null.schema.equals(ACCOUNTS)  # Arrow keeps the flag, not the promise
    with pytest.raises(DataCentreError, match="'tariff_code' has 1 nulls"):
        dc.write_accounts("S00001", with_null)
    with_metadata = table.replace_schema_metadata({"pandas": "{}"})
    dc.write_accounts("S00001", with_metadata)
    assert pq.read_schema(dc.path("accounts", section="S00001")).metadata is None or (
        b"pandas" not in pq.read_schema(dc.path("accounts", section="S00001")).metadata)


# ------------------------------------------------------------------------- ENOSPC
class _FailingStream(io.RawIOBase):
    """A local file that fails with ENOSPC once ``budget`` bytes have been written."""

    def __init__(self, path: str, budget: int | None):
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._budget = budget
        self._written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        if self._budget is not None and self._written + len(data) > self._budget:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._written += len(data)
        return self._file.write(data)

    def close(self) -> None:
        self._file.close()
        super().close()


class _Handler(pafs.FileSystemHandler):
    """LocalFileSystem, except that output streams fill the disk after ``budget`` bytes."""

    def __init__(self, budget: int | None = None):
        self.local = pafs.LocalFileSystem()
        self.budget = budget

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __hash__(self) -> int:
        return id(self)

    def get_type_name(self) -> str:
        return "enospc-test"

    def normalize_path(self, path):
        return self.local.normalize_path(path)

    def get_file_info(self, paths):
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.local.get_file_info(selector)

    def create_dir(self, path, recursive):
        self.local.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self.local.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        raise NotImplementedError

    def delete_file(self, path):
        self.local.delete_file(path)

    def move(self, src, dest):
        self.local.move(src, dest)

    def copy_file(self, src, dest):
        self.local.copy_file(src, dest)

    def open_input_stream(self, path):
        return self.local.open_input_stream(path)

    def open_input_file(self, path):
        return self.local.open_input_file(path)

    def open_output_stream(self, path, metadata):
        return pa.PythonFile(_FailingStream(path, self.budget), mode="w")

    def open_append_stream(self, path, metadata):
        raise NotImplementedError


@pytest.mark.parametrize("budget", [0, 64, 4000])  # 4000: more than the good file's bytes
def test_enospc_raises_full_and_leaves_nothing_partial(tmp_path: Path, budget: int) -> None:
    handler = _Handler()
    dc = DataCentre(str(tmp_path), filesystem=pafs.PyFileSystem(handler))
    good_bills = bills_table()
    legacy_bills(dc, PERIOD, "S00001", good_bills)
    before = {name: (tmp_path / name).read_bytes() for name in visible_files(tmp_path)}

    handler.budget = budget
    bigger = bills_table(kwh={i: float(i) for i in range(1, 500)})
    with pytest.raises(DataCentreFull, match=r"no space left writing .*/bills/") as caught:
        legacy_bills(dc, PERIOD, "S00001", bigger)
    assert caught.value.__cause__ is not None
    after = {name: (tmp_path / name).read_bytes() for name in visible_files(tmp_path)}
    assert after == before  # no temp file, no partial part-0, the good file intact
    handler.budget = None
    assert dc.read_bills(PERIOD, "S00001").equals(good_bills)


def test_enospc_on_a_new_partition_leaves_no_file(tmp_path: Path) -> None:
    dc = DataCentre(str(tmp_path), filesystem=pafs.PyFileSystem(_Handler(budget=10)))
    with pytest.raises(DataCentreFull):
        dc.write_readings(PERIOD, "S00001", readings_table())
    assert visible_files(tmp_path) == []
    assert dc.sections(PERIOD) == []


def test_other_write_failures_are_data_centre_errors(tmp_path: Path) -> None:
    class Broken(_Handler):
        def move(self, src, dest):
            raise OSError(errno.EACCES, "Permission denied")

    dc = DataCentre(str(tmp_path), filesystem=pafs.PyFileSystem(Broken()))
    with pytest.raises(DataCentreError, match="cannot write") as caught:
        dc.write_accounts("S00001", accounts_table())
    assert not isinstance(caught.value, DataCentreFull)
    assert visible_files(tmp_path) == []


def test_section_sizes_are_the_readings_bytes(tmp_path):
    from datasets.generator import generate_city

    dc = DataCentre(str(tmp_path / "dc"), create=True)
    generate_city(dc, accounts=300, sections=3, period=PERIOD, seed=1)
    sizes = dc.section_sizes(PERIOD)
    assert sorted(sizes) == dc.sections(PERIOD)
    for section, size in sizes.items():
        assert size == (tmp_path / "dc" / "readings" / f"period={PERIOD}" /
                        f"section={section}" / "part-0.parquet").stat().st_size


def test_a_tariff_comparison_is_replaced_whole_and_read_back(tmp_path: Path) -> None:
    import numpy as np

    from gridfare.tariffs import load_tariff_book
    from gridfare.tariffs.compare import compare_profiles

    dc = DataCentre(tmp_path)
    tariffs = [load_tariff_book()["cn-zj-residential-tou"]]
    load = np.full((2, 8760), 1_000, dtype=np.int64)
    table = compare_profiles(tariffs, ["a", "b"], load, 2026, "c-1")
    dc.write_comparison("c-1", table)
    first = (tmp_path / "tariff_comparisons/comparison=c-1/part-0.parquet").read_bytes()
    dc.write_comparison("c-1", table)  # a rerun replaces, byte for byte
    assert (tmp_path / "tariff_comparisons/comparison=c-1/part-0.parquet").read_bytes() == first
    assert dc.read_comparison("c-1").equals(table)
    assert dc.comparisons() == ["c-1"]
    with pytest.raises(DataCentreError, match="comparison_id other than 'c-2'"):
        dc.write_comparison("c-2", table)
    with pytest.raises(InvalidInput, match="not a valid section id"):
        dc.write_comparison("../x", table)


def test_a_path_that_is_not_utf8_is_refused_in_one_line(tmp_path: Path) -> None:
    # What a shell passes for the bytes ff fe (os.fsdecode): pyarrow could not encode it.
    with pytest.raises(DataCentreError, match=r"'.*\\udcff\\udcfe': the path holds bytes "
                                              "that are not UTF-8") as refused:
        DataCentre(f"{tmp_path}/\udcff\udcfe").require()
    assert "\n" not in str(refused.value)
