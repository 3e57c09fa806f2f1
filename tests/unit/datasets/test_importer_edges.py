"""The importer's edges: outputs checked before anything is merged, unreadable lines are
rejected lines, quantities bounded, meters belong to one account."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.csv as pacsv
import pytest

from datasets.datacentre import DataCentre
from datasets.importer import MAX_LINE_BYTES, import_readings
from gridfare.errors import DataCentreError, UnsafeOutputPath
from gridfare.tariffs import load_tariff_book
from tests.unit.datasets.test_importer import GOOD, HEADER, PERIOD, dc, write_csv

__all__ = ["dc"]  # the fixture, shared with test_importer


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def rejects_of(path: str | Path) -> list[tuple[int, str, str]]:
    table = pacsv.read_csv(path)
    return list(zip(table["line"].to_pylist(), table["rule"].to_pylist(),
                    table["detail"].to_pylist(), strict=True))


def test_rejects_equal_to_or_linked_to_the_source_are_refused(dc: DataCentre, tmp_path):
    source = write_csv(tmp_path / "r.csv", GOOD)
    before, text = snapshot(Path(dc.root)), source.read_bytes()
    os.link(source, tmp_path / "hard.csv")
    (tmp_path / "soft.csv").symlink_to(source)
    for rejects in (source, tmp_path / "hard.csv", tmp_path / "soft.csv",
                    tmp_path / "." / "r.csv"):
        with pytest.raises(UnsafeOutputPath, match="source"):
            import_readings(dc, source, rejects_path=rejects)
    inside = Path(dc.root) / "readings" / "rejects.csv"
    with pytest.raises(UnsafeOutputPath, match="inside the data centre"):
        import_readings(dc, source, rejects_path=inside)
    with pytest.raises(UnsafeOutputPath, match="not a regular file"):
        import_readings(dc, source, rejects_path=tmp_path)
    assert source.read_bytes() == text
    assert snapshot(Path(dc.root)) == before


def test_an_unwritable_rejects_path_changes_nothing(dc: DataCentre, tmp_path):
    source = write_csv(tmp_path / "r.csv", GOOD)
    before = snapshot(Path(dc.root))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(UnsafeOutputPath, match=r"cannot be used|cannot write"):
        import_readings(dc, source, rejects_path=blocker / "rejects.csv")
    assert snapshot(Path(dc.root)) == before


def test_an_unwritable_partition_changes_nothing(dc: DataCentre, tmp_path):
    source = write_csv(tmp_path / "r.csv", GOOD)  # sections S00001 and S00002
    before = snapshot(Path(dc.root))
    (Path(dc.root) / "readings" / f"period={PERIOD}" / "section=S00002").write_text("x")
    before = snapshot(Path(dc.root))
    with pytest.raises(DataCentreError,
                       match=r"cannot read|nothing was imported|not a readings file"):
        import_readings(dc, source)
    assert snapshot(Path(dc.root)) == before
    assert not Path(f"{source}.rejects.csv").exists()


def test_unreadable_lines_are_rejected_lines_and_the_rest_goes_on(dc: DataCentre, tmp_path):
    lines = [HEADER.encode(), GOOD[0].encode(),
             b"2,21,2026-10,2026-10-28,0,10.25,1,,,,,,\xff",  # line 3: not UTF-8
             b"4,41,2026-10,2026-10-28,0," + b"9" * MAX_LINE_BYTES + b",1,,,,,,",  # line 4
             b'4,42,"2026-10,2026-10-28,0,1,1,,,,,,',  # line 5: a quote left open
             GOOD[2].encode() + b"\r",  # line 6: CRLF is fine
             b"4,43,2026-10,2026-10-28,0,1,\r1,,,,,,",  # line 7: a lone CR
             b"4,44,2026-10,2026-10-28,0,+15,+1,,,,,,"]  # line 8: a '+' sign is fine
    source = tmp_path / "r.csv"
    source.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")
    summary = import_readings(dc, source, period=PERIOD)
    assert summary.loaded == 3
    got = rejects_of(summary.rejects_path)
    assert [(line, rule) for line, rule, _ in got] == [
        (3, "unreadable_line"), (4, "unreadable_line"), (5, "unreadable_line"),
        (7, "unreadable_line")]
    assert "UTF-8" in got[0][2] and "longer" in got[1][2]
    assert 15.0 in dc.read_readings(PERIOD, "S00001")["cur_register"].to_pylist()


def test_quantities_beyond_the_bounds_are_rejected_by_name(dc: DataCentre, tmp_path):
    rows = ["2,21,2026-10,2026-10-28,0,67471631579040.24,2734,,,,,,",
            "3,31,2026-10,2026-10-28,0,1e300,1,,,,,,",
            "4,41,2026-10,2026-10-28,0,1,1,,,,,1e14,",
            "5,51,2026-10,2026-10-28,-0,1,1,,,,,,"]
    source = write_csv(tmp_path / "r.csv", rows)
    summary = import_readings(dc, source, bounds=load_tariff_book().bounds)
    got = rejects_of(summary.rejects_path)
    assert [(line, rule) for line, rule, _ in got] == [(2, "out_of_range"), (3, "out_of_range"),
                                                      (4, "out_of_range")]
    assert "multiplier 2734" in got[0][2] and "cur_register" in got[1][2]
    assert "max_demand_kw" in got[2][2]
    stored = dc.read_readings(PERIOD, "S00002").to_pylist()
    assert [(r["account_id"], str(r["prev_register"])) for r in stored] == [(5, "0.0")]


def test_meters_belong_to_one_account(dc: DataCentre, tmp_path):
    # dc: account 1 has meter 11, account 3 meter 31 (S00001, this period).
    rows = ["2,11,2026-10,2026-10-28,0,1,1,,,,,,",  # 2: account 1's meter
            "2,-1,2026-10,2026-10-28,0,1,1,,,,,,",  # 3: below 1
            "1,12,2026-10,2026-10-28,0,1,1,,,,,,",  # 4: a second meter with meter 11's read
            "3,32,2026-11,2026-11-28,0,1,1,,,,,,",  # 5: new meter, no read of 31 in 2026-11
            "5,51,2026-10,2026-10-28,0,1,1,,,,,,",  # 6: a first meter
            "6,51,2026-10,2026-10-28,0,1,1,,,,,,"]  # 7: account 5's, from line 6
    source = write_csv(tmp_path / "r.csv", rows)
    summary = import_readings(dc, source)
    got = rejects_of(summary.rejects_path)
    assert [(line, rule) for line, rule, _ in got] == [
        (2, "foreign_meter"), (3, "bad_meter"), (5, "unknown_meter"), (7, "foreign_meter")]
    assert "account 1" in got[0][2] and "line 6" in got[3][2]
    assert summary.loaded == 2
