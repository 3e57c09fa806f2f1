"""The benchmark's DuckDB baseline (bench/_duckdb_bills.py) computes the kernel's bills.

A small generated city (continued month by month) is billed by the kernel (``bill_sections``
in bundles, as a cluster run, its bills recorded so that later months read them as history); the
single DuckDB query over the same Parquet must give the same bills, line by line and to the
fen, and the same audit exceptions. The city is widened beyond the generator's tariff mix so
that every component is priced: some industrial accounts bill by demand with a capacity
floor, some residential ones carry a tariff with two tiers, a fixed and a minimum charge.
"""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from bench._duckdb_bills import bills_sql, exceptions_sql, parquet_sources
from datasets.datacentre import DataCentre
from datasets.generator import MAX_ACCOUNTS, generate_city, section_ids
from datasets.schemas import ACCOUNTS as ACCOUNTS_SCHEMA
from datasets.schemas import CHARGE_LINES, READINGS, USAGE_HISTORY
from gridfare.billing.audit import IMPOSSIBLE_INPUT, RULES
from gridfare.tariffs import load_tariff_book
from gridfare.tariffs.loader import default_directory
from tests.billing_reference import bill_bundled

ACCOUNTS, SECTIONS, SEED = 5_000, 8, 5
# July and August have critical-peak prices; October does not and reads both as history.
PERIODS = ("2026-07", "2026-08", "2026-10")

EXTRA_TARIFF = """
code = "test-two-tier-minimum"
name = "Two tiers, a fixed and a minimum charge (test)"
customer_kind = "residential"

[[components]]
kind = "tiered"
basis = "monthly"
edges_kwh = ["150"]
prices = ["0.4883", "0.5883"]

[[components]]
kind = "fixed"
amount = "3.50"

[[components]]
kind = "minimum"
amount = "85"
"""


@pytest.fixture(scope="module")
def billed(tmp_path_factory):
    """The city, its tariff book, and the kernel's bills and exceptions for each period."""
    base = tmp_path_factory.mktemp("baseline")
    tariffs = base / "tariffs"
    tariffs.mkdir()
    for entry in default_directory().iterdir():
        if entry.name.endswith(".toml"):
            (tariffs / entry.name).write_bytes(entry.read_bytes())
    (tariffs / "test-two-tier-minimum.toml").write_text(EXTRA_TARIFF)
    book = load_tariff_book(tariffs)

    centre = DataCentre(str(base / "dc"), create=True)
    # One city month after month (accounts opened in later months are in the accounts
    # when the earlier months are billed: they expect no reading there).
    generate_city(centre, accounts=ACCOUNTS, sections=SECTIONS, period=PERIODS[0], seed=SEED,
                  through=PERIODS[-1])
    for section in section_ids(SECTIONS):
        accounts = centre.read_accounts(section)
        codes = np.array(accounts["tariff_code"].to_pylist(), dtype=object)
        every_other = np.arange(len(codes)) % 2 == 0
        codes[(codes == "cn-bj-industrial-two-part") & every_other] = "cn-bj-industrial-demand"
        codes[(codes == "cn-bj-residential-monthly") & (np.arange(len(codes)) % 5 == 0)] = (
            "test-two-tier-minimum")
        accounts = accounts.set_column(accounts.schema.get_field_index("tariff_code"),
                                       "tariff_code", pa.array(codes, pa.string()))
        centre.write_accounts(section, accounts)

    _write_edge_section(centre)

    kernel = {}
    for period in PERIODS:
        rows = []
        for outcome in bill_bundled(centre, book, period, run_id=f"{period}-test",
                                    bundle_max=3):
            assert outcome.status == "done", outcome.error
            rows += [(outcome.section_id, *row) for row in outcome.exception_rows]
        kernel[period] = (
            pa.concat_tables(centre.read_bills(period, s) for s in centre.sections(period)),
            pa.table(dict(zip(("section_id", "account_id", "rule", "detail"),
                              zip(*rows, strict=True), strict=True))),
        )
    yield centre, book, kernel
    shutil.rmtree(base, ignore_errors=True)


EDGE = "S99999"


def _write_edge_section(centre: DataCentre) -> None:
    """A hand-made section with the cases the generator does not make."""
    accounts, readings, history = [], [], []

    def account(account_id, tariff, *, capacity=None, pf=None, active=True):
        kind = ("industrial" if "industrial" in tariff else
                "commercial" if "commercial" in tariff else "residential")
        accounts.append({"account_id": account_id, "section_id": EDGE, "customer_kind": kind,
                         "tariff_code": tariff, "capacity_kva": capacity, "pf_standard": pf,
                         "active": active, "opened_on": dt.date(2001, 1, 1)})

    def reading(account_id, meter, prev, cur, mult=1, **rest):
        readings.append({"account_id": account_id, "meter_point_id": meter,
                         "prev_register": prev, "cur_register": cur, "multiplier": mult,
                         **rest})

    def tou(account_id, meter, prev, peak, flat, valley, *, critical=0.0, mult=1, **rest):
        reading(account_id, meter, prev, prev + peak + flat + valley + critical, mult,
                peak_kwh=peak, flat_kwh=flat, valley_kwh=valley, critical_kwh=critical,
                **rest)

    commercial, demand = "cn-bj-commercial-tou", "cn-bj-industrial-demand"
    monthly, annual = "cn-bj-residential-monthly", "cn-bj-residential-annual"
    # One TOU meter and one without a split: input_not_metered.
    account(900001, commercial, capacity=200.0, pf=0.85)
    tou(900001, 1, 100.0, 80.0, 70.0, 50.0, reactive_kvarh=50.0)
    reading(900001, 2, 0.0, 40.0)
    reading(1, 19, 0.0, 10.0)  # account 1 lives in S00001: reading_without_account here
    account(900003, monthly, active=False)  # inactive but read: billed
    reading(900003, 1, 0.0, 250.0)
    account(900004, commercial, capacity=100.0, pf=0.85)  # a negative TOU register
    reading(900004, 1, 0.0, 100.0, peak_kwh=50.0, flat_kwh=51.0, valley_kwh=-1.0)
    account(900005, "cn-zj-residential-tou")  # flat energy on a tariff without flat
    tou(900005, 1, 0.0, 150.0, 50.0, 100.0)
    account(900006, demand, pf=0.90)  # demand tariff without a contracted capacity
    tou(900006, 1, 0.0, 300.0, 300.0, 400.0, max_demand_kw=30.0, reactive_kvarh=200.0)
    for account_id, capacity in ((900007, 1000.0), (900008, 500.0)):  # floor binds / not
        account(account_id, demand, capacity=capacity, pf=0.90)
        tou(account_id, 1, 10.0, 300.0, 300.0, 400.0, mult=2, max_demand_kw=100.0,
            reactive_kvarh=300.0)  # billed demand: max(2 x 150, 40 % of capacity)
        tou(account_id, 2, 0.0, 30.0, 30.0, 40.0, mult=2, max_demand_kw=150.0,
            reactive_kvarh=30.0)
    account(900009, commercial, capacity=100.0, pf=0.80)  # a poor power factor
    tou(900009, 1, 0.0, 300.0, 300.0, 400.0, reactive_kvarh=1500.0)
    account(900010, commercial, capacity=100.0)  # no standard: the tariff's 0.85
    tou(900010, 1, 0.0, 300.0, 300.0, 400.0, reactive_kvarh=1500.0)
    account(900031, commercial, capacity=100.0, pf=0.85)  # a factor of 0.00: +135 %
    tou(900031, 1, 0.0, 300.0, 200.0, 170.2, reactive_kvarh=1_029_778.2)
    account(900032, commercial, capacity=100.0, pf=0.0)  # a standard of 0: exempt
    tou(900032, 1, 0.0, 300.0, 200.0, 170.2, reactive_kvarh=1_029_778.2)
    for account_id, kwh in ((900011, 240.0), (900012, 240.01), (900013, 400.0),
                            (900014, 400.01)):  # the tier edges
        account(account_id, monthly)
        reading(account_id, 1, 1000.0, 1000.0 + kwh)
    account(900015, annual)  # crosses the 2880 kWh annual edge this month
    reading(900015, 1, 0.0, 100.0)
    history += [{"account_id": 900015, "period": f"2026-0{m}", "kwh": 470.0}
                for m in range(1, 7)]
    account(900016, monthly)  # active, read, 0 kWh
    reading(900016, 1, 500.0, 500.0)
    account(900017, "cn-xx-unknown", active=False)  # nothing at all
    account(900018, "cn-xx-unknown")
    reading(900018, 1, 0.0, 50.0)
    account(900019, monthly)  # a spike over a history with a duplicated month
    reading(900019, 1, 0.0, 200.0)
    history += [{"account_id": 900019, "period": p, "kwh": 10.0}
                for p in ("2025-11", "2025-12", "2025-12", "2026-01", "2026-02")]
    account(900020, "test-two-tier-minimum")  # minimum top-up
    reading(900020, 1, 0.0, 10.0)
    account(900021, monthly)  # replaced meter, the second rolled back
    reading(900021, 1, 100.0, 150.0)
    reading(900021, 2, 20.0, 10.0)
    account(900022, commercial, capacity=100.0, pf=0.85)  # critical-peak energy
    tou(900022, 1, 0.0, 300.0, 300.0, 300.0, critical=20.0, reactive_kvarh=100.0)
    account(900023, monthly)  # active, no reading: missing_reading
    for account_id, kwh in ((900024, 500.0), (900025, 500.01)):  # at and over the spike limit
        account(account_id, monthly)  # mean 300.01 / 3 = 100.00 (floored), limit 5x
        reading(account_id, 1, 0.0, kwh)
        history += [{"account_id": account_id, "period": p, "kwh": k}
                    for p, k in (("2026-04", 100.0), ("2026-05", 100.0), ("2026-06", 100.01))]

    centre.write_accounts(EDGE, pa.Table.from_pylist(accounts, schema=ACCOUNTS_SCHEMA))
    centre.write_history(EDGE, pa.Table.from_pylist(history, schema=USAGE_HISTORY))
    for period in PERIODS:
        rows = [{**row, "period": period, "reading_date": dt.date.fromisoformat(f"{period}-25")}
                for row in readings]
        centre.write_readings(period, EDGE, pa.Table.from_pylist(rows, schema=READINGS))


@pytest.mark.parametrize("period", PERIODS)
def test_the_single_query_bills_like_the_kernel(billed, period):
    centre, book, kernel = billed
    ours, _ = kernel[period]
    sql = bills_sql(book, period, parquet_sources(centre, period))
    theirs = duckdb.connect().sql(sql).to_arrow_table()

    key = ["section_id", "account_id"]
    ours = ours.drop(["run_id"]).sort_by([(k, "ascending") for k in key])
    theirs = theirs.sort_by([(k, "ascending") for k in key])
    assert theirs.column_names == ours.column_names
    assert ours.num_rows > 0.9 * ACCOUNTS
    billed_by = {name: list(zip(*(t[k].to_pylist() for k in key), strict=True))
                 for name, t in (("kernel", ours), ("baseline", theirs))}
    assert billed_by["baseline"] == billed_by["kernel"], "different accounts billed"
    for column in ours.column_names:
        ours_col, theirs_col = ours[column].to_pylist(), theirs[column].to_pylist()
        differ = [(ours["account_id"][i].as_py(), a, b)
                  for i, (a, b) in enumerate(zip(ours_col, theirs_col, strict=True)) if a != b]
        assert not differ, f"{column}: {len(differ)} bills differ, e.g. {differ[:3]}"


@pytest.mark.parametrize("period", PERIODS)
def test_the_baseline_finds_the_same_audit_exceptions(billed, period):
    centre, book, kernel = billed
    _, exceptions = kernel[period]
    sql = exceptions_sql(book, period, parquet_sources(centre, period))
    theirs = duckdb.connect().sql(sql).to_arrow_table()

    def rows(table: pa.Table) -> set[tuple]:
        return set(zip(*(table[c].to_pylist() for c in ("section_id", "account_id", "rule")),
                       strict=True))

    assert exceptions.num_rows > 0
    assert rows(theirs) == rows(exceptions)


def test_the_city_exercises_every_charge_line_and_history(billed):
    """Guards the comparison above: every line is non-zero somewhere, adjustments go both
    ways, the demand floor binds, and annual tiers read earlier months' bills."""
    centre, _, kernel = billed
    bills = pa.concat_tables(kernel[p][0] for p in PERIODS)
    for line in CHARGE_LINES:
        assert pc.max(bills[line]).as_py() > 0, line
    assert pc.min(bills["pf_adjust_fen"]).as_py() < 0
    opened_later = pc.greater(bills["account_id"], MAX_ACCOUNTS)
    assert pc.sum(opened_later).as_py() > 0  # accounts opened after the first month
    # ... which expect no reading in the months before they opened
    first = kernel[PERIODS[0]][1]
    assert not [row for row in first.to_pylist()
                if row["account_id"] > MAX_ACCOUNTS and row["rule"] == "missing_reading"]
    tariffs = set(bills["tariff_code"].to_pylist())
    edge = {row["account_id"] for row in bills.filter(
        pc.equal(bills["section_id"], EDGE)).select(["account_id"]).to_pylist()}
    assert {900003, 900007, 900008, 900009, 900010, 900015, 900020, 900022,
            900024, 900031, 900032} <= edge
    assert 900025 not in edge
    edge_bills = {row["account_id"]: row for row in bills.filter(
        pc.equal(bills["section_id"], EDGE)).to_pylist()}
    assert edge_bills[900031]["power_factor"] == 0.0 and edge_bills[900031]["pf_adjust_fen"] > 0
    assert edge_bills[900032]["pf_adjust_fen"] == 0
    assert edge_bills[900010]["pf_adjust_fen"] > 0  # the tariff's standard, 0.85
    exceptions = pa.concat_tables(kernel[p][1] for p in PERIODS)
    rules = set(exceptions.filter(pc.equal(exceptions["section_id"], EDGE))["rule"].to_pylist())
    assert rules == set(RULES) - IMPOSSIBLE_INPUT
    assert {"cn-bj-industrial-demand", "test-two-tier-minimum"} <= tariffs
    history = centre.read_history(centre.sections(PERIODS[-1])[0], PERIODS[-1])
    assert set(PERIODS[:2]) <= set(history["period"].to_pylist())


@pytest.mark.slow
def test_pyspark_runs_the_same_query_to_the_same_bills(billed, tmp_path):
    """Only with the ``spark`` extra installed (a JVM start: tens of seconds)."""
    pytest.importorskip("pyspark")
    from bench._duckdb_bills import SPARK, compare_bills, spark_session, spark_sources

    centre, book, kernel = billed
    spark = spark_session(cores=2)
    con = duckdb.connect()
    try:
        for period in PERIODS:
            out = tmp_path / period
            sql = bills_sql(book, period, spark_sources(spark, centre, period), dialect=SPARK)
            spark.sql(sql).write.parquet(str(out))
            con.register("kernel", kernel[period][0])
            agreement = compare_bills(con, "kernel", f"read_parquet('{out}/*.parquet')")
            assert agreement == {"compared": kernel[period][0].num_rows, "kernel_only": 0,
                                 "baseline_only": 0, "differing": 0}, period
    finally:
        spark.stop()
