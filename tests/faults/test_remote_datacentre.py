"""A data centre on S3 (a local moto server): every command and API call works on it, its
catalog lives in the bucket, credentials are never printed, and a path that is not a data
centre says so without creating anything.

The same small city is generated locally and on S3 with one seed: what S3 bills must be
exactly what the local data centre bills.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import gridfare
from datasets.catalog import open_catalog
from datasets.datacentre import DataCentre
from datasets.generator import generate_city
from gridfare.billing.request import RunRequest
from gridfare.cli import main
from gridfare.errors import DataCentreError, NotADataCentre
from gridfare.money import format_cny
from tests.conftest import S3_KEY, S3_SECRET

PERIOD = "2026-10"
RUN_ID = "2026-10-20261101T080000-0a0b0c"  # well formed (gridfare status checks it), unknown
ACCOUNTS, SECTIONS, SEED = 2_000, 8, 5


def _totals(client) -> tuple:
    bills = client.bills(PERIOD).aggregate("count(*), sum(total_fen)::BIGINT").fetchall()[0]
    exceptions = client.exceptions(PERIOD).aggregate("count(*)").fetchall()[0][0]
    return bills, exceptions


def _clean(text: str) -> None:
    """No traceback and no credential in anything a user sees."""
    assert "Traceback" not in text
    assert S3_SECRET not in text
    assert S3_KEY not in text


@pytest.fixture(scope="module")
def local_twin(tmp_path_factory) -> tuple:
    """The totals the local data centre gives for the same city."""
    root = str(tmp_path_factory.mktemp("twin"))
    generate_city(DataCentre(root, create=True), accounts=ACCOUNTS, sections=SECTIONS,
                  period=PERIOD, seed=SEED)
    client = gridfare.connect(root)
    client.run_billing(PERIOD)
    return _totals(client)


@pytest.fixture
def remote_city(s3_server, capsys) -> str:
    """A fresh city on S3, generated through the CLI."""
    uri = s3_server.uri(f"city-{uuid.uuid4().hex[:8]}")
    assert main(["generate", "--accounts", str(ACCOUNTS), "--sections", str(SECTIONS),
                 "--period", PERIOD, "--seed", str(SEED), "--out", uri]) == 0
    _clean(capsys.readouterr().out)
    return uri


def test_cli_generate_import_bill_runs_summary_status(remote_city, s3_server, local_twin,
                                                      tmp_path, capsys, monkeypatch):
    prefix = remote_city.split("/", 3)[3].split("?")[0]
    # A same-named local directory in the working directory: the catalog must not land
    # there (it used to, silently, while the bills went to S3).
    monkeypatch.chdir(tmp_path)
    (tmp_path / s3_server.bucket / prefix).mkdir(parents=True)

    assert main(["bill", "--datacentre", remote_city, "--period", PERIOD]) == 0
    out = capsys.readouterr()
    _clean(out.out + out.err)
    run_id = out.out.split()[1].rstrip(":")
    assert "catalog.duckdb.zst" in s3_server.keys(prefix)
    assert not any((tmp_path / s3_server.bucket).rglob("*.duckdb"))

    assert main(["runs", "--datacentre", remote_city]) == 0
    runs = capsys.readouterr().out
    assert run_id in runs and "done" in runs
    assert main(["status", run_id, "--datacentre", remote_city, "--sections"]) == 0
    status = capsys.readouterr().out
    assert f"{SECTIONS} done" in status
    assert main(["summary", "--datacentre", remote_city, "--period", PERIOD]) == 0
    summary = capsys.readouterr().out
    _clean(runs + status + summary)
    (bills, total), _ = local_twin
    assert f"{bills:,} bills, total {format_cny(total)} CNY" in summary

    # Import readings of the next period for some accounts (their own meter points, read
    # from October's readings: another is unknown_meter), then bill that period.
    client = gridfare.connect(remote_city)
    billed_accounts = {row[0] for row in client.bills(PERIOD).project("account_id").fetchall()}
    october = DataCentre(remote_city).read_readings(PERIOD, "S00001").to_pylist()
    sample = [r for r in october if r["account_id"] in billed_accounts
              and r["cur_register"] >= r["prev_register"]][:5]
    source = tmp_path / "next.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["account_id", "meter_point_id", "period", "reading_date",
                         "prev_register", "cur_register", "multiplier"])
        for index, row in enumerate(sample):
            writer.writerow([row["account_id"], row["meter_point_id"], "2026-11",
                             "2026-11-28", f"{row['cur_register']:.2f}",
                             f"{row['cur_register'] + 100 + index:.2f}", row["multiplier"]])
    assert main(["import", "readings", str(source), "--datacentre", remote_city,
                 "--period", "2026-11"]) == 0
    _clean(capsys.readouterr().out)
    assert "readings/period=2026-11" in " ".join(s3_server.keys(prefix))
    assert client.run_billing("2026-11").status == "done"
    billed = {row[0] for row in client.bills("2026-11").project("account_id").fetchall()}
    assert billed and billed <= {r["account_id"] for r in sample}  # the rest: audit flags
    assert [r.period for r in client.runs()] == [PERIOD, "2026-11"]


def test_api_reads_match_the_local_data_centre(remote_city, local_twin):
    client = gridfare.connect(remote_city)
    assert client.runs() == []  # no catalog yet: no runs, and nothing created by reading
    assert client.exceptions(PERIOD).aggregate("count(*)").fetchall()[0][0] == 0
    record = client.run_billing(PERIOD)
    assert record.status == "done" and record.sections_done == SECTIONS
    assert _totals(client) == local_twin
    assert [s.status for s in client.sections(record.run_id)] == ["done"] * SECTIONS
    summary = client.summary(PERIOD)
    assert sum(row[3] for row in summary.by_tariff) == record.total_fen
    resumed = client.run_billing(PERIOD, resume_run_id=record.run_id)  # nothing left to do
    assert (resumed.run_id, resumed.status, resumed.billed) == (record.run_id, "done",
                                                                record.billed)
    assert _totals(client) == local_twin
    assert repr(client).startswith("DataCentreClient('s3://***@")


def test_reads_create_nothing_on_s3(remote_city, s3_server):
    prefix = remote_city.split("/", 3)[3].split("?")[0]
    before = s3_server.keys(prefix)
    client = gridfare.connect(remote_city)
    client.runs()
    client.exceptions(PERIOD)
    client.summary(PERIOD)
    assert main(["runs", "--datacentre", remote_city]) == 0
    assert s3_server.keys(prefix) == before


@pytest.mark.cluster
def test_cluster_run_on_s3(ray_cluster, remote_city, s3_server, local_twin):
    """The ControlServer and the section tasks reach the bucket through the URI alone."""
    cluster, _ = ray_cluster
    client = gridfare.connect(remote_city)
    record = client.run_billing(PERIOD, cluster=cluster.address)
    assert record.status == "done" and record.sections_done == SECTIONS
    assert _totals(client) == local_twin
    nodes = {s.node_id for s in client.sections(record.run_id)}
    assert None not in nodes  # billed by tasks on the cluster's nodes
    # The ControlServer gave the catalog's lease up when the run ended: a single-process
    # run goes straight in, on the same catalog.
    again = client.run_billing(PERIOD)
    assert [r.run_id for r in client.runs()] == [record.run_id, again.run_id]
    assert _totals(client) == local_twin  # bills replaced, never doubled


def test_not_a_data_centre_says_so_and_creates_nothing(tmp_path, s3_server, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for uri in (str(empty), s3_server.uri("no-such-prefix"),
                s3_server.uri("dc", bucket="no-such-bucket")):
        for argv in (["runs", "--datacentre", uri],
                     ["summary", "--datacentre", uri, "--period", PERIOD],
                     ["status", RUN_ID, "--datacentre", uri],
                     ["bill", "--datacentre", uri, "--period", PERIOD]):
            assert main(argv) == 3, argv  # DataCentreError's code (gridfare.exit_codes)
            err = capsys.readouterr().err
            assert err.startswith("gridfare: error: not a data centre: "), err
            assert err.count("\n") == 1
            _clean(err)
        with pytest.raises(NotADataCentre):
            gridfare.connect(uri).runs()
        with pytest.raises(NotADataCentre):
            gridfare.connect(uri).bills(PERIOD)
    assert list(empty.iterdir()) == []
    assert s3_server.keys("no-such-prefix") == []


@pytest.mark.parametrize("command", [["runs", "--datacentre"], ["generate", "--period",
                                     PERIOD, "--accounts", "10", "--sections", "1", "--out"]])
def test_a_wrong_endpoint_is_one_line_in_seconds(s3_server, command):
    uri = s3_server.uri("dc").replace(s3_server.endpoint, "127.0.0.1:9")
    result = subprocess.run(
        [sys.executable, "-m", "gridfare.cli", *command, uri],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert result.returncode == 3  # DataCentreError's code
    assert result.stderr.startswith("gridfare: error: data centre s3://***@gridfare-test/dc")
    assert "NETWORK_CONNECTION" in result.stderr
    assert result.stderr.count("\n") == 1
    _clean(result.stdout + result.stderr)


def test_query_credentials_and_unknown_keys(s3_server):
    endpoint = f"endpoint_override={s3_server.endpoint}&scheme=http&region=us-east-1"
    uri = (f"s3://{s3_server.bucket}/q-{uuid.uuid4().hex[:6]}?access_key={S3_KEY}"
           f"&secret_key={S3_SECRET}&session_token=tok-{S3_SECRET}&{endpoint}")
    centre = DataCentre(uri, create=True)
    assert centre.is_datacentre()
    assert S3_SECRET not in repr(centre) and S3_KEY not in centre.shown
    assert open_catalog(centre).runs() == []
    with pytest.raises(DataCentreError, match="unknown query key 'secret'") as caught:
        DataCentre(f"s3://{s3_server.bucket}/dc?secret={S3_SECRET}&{endpoint}")
    _clean(str(caught.value))


@pytest.mark.cluster
def test_the_billing_job_on_s3(ray_cluster, remote_city, local_twin):
    """``python -m rayjobs.billing`` (what ``ray job submit`` runs) on an S3 data centre."""
    cluster, _ = ray_cluster
    result = subprocess.run(
        [sys.executable, "-m", "rayjobs.billing", "--datacentre", remote_city,
         "--period", PERIOD, "--address", cluster.address],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    _clean(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr
    assert f"done: {SECTIONS} sections done, 0 failed" in result.stdout
    assert _totals(gridfare.connect(remote_city)) == local_twin


def test_readers_see_whole_catalogs_while_a_run_writes(remote_city):
    """Snapshots read during a run: each is one published catalog (the run's sections
    only ever go from pending to done, and their count never goes back)."""
    import threading

    client = gridfare.connect(remote_city)
    seen, errors = [], []
    done = threading.Event()

    def read_until_done():
        while not done.is_set():
            try:
                runs = client.runs()
                if runs:
                    seen.append(runs[-1].sections_done)
            except Exception as exc:  # any failure is what the test looks for
                errors.append(exc)

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        record = client.run_billing(PERIOD)
    finally:
        done.set()
        reader.join()
    assert not errors
    assert seen == sorted(seen) and set(seen) <= set(range(SECTIONS + 1))
    assert record.sections_done == SECTIONS


def test_local_read_commands_create_no_catalog(tmp_path, capsys):
    root = tmp_path / "dc"
    generate_city(DataCentre(root, create=True), accounts=200, sections=2, period=PERIOD,
                  seed=3)
    assert main(["runs", "--datacentre", str(root)]) == 0
    assert main(["summary", "--datacentre", str(root), "--period", PERIOD]) == 0
    assert main(["status", RUN_ID, "--datacentre", str(root)]) == 3  # UnknownRun
    assert "not in the catalog" in capsys.readouterr().err
    client = gridfare.connect(str(root))
    assert client.runs() == [] and client.sections("R1") == []
    assert client.exceptions(PERIOD).aggregate("count(*)").fetchall()[0][0] == 0
    assert not (root / "catalog.duckdb").exists()


@pytest.mark.slow
@pytest.mark.cluster
@pytest.mark.timeout(240)
def test_control_server_killed_mid_run_on_s3(ray_cluster, s3_server):
    """A ControlServer killed mid-run holds the catalog's lease; its restart waits for the
    lease to expire, carries the run on from the published catalog, and every section ends
    recorded once: no bill or audit exception lost or doubled."""
    import ray

    from actors.control_server import get_control_server

    uri = s3_server.uri(f"kill-{uuid.uuid4().hex[:8]}")
    generate_city(DataCentre(uri, create=True), accounts=24_000, sections=24,
                  period=PERIOD, seed=SEED)
    control = get_control_server(DataCentre(uri).uri)
    run_id = ray.get(control.submit.remote(RunRequest(PERIOD)))
    deadline = time.monotonic() + 120
    while ray.get(control.progress.remote(run_id))["done"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ray.kill(control, no_restart=False)
    deadline = time.monotonic() + 180
    while (signal := ray.get(control.end_signal.remote(run_id))) is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert signal["status"] == "done" and signal["sections_done"] == 24
    client = gridfare.connect(uri)
    sections = client.sections(run_id)
    assert {s.status for s in sections} == {"done"} and len(sections) == 24
    bills = client.bills(PERIOD).aggregate("count(*), count(DISTINCT account_id)").fetchall()
    assert bills[0][0] == bills[0][1] == sum(s.billed for s in sections)
    exceptions = client.exceptions(PERIOD).aggregate("count(*)").fetchall()[0][0]
    assert exceptions == sum(s.exceptions for s in sections) == signal["exceptions"]
    # A task killed with its owner between its upload and its move may leave a temporary
    # object: dot-named, so no reader ever sees it (the counts above).
    prefix = uri.split("/", 3)[3].split("?")[0]
    temporary = [key.rsplit("/", 1)[-1] for key in s3_server.keys(prefix) if ".tmp-" in key]
    assert all(name.startswith(".") for name in temporary), temporary
