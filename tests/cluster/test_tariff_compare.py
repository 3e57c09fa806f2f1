"""rayjobs.tariff_compare on a real local Ray cluster: the table, its rows, bad input."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import gridfare
from datasets.profiles import PROFILES, generate_profiles
from gridfare.tariffs import load_tariff_book
from gridfare.tariffs.hourly_bill import bill_hourly
from gridfare.tariffs.urdb import load_urdb

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]
SAMPLE = str(files("datasets") / "samples" / "urdb" / "sample-export.json")
ARGS = ["--year", "2026", "--urdb", SAMPLE, "--cn", "cn-bj-commercial-tou"]


def test_profiles_by_tariffs_stored_and_read_through_the_api(ray_cluster, tmp_path, capsys):
    from rayjobs.tariff_compare import main

    centre = str(tmp_path / "dc")
    (tmp_path / "dc").mkdir()
    args = ["--datacentre", centre, "--comparison", "c1", "--generate", "250", "--seed", "5",
            "--chunk", "100", *ARGS]
    assert main(args) == 0
    assert "250 profiles x 6 tariffs = 1,500 annual bills in 3 tasks" in capsys.readouterr().out
    table = gridfare.connect(centre).tariff_comparison("c1").order(
        "profile_id, tariff").to_arrow_table()
    assert table.num_rows == 1500
    # A row is bill_hourly of that profile under that tariff.
    ids, load = generate_profiles(250, 2026, seed=5)
    tariffs = [*load_urdb(SAMPLE), load_tariff_book()["cn-bj-commercial-tou"]]
    for k in (0, 4, 249):
        rows = table.filter(pa.compute.equal(table["profile_id"], ids[k])).to_pylist()
        for row, tariff in zip(rows, sorted(tariffs, key=lambda t: t.code), strict=True):
            bill = bill_hourly(tariff, load[k] / 1000, 2026)
            assert (row["tariff"], row["total_minor"]) == (tariff.code, bill.total)
            assert row["energy_minor"] == sum(m.energy for m in bill.months)
        usd = [row for row in rows if row["currency"] == "USD"]
        cheapest = min(usd, key=lambda row: row["total_minor"])
        assert cheapest["rank"] == 1 and sorted(r["rank"] for r in usd) == [1, 2, 3, 4, 5]
    # A rerun (other chunking) writes the same file.
    path = tmp_path / "dc/tariff_comparisons/comparison=c1/part-0.parquet"
    first = path.read_bytes()
    assert main([*args[:-len(ARGS) - 2], "--chunk", "60", *ARGS]) == 0
    assert path.read_bytes() == first


@pytest.mark.parametrize(("bad", "words"), [
    ("nan", "profile p1: hour 77: load nan is not a finite number"),
    ("negative", "profile p1: hour 77: load -1.0 kWh is negative"),
    ("capacity", "cn-bj-industrial-two-part needs a contracted capacity"),
])
def test_bad_input_is_one_line_and_writes_nothing(ray_cluster, tmp_path, capsys, bad, words):
    from rayjobs.tariff_compare import main

    (tmp_path / "dc").mkdir()
    kwh = np.ones((2, 8760))
    if bad in ("nan", "negative"):
        kwh[1, 77] = np.nan if bad == "nan" else -1.0
    profiles = str(tmp_path / "p.parquet")
    pq.write_table(pa.table({"profile_id": ["p0", "p1"], "kwh": list(kwh)}, schema=PROFILES),
                   profiles)
    extra = ["--cn", "cn-bj-industrial-two-part"] if bad == "capacity" else []
    assert main(["--datacentre", str(tmp_path / "dc"), "--comparison", "c1", "--profiles",
                 profiles, *ARGS, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gridfare: error: ") and words in err and "\n" not in err
    assert not (tmp_path / "dc" / "tariff_comparisons").exists()
