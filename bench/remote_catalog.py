"""The catalog of a remote data centre: the cost of recording sections on S3 next to the
local file, and of the alternative design (immutable record objects folded by readers).

The bench city's sections are billed once in this process (bills not written) for their
real outcomes and audit-exception rows; then one run is recorded the way the ControlServer
records it (``start_run``, ``record_sections`` batches, ``finish_run``) into a fresh
catalog, local and on a local S3 server (moto, loopback), for batch sizes of one second of
a cluster run (~700 sections), of a slower run, and of one section a transaction. S3 here
is a Python server on the same two cores: its latency is not a real bucket's (a few ms a
request, against tens), so the requests per transaction are printed too.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from bench._city import PERIOD, ensure_city
from datasets.catalog import Catalog, open_catalog
from datasets.datacentre import REMOTE_CATALOG_NAME, DataCentre
from gridfare.billing.runner import bill_one_section, history_periods
from gridfare.tariffs import load_tariff_book

KEY, SECRET = "bench", "bench-secret"
BATCHES = ((700, None), (50, None), (1, 100))  # sections per transaction, sections recorded
REPEATS = 2  # each replay twice, the faster kept: the machine is shared


class _Discard:
    """The bench city's readers; bills are not written (only the outcomes are wanted)."""

    def __init__(self, centre: DataCentre) -> None:
        # The earlier periods' manifest rows read once (a reading per section would be a
        # catalog open per section).
        self._centre = centre.reading(centre.section_files(periods=history_periods(PERIOD)))

    def __getattr__(self, name: str):
        return getattr(self._centre, name)

    def write_bundle(self, period: str, bundle: str, sections) -> list:
        # Manifest rows naming no file: nothing is written, every outcome is complete.
        return [(dataset, period, section, "discarded", -1) for section, _, _ in sections
                for dataset in ("bills", "history")]


@contextlib.contextmanager
def _moto() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield f"127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(timeout=10)


def _keep(figures: dict, key: tuple, figure: tuple) -> None:
    if key not in figures or figure[2] < figures[key][2]:
        figures[key] = figure


def _outcomes(accounts: int, sections: int) -> list[dict]:
    centre = ensure_city(accounts, sections)
    store, tariffs = _Discard(centre), load_tariff_book()
    started = time.perf_counter()
    outcomes = [bill_one_section(store, tariffs, PERIOD, section, "bench-run").as_record(
        node_id="bench-node", finished_at=datetime(2026, 11, 1))
        for section in centre.sections(PERIOD)]
    print(f"billed {len(outcomes)} sections for their outcomes in "
          f"{time.perf_counter() - started:.1f} s")
    return outcomes


def _record(catalog: Catalog, outcomes: list[dict], batch: int) -> tuple[float, int]:
    """One run recorded as the ControlServer does; seconds and transactions."""
    run_id = f"{PERIOD}-bench-{uuid.uuid4().hex[:6]}"
    chunks = [outcomes[first:first + batch] for first in range(0, len(outcomes), batch)]
    started = time.perf_counter()
    catalog.start_run(run_id, PERIOD, [o["section_id"] for o in outcomes],
                      datetime(2026, 11, 1))
    for chunk in chunks[:-1]:
        catalog.record_sections(run_id, chunk)
    record = catalog.finish_run(run_id, datetime(2026, 11, 1), chunks[-1])
    seconds = time.perf_counter() - started
    assert record.sections_done == len(outcomes), record
    return seconds, 1 + len(chunks)


def _records_design(fs: pafs.FileSystem, root: str, outcomes: list[dict], batch: int
                    ) -> tuple[float, float, int]:
    """The alternative: each transaction one immutable Parquet object, readers fold them.
    Writer seconds, reader seconds (list, read, keep each section's last state), objects."""
    # A section's exceptions travel in its row, as a list (one object, one schema).
    rows = [{**o, "exception_rows": [{"account_id": a, "rule": r, "detail": d}
                                     for a, r, d in o["exception_rows"]]} for o in outcomes]
    started = time.perf_counter()
    for seq, first in enumerate(range(0, len(rows), batch)):
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows[first:first + batch]), sink)
        with fs.open_output_stream(f"{root}/catalog-log/{seq:012d}.parquet") as out:
            out.write(sink.getvalue())
    written = time.perf_counter() - started
    started = time.perf_counter()
    import pyarrow.dataset as ds

    table = ds.dataset(f"{root}/catalog-log", filesystem=fs, format="parquet").to_table()
    folded = table.group_by("section_id", use_threads=False).aggregate(
        [("status", "last")])
    assert folded.num_rows == len(outcomes)
    return written, time.perf_counter() - started, len(range(0, len(rows), batch))


def main(accounts: int = 1_500_000, sections: int = 3_000) -> str:
    outcomes = _outcomes(accounts, sections)
    exception_rows = sum(len(o["exception_rows"]) for o in outcomes)
    lines = ["## Remote catalog (`bench/remote_catalog.py`)", "",
             f"One billing run's catalog writes for the bench city ({accounts:,} accounts, "
             f"{len(outcomes):,} sections, {exception_rows:,} audit-exception rows, their "
             "real outcomes): `start_run`, `record_sections` batches and `finish_run`, as "
             "the ControlServer makes them, into a fresh catalog. S3 is a local moto server "
             "on the same two cores (its CPU is in the S3 figures; a real bucket adds its "
             "network latency per request: each S3 transaction is 4 requests, a lease read, "
             "the upload of the whole catalog, zstd-compressed, and a move, i.e. a copy and "
             "a delete, plus a lease renewal about every 7 s; the first takes the lease, "
             "0.25 s of it a wait). The faster of two runs each, on a shared, noisy machine.",
             "",
             "| catalog | sections a transaction | sections | transactions | seconds | "
             "ms a transaction | ms a section |", "|---|---:|---:|---:|---:|---:|---:|"]
    with _moto() as endpoint:
        fs = pafs.S3FileSystem(access_key=KEY, secret_key=SECRET, scheme="http",
                               endpoint_override=endpoint, region="us-east-1",
                               allow_bucket_creation=True)
        fs.create_dir("bench")
        uri = (f"s3://{KEY}:{SECRET}@bench/{{}}?endpoint_override={endpoint}&scheme=http"
               "&region=us-east-1")
        figures, alternative = {}, []
        for batch, count in BATCHES:
            chosen = outcomes[:count] if count else outcomes
            for repeat in range(REPEATS):
                with tempfile.TemporaryDirectory() as local:
                    seconds, transactions = _record(Catalog(f"{local}/catalog.duckdb"),
                                                    chosen, batch)
                _keep(figures, ("local", batch), (len(chosen), transactions, seconds))
                centre = DataCentre(uri.format(f"dc-{batch}-{repeat}"), create=True)
                writer = open_catalog(centre, writer=True)
                seconds, transactions = _record(writer, chosen, batch)
                writer.release()
                _keep(figures, ("S3", batch), (len(chosen), transactions, seconds))
            stored = f"bench/dc-{batch}-0/{REMOTE_CATALOG_NAME}"
            with fs.open_input_stream(stored, compression="zstd") as source:
                size = (fs.get_file_info(stored).size, len(source.read()))
            written, read, objects = _records_design(fs, f"bench/records-{batch}", chosen,
                                                     batch)
            alternative.append((batch, len(chosen), objects, written, read, size))
        reader = open_catalog(DataCentre(uri.format("dc-700-0")))
        started = time.perf_counter()
        reader.runs()
        reader.exceptions(PERIOD)
        remote_read = time.perf_counter() - started
    for (where, batch), (count, transactions, seconds) in figures.items():
        print(f"{where:6} batch {batch:>4}: {count:>5} sections, {transactions:>5} "
              f"transactions, {seconds:7.2f} s")
        lines.append(f"| {where} | {batch:,} | {count:,} | {transactions:,} | "
                     f"{seconds:.2f} | {seconds / transactions * 1e3:.1f} | "
                     f"{seconds / count * 1e3:.2f} |")
    ratio = {batch: figures[("S3", batch)][2] / figures[("local", batch)][2]
             for batch, _ in BATCHES}
    ratios = ", ".join(f"{batch:,} a transaction **{r:.1f}x**" for batch, r in ratio.items())
    stored, raw = alternative[0][5]
    lines += ["", f"S3 / local, same run: {ratios}. The run's catalog: a {raw / 1e6:.1f} MB "
              f"DuckDB file, stored as a {stored / 1e3:.0f} kB zstd object. A reader's "
              f"`runs()` and `exceptions()` on S3 (each downloads the snapshot): "
              f"{remote_read * 1e3:.0f} ms.", "",
              "The alternative design, immutable record objects (one Parquet object a "
              "transaction, no lease) folded by every reader, on the same server:", "",
              "| sections a transaction | sections | objects | writer s | a reader's fold s |",
              "|---:|---:|---:|---:|---:|"]
    for batch, count, objects, written, read, _size in alternative:
        lines.append(f"| {batch:,} | {count:,} | {objects:,} | {written:.2f} | {read:.2f} |")
    lines += ["", "Its writes are cheaper (one request, no catalog upload), but every read "
              "lists and reads every object ever written (a run recorded a section at a "
              "time is thousands of them) until a compaction, which is itself a "
              "single-writer step needing the same lease; and two writers' records would "
              "both stand, to be reconciled by readers, where the lease refuses the stale "
              "one."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
