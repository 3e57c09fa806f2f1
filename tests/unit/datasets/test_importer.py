"""Importing a utility's readings: good rows load, every bad row is rejected with its line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from datasets.datacentre import DataCentre
from datasets.importer import RULES, import_readings
from datasets.schemas import ACCOUNTS, READINGS, REJECTS
from gridfare.errors import DataCentreError, InvalidInput

PERIOD = "2026-10"
HEADER = (
    "account_id,meter_point_id,period,reading_date,prev_register,cur_register,multiplier,"
    "critical_kwh,peak_kwh,flat_kwh,valley_kwh,max_demand_kw,reactive_kvarh"
)


@pytest.fixture
def dc(tmp_path: Path) -> DataCentre:
    """Accounts 1..4 in S00001 and 5..8 in S00002; S00001 already has a reading for 1."""
    return make_dc(tmp_path)


def make_dc(tmp_path: Path) -> DataCentre:
    """``dc``'s data centre under ``tmp_path / "dc"``."""
    centre = DataCentre(tmp_path / "dc", create=True)
    for section, ids in (("S00001", range(1, 5)), ("S00002", range(5, 9))):
        ids = list(ids)
        n = len(ids)
        centre.write_accounts(
            section,
            pa.table(
                {
                    "account_id": ids,
                    "section_id": [section] * n,
                    "customer_kind": ["residential"] * n,
                    "tariff_code": ["cn-bj-residential-monthly"] * n,
                    "capacity_kva": [None] * n,
                    "pf_standard": [None] * n,
                    "active": [True] * n,
                    "opened_on": [dt.date(2010, 1, 1)] * n,
                },
                schema=ACCOUNTS,
            ),
        )
    existing = pa.table(
        {
            "account_id": [1, 3],
            "meter_point_id": [11, 31],
            "period": [PERIOD, PERIOD],
            "reading_date": [dt.date(2026, 10, 1)] * 2,
            "prev_register": [1.0, 5.0],
            "cur_register": [2.0, 6.0],
            "multiplier": [1, 1],
            **{name: [None, None] for name in READINGS.names[7:]},
        },
        schema=READINGS,
    )
    centre.write_readings(PERIOD, "S00001", existing)
    return centre


GOOD = [
    "1,11,2026-10,2026-10-28,100.00,250.50,1,,,,,,",  # line 2: replaces the existing row
    "2,21,2026-10,2026-10-28,0,10.25,1,,,,,,",  # line 3
    "5,51,2026-10,2026-10-27,1000,1100,40,0,30,40,30,2.5,12.34",  # line 4: TOU, sums
]
BAD = [
    ("6,61,2026-10,2026-10-28,abc,10,1,,,,,,", "unparseable"),
    ("6,62,2026-10,,1,10,1,,,,,,", "missing_value"),
    ("6,63,2026-10,2026-02-30,1,10,1,,,,,,", "unparseable"),
    ("99,991,2026-10,2026-10-28,1,10,1,,,,,,", "unknown_account"),
    ("7,71,2026-11,2026-10-28,1,10,1,,,,,,", "period_mismatch"),
    ("7,72,2026/10,2026-10-28,1,10,1,,,,,,", "bad_period"),
    ("7,73,2026-10,2026-10-28,-1,10,1,,,,,,", "negative_register"),
    ("7,74,2026-10,2026-10-28,1.005,10,1,,,,,,", "register_resolution"),
    ("8,81,2026-10,2026-10-28,1,10,0,,,,,,", "bad_multiplier"),
    ("8,82,2026-10,2026-10-28,1,10,1,,5,,3,,", "tou_split_mismatch"),
    ("2,21,2026-10,2026-10-29,0,10.25,1,,,,,,", "duplicate"),
    ("8,83,2026-10,2026-10-28,1,10,1", "malformed_row"),
]


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_csv_good_rows_load_and_each_bad_row_is_rejected_with_its_line(
    dc: DataCentre, tmp_path: Path
) -> None:
    rows = GOOD + [row for row, _ in BAD]
    source = write_csv(tmp_path / "readings.csv", rows)
    summary = import_readings(dc, source, period=PERIOD)

    assert summary.rows == len(rows)
    assert summary.loaded == 3
    assert summary.rejected == len(BAD)
    assert summary.partitions == ((PERIOD, "S00001"), (PERIOD, "S00002"))
    assert summary.sections == ("S00001", "S00002")
    assert "tou_split_mismatch 1" in summary.describe()
    assert summary.rejects_path == f"{source}.rejects.csv"
    rejects = pacsv.read_csv(summary.rejects_path).cast(REJECTS)
    expected = [(len(GOOD) + 2 + i, rule) for i, (_, rule) in enumerate(BAD)]
    assert list(zip(rejects["line"].to_pylist(), rejects["rule"].to_pylist(), strict=True)) == (
        expected
    )
    assert set(summary.by_rule) == {rule for _, rule in BAD}
    assert set(summary.by_rule) <= set(RULES)
    details = dict(zip(rejects["rule"].to_pylist(), rejects["detail"].to_pylist(), strict=True))
    assert "prev_register" in details["register_resolution"]
    assert "line 3" in details["duplicate"]
    assert "account 99" in details["unknown_account"]
    assert rejects["record"][0].as_py() == BAD[0][0]

    s1 = dc.read_readings(PERIOD, "S00001")
    assert s1["account_id"].to_pylist() == [1, 2, 3]  # 1 replaced, 2 added, 3 kept
    assert s1["cur_register"].to_pylist() == [250.5, 10.25, 6.0]
    s2 = dc.read_readings(PERIOD, "S00002")
    assert s2.to_pylist()[0]["multiplier"] == 40
    assert s2.to_pylist()[0]["reactive_kvarh"] == 12.34
    assert s2.schema == READINGS


def test_reimport_is_idempotent(dc: DataCentre, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "readings.csv", GOOD + [row for row, _ in BAD])
    first = import_readings(dc, source, period=PERIOD)
    before = {s: dc.read_readings(PERIOD, s) for s in dc.sections(PERIOD)}
    rejects_before = Path(first.rejects_path).read_bytes()
    second = import_readings(dc, source, period=PERIOD)
    assert second == first
    for section, table in before.items():
        assert dc.read_readings(PERIOD, section).equals(table)
    assert Path(second.rejects_path).read_bytes() == rejects_before


def test_parquet_input_lines_are_row_index_plus_one(dc: DataCentre, tmp_path: Path) -> None:
    table = pa.table(
        {
            "account_id": [2, 6, 99],
            "meter_point_id": [21, 61, 991],
            "period": [PERIOD] * 3,
            "reading_date": [dt.date(2026, 10, 28)] * 3,
            "prev_register": [1.0, 0.1 + 0.2, 1.0],  # 0.30000000000000004 is finer than 0.01
            "cur_register": [2.5, 3.0, 2.0],
            "multiplier": pa.array([1, 1, 1], pa.int64()),  # a wider type casts fine
            "note": ["a", "b", "c"],  # not a READINGS column: ignored
        }
    )
    source = tmp_path / "readings.parquet"
    pq.write_table(table, source)
    rejects = tmp_path / "out" / "rejects.csv"
    summary = import_readings(dc, source, rejects_path=rejects)
    assert (summary.rows, summary.loaded, summary.rejected) == (3, 1, 2)
    assert summary.ignored_columns == ("note",)
    assert summary.rejects_path == str(rejects)
    got = pacsv.read_csv(rejects)
    assert got["line"].to_pylist() == [2, 3]
    assert got["rule"].to_pylist() == ["register_resolution", "unknown_account"]
    assert dc.read_readings(PERIOD, "S00001")["account_id"].to_pylist() == [1, 2, 3]


def test_parquet_with_string_columns_rejects_only_bad_cells(dc: DataCentre, tmp_path: Path) -> None:
    table = pacsv.read_csv(
        write_csv(tmp_path / "x.csv", [*GOOD[:2], "4,41,2026-10,2026-10-28,x,1,1,,,,,,"]),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(HEADER.split(","), pa.string())
        ),
    )
    source = tmp_path / "strings.parquet"
    pq.write_table(table, source)
    summary = import_readings(dc, source, period=PERIOD)
    assert (summary.loaded, summary.rejected, summary.by_rule) == (2, 1, {"unparseable": 1})


def test_missing_required_column_rejects_the_whole_file(dc: DataCentre, tmp_path: Path) -> None:
    header = HEADER.replace("cur_register,", "")
    source = write_csv(tmp_path / "r.csv", ["1,11,2026-10,2026-10-28,1,1,,,,,,"], header=header)
    with pytest.raises(InvalidInput, match="missing required column 'cur_register'"):
        import_readings(dc, source)
    before = dc.read_readings(PERIOD, "S00001")
    assert before.num_rows == 2  # untouched


def test_period_column_may_come_from_the_argument(dc: DataCentre, tmp_path: Path) -> None:
    header = HEADER.replace("period,", "")
    source = write_csv(tmp_path / "r.csv", ["4,41,2026-10-28,1,2,1,,,,,,"], header=header)
    with pytest.raises(InvalidInput, match="'period'"):
        import_readings(dc, source)
    summary = import_readings(dc, source, period=PERIOD)
    assert summary.loaded == 1
    assert 4 in dc.read_readings(PERIOD, "S00001")["account_id"].to_pylist()


def test_blank_lines_keep_line_numbers(dc: DataCentre, tmp_path: Path) -> None:
    source = tmp_path / "r.csv"
    source.write_text(f"{HEADER}\n{GOOD[1]}\n\n4,41,2026-10,2026-10-28,-5,1,1,,,,,,\n")
    summary = import_readings(dc, source, period=PERIOD)
    assert (summary.rows, summary.loaded, summary.rejected) == (2, 1, 1)
    assert pacsv.read_csv(summary.rejects_path)["line"].to_pylist() == [4]


def test_bad_files_are_clear_errors(dc: DataCentre, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        import_readings(dc, tmp_path / "absent.csv")
    with pytest.raises(InvalidInput, match="cannot read: File name too long"):
        import_readings(dc, "x" * 5000)  # found by the CLI fuzzer: it had escaped as OSError
    other = tmp_path / "r.json"
    other.write_text("{}")
    with pytest.raises(InvalidInput, match="unknown format"):
        import_readings(dc, other)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InvalidInput, match="empty file"):
        import_readings(dc, empty)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"nope")
    with pytest.raises(InvalidInput, match="unreadable Parquet"):
        import_readings(dc, broken)
    with pytest.raises(InvalidInput, match="YYYY-MM"):
        import_readings(dc, write_csv(tmp_path / "ok.csv", GOOD), period="2026-1")


def test_missing_data_centre_is_a_data_centre_error(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "r.csv", GOOD)
    with pytest.raises(DataCentreError, match="missing root"):
        import_readings(DataCentre(tmp_path / "nowhere"), source)
