"""Bill a period section by section and record each outcome: the single-process runner.

I/O is passed in: a ``SectionStore`` (the data centre's Parquet side) and a ``RunLedger``
(its catalog). ``bill_one_section`` is the unit of work that the distributed runner ships to
Ray tasks, so both runners produce the same bills.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Protocol

import pyarrow as pa

from datasets.schemas import FOLD_MONTHS, ManifestRow, SectionFiles
from gridfare.billing.audit import AuditRules
from gridfare.billing.history import fold_history, history_window
from gridfare.billing.kernel import SectionBills, SectionInput, bill_bundle
from gridfare.billing.request import (
    RunRequest,
    new_run_sections,
    resume_options,
    select_sections,
)
from gridfare.errors import GridfareError
from gridfare.period import Period
from gridfare.tariffs import Tariff, TariffBook, TariffFiles, read_tariff_files

__all__ = [
    "RECORD_INTERVAL_S",
    "RunSummary",
    "SectionOutcome",
    "StartedRun",
    "bill_one_section",
    "bill_sections",
    "history_files",
    "history_periods",
    "new_bundle",
    "new_run_id",
    "run_billing",
    "select_sections",
    "start_or_resume",
]

RECORD_INTERVAL_S = 1.0


class SectionStore(Protocol):
    """Where sections are read from and their results written to (the data centre)."""

    def sections(self, period: str) -> list[str]: ...
    def all_sections(self) -> list[str]: ...
    def read_accounts(self, section: str) -> pa.Table: ...
    def read_readings(self, period: str, section: str) -> pa.Table: ...
    def read_history(self, section: str, period: str, months: int = 12, *,
                     ordered: bool = True) -> pa.Table: ...
    def read_history_carry(self, section: str, period: str) -> pa.Table: ...
    def write_bundle(self, period: str, bundle: str,
                     sections: Sequence[tuple[str, pa.Table, pa.Table]]
                     ) -> list[ManifestRow]: ...
    def reading(self, files: Files) -> SectionStore: ...


class Files(Protocol):
    """Manifest rows (``datasets.datacentre.SectionFiles``): where earlier bills and folds
    are."""

    def get(self, dataset: str, period: str, section: str) -> tuple[str, int] | None: ...
    def of_section(self, section: str) -> list[ManifestRow]: ...
    def only(self, sections: Iterable[str]) -> Files: ...


class RunLedger(Protocol):
    """Where runs, section states and audit exceptions are recorded (the catalog)."""

    def start_run(self, run_id: str, period: str, sections: list[str],
                  started_at: datetime, *, tariff_digest: str | None = None,
                  tariff_files: str | None = None) -> None: ...
    def record_sections(self, run_id: str, outcomes: Sequence[Mapping[str, object]]
                        ) -> None: ...
    def finish_run(self, run_id: str, finished_at: datetime,
                   outcomes: Sequence[Mapping[str, object]] = ()) -> object: ...
    def pending_sections(self, run_id: str) -> list[str]: ...
    def run(self, run_id: str) -> _RecordedRun: ...
    def run_tariffs(self, run_id: str) -> str | None: ...
    def section_files(self, centre: SectionStore, *, periods: Iterable[str] | None = None,
                      sections: Iterable[str] | None = None) -> Files: ...
    def sweep(self, centre: SectionStore, period: str, finished_run: str | None = None
              ) -> int: ...


class _RecordedRun(Protocol):
    period: str


ExceptionRow = tuple[int, str, str]  # account_id, rule, detail
FileRow = tuple[str, str, int]  # dataset, file (relative to the root), part


@dataclass(frozen=True)
class SectionOutcome:
    """What billing one section did; ``error`` is set when it failed.

    A done section's audit exceptions (``exception_rows``) and the files its bills and
    fold went to (``files``: its manifest rows) travel with its outcome to the ledger,
    which records them with the section's state in one transaction: the section is done,
    and its new bills visible, only once they are recorded.
    """

    section_id: str
    status: str  # done | failed
    accounts: int = 0
    billed: int = 0
    exceptions: int = 0
    total_fen: int = 0
    seconds: float = 0.0
    error: str | None = None
    exception_rows: tuple[ExceptionRow, ...] = ()
    files: tuple[FileRow, ...] = ()

    def as_record(self, **extra: object) -> dict[str, object]:
        """The outcome as a catalog row (``extra``: node_id, finished_at)."""
        return {
            "section_id": self.section_id, "status": self.status, "accounts": self.accounts,
            "billed": self.billed,
            "exceptions": self.exceptions, "total_fen": self.total_fen,
            "seconds": self.seconds, "error": self.error,
            "exception_rows": self.exception_rows, "files": self.files, **extra,
        }


@dataclass(frozen=True)
class RunSummary:
    """The end signal of a run: per-section outcomes and totals."""

    run_id: str
    period: str
    outcomes: tuple[SectionOutcome, ...]
    seconds: float

    @property
    def failed(self) -> tuple[SectionOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "failed")

    @property
    def billed(self) -> int:
        return sum(o.billed for o in self.outcomes)

    @property
    def exceptions(self) -> int:
        return sum(o.exceptions for o in self.outcomes)

    @property
    def total_fen(self) -> int:
        return sum(o.total_fen for o in self.outcomes)


def new_run_id(period: str, now: datetime) -> str:
    """``2026-10-20261123T140312-1a2b3c``: sortable by start, unique across processes."""
    return f"{period}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def new_bundle(run_id: str) -> str:
    """A bundle's name: its run and a random part, so that no two attempts (a retried task,
    a restarted ControlServer's) ever write the same file."""
    return f"{run_id}-{uuid.uuid4().hex[:8]}"


def history_periods(period: str, rules: AuditRules = AuditRules()) -> list[str]:  # noqa: B008
    """The periods whose bills and folds billing ``period`` may read (its history)."""
    return [str(p) for p in Period.parse(period).previous(max(FOLD_MONTHS,
                                                              rules.history_months))]


def history_files(lookup: Callable[[list[str], list[str]], Files], sections: Sequence[str],
                  period: str, rules: AuditRules = AuditRules()) -> Files:  # noqa: B008
    """The manifest rows billing ``sections`` of ``period`` reads, what a task is sent:
    the previous period's fold alone where there is one (and the rules want no more months
    than it holds), else the earlier periods' bills and folds. ``lookup(periods,
    sections)`` reads manifest rows (the ledger's); the earlier bills are looked up only
    for sections without a fold (none, in steady monthly billing)."""
    previous = str(Period.parse(period).shift(-1))
    sections = list(sections)
    rows: list[ManifestRow] = []
    if rules.history_months <= FOLD_MONTHS:
        folds = lookup([previous], sections)
        rows = [row for section in sections for row in folds.of_section(section)
                if row[0] == "history"]
        sections = [s for s in sections if folds.get("history", previous, s) is None]
    if sections:
        earlier = lookup(history_periods(period, rules), sections)
        rows += [row for section in sections for row in earlier.of_section(section)]
    return SectionFiles(rows)


def bill_one_section(store: SectionStore, tariffs: Mapping[str, Tariff], period: str,
                     section: str, run_id: str, rules: AuditRules = AuditRules(),  # noqa: B008
                     ) -> SectionOutcome:
    """Read, audit, rate and atomically store one section (a bundle of one); a
    GridfareError fails it alone. Its files are visible once its outcome is recorded."""
    return bill_sections(store, tariffs, period, [section], run_id, rules)[0]


def bill_sections(store: SectionStore, tariffs: Mapping[str, Tariff], period: str,
                  sections: Sequence[str], run_id: str,
                  rules: AuditRules = AuditRules(),  # noqa: B008
                  ) -> list[SectionOutcome]:
    """Bill a bundle of sections in one call: one outcome per section, in order.

    The sections are read one by one, rated together in one kernel pass (``bill_bundle``)
    and written together: one bills file and one fold file for the bundle
    (``write_bundle``), each section's manifest rows in its outcome. Each fails alone: a
    GridfareError reading or rating one section fails that section; if the bundle cannot
    be written, each section is written as a bundle of its own, so that only one that
    cannot be fails. A section's ``seconds`` is its share (by accounts) of the joint read,
    rating and write.
    """
    started = time.perf_counter()
    failed: dict[str, SectionOutcome] = {}
    parts: list[SectionInput] = []
    carried: dict[str, pa.Table] = {}
    for section in sections:
        try:
            carried[section], history = _read_history(store, section, period, rules)
            parts.append(SectionInput(
                section,
                store.read_accounts(section),
                store.read_readings(period, section),
                history,
            ))
        except GridfareError as exc:
            failed[section] = _failed(section, exc, 0.0)
    try:
        rated: list[SectionBills | GridfareError] = bill_bundle(
            parts, tariffs, period, rules=rules, run_id=run_id)
    except GridfareError as exc:  # a bad period: every section fails the same way
        rated = [exc] * len(parts)
    billed: list[tuple[SectionBills, pa.Table]] = []
    for part, result in zip(parts, rated, strict=True):
        if isinstance(result, GridfareError):
            failed[part.section_id] = _failed(part.section_id, result, 0.0)
            continue
        try:
            fold = fold_history(carried[part.section_id], result.bills, Period.parse(period))
        except GridfareError as exc:
            failed[part.section_id] = _failed(part.section_id, exc, 0.0)
            continue
        billed.append((result, fold))
    written = _write(store, period, run_id, billed, failed)
    elapsed = time.perf_counter() - started
    accounts = {part.section_id: part.accounts.num_rows for part in parts}
    total = sum(accounts.values()) or 1
    outcomes: dict[str, SectionOutcome] = {}
    for section in sections:
        share = elapsed * accounts.get(section, 0) / total
        if section in failed:
            outcomes[section] = replace(failed[section], seconds=share)
        else:
            result, files = written[section]
            outcomes[section] = _done(result, share, files)
    return [outcomes[section] for section in sections]


def _read_history(store: SectionStore, section: str, period: str,
                  rules: AuditRules) -> tuple[pa.Table, pa.Table]:
    """``(carried, history)``: what this period's history fold starts from, and the rows
    the kernel folds (the rules' window of it; the kernel needs no sorted rows)."""
    carried = store.read_history_carry(section, period)
    if rules.history_months > FOLD_MONTHS:
        return carried, store.read_history(section, period, rules.history_months,
                                           ordered=False)
    return carried, history_window(carried, Period.parse(period), rules.history_months)


def _write(store: SectionStore, period: str, run_id: str,
           billed: list[tuple[SectionBills, pa.Table]],
           failed: dict[str, SectionOutcome]) -> dict[str, tuple[SectionBills, tuple]]:
    """Write the bills and history folds of ``billed`` as one bundle; if that fails, each
    section as a bundle of its own (one that cannot be written fails alone, into
    ``failed``). Returns each written section's result and manifest rows. The bills and
    the fold of a section are in one bundle's two files: both are named in its outcome,
    and neither is visible before the ledger records it."""
    written: dict[str, tuple[SectionBills, tuple]] = {}
    groups = [billed] if billed else []
    while groups:
        group = groups.pop(0)
        try:
            rows = store.write_bundle(period, new_bundle(run_id), [
                (result.section_id, result.bills, fold) for result, fold in group])
        except GridfareError as exc:
            if len(group) > 1:
                groups = [[item] for item in group] + groups
            else:
                failed[group[0][0].section_id] = _failed(group[0][0].section_id, exc, 0.0)
            continue
        by_section: dict[str, list[FileRow]] = {}
        for dataset, _, section, file, part in rows:
            by_section.setdefault(section, []).append((dataset, file, part))
        for result, _ in group:
            written[result.section_id] = (result, tuple(by_section[result.section_id]))
    return written


def _failed(section: str, exc: GridfareError, seconds: float) -> SectionOutcome:
    return SectionOutcome(section, "failed", seconds=seconds,
                          error=f"{type(exc).__name__}: {exc}")


def _done(result: SectionBills, seconds: float, files: tuple[FileRow, ...] = ()
          ) -> SectionOutcome:
    exceptions = result.exceptions
    return SectionOutcome(
        result.section_id,
        "done",
        accounts=result.bills.num_rows + exceptions.num_rows,
        billed=result.bills.num_rows,
        exceptions=exceptions.num_rows,
        total_fen=result.total_fen,
        seconds=seconds,
        # Plain tuples: they cross a process boundary with the outcome, and pickling a
        # 2-row Arrow table costs five times its tuples (60 vs 11 us).
        exception_rows=tuple(zip(exceptions["account_id"].to_pylist(),
                                 exceptions["rule"].to_pylist(),
                                 exceptions["detail"].to_pylist(), strict=True)),
        files=files,
    )


@dataclass(frozen=True)
class StartedRun:
    """A recorded run request: what to bill, and with which book."""

    run_id: str
    period: str
    sections: list[str]
    tariff_files: TariffFiles
    tariffs: TariffBook


def start_or_resume(store: SectionStore, ledger: RunLedger, request: RunRequest,
                    clock: Callable[[], datetime], *,
                    with_readings: Sequence[str] | None = None,
                    with_accounts: Sequence[str] | None = None) -> StartedRun:
    """Check ``request`` against the data centre and record it. Nothing is written unless
    every check passed (the book is parsed first); a resume keeps its run's period and book
    (``resume_options``). ``with_readings`` / ``with_accounts``: the period's sections with
    readings and every section with accounts, when the caller has listed them already."""
    if request.resume_run_id is not None:
        run_id = request.resume_run_id
        recorded = ledger.run_tariffs(run_id)
        period, tariffs = resume_options(
            request, ledger.run(run_id).period,
            None if recorded is None else TariffFiles.from_json(recorded, f"run {run_id}"))
        return StartedRun(run_id, period, ledger.pending_sections(run_id), tariffs,
                          tariffs.book())
    period = str(request.period)
    tariffs = request.tariffs or read_tariff_files()
    book = tariffs.book()
    if with_readings is None:
        with_readings = store.sections(period)
    if with_accounts is None:
        with_accounts = store.all_sections()
    todo = new_run_sections(request, with_readings, with_accounts)
    run_id = new_run_id(period, clock())
    ledger.start_run(run_id, period, todo, clock(), tariff_digest=tariffs.digest,
                     tariff_files=tariffs.to_json())
    return StartedRun(run_id, period, todo, tariffs, book)


def run_billing(
    store: SectionStore,
    ledger: RunLedger,
    request: RunRequest,
    *,
    rules: AuditRules = AuditRules(),  # noqa: B008
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc).replace(tzinfo=None),
    on_section: Callable[[SectionOutcome], None] | None = None,
) -> RunSummary:
    """Bill what ``request`` asks, one section after another (a resume bills only what its
    run has not done). Returns the run's end signal."""
    started = time.perf_counter()
    run = start_or_resume(store, ledger, request, clock)
    run_id, period, todo, tariffs = run.run_id, run.period, run.sections, run.tariffs
    # The earlier periods' manifest rows, read once: this run writes only its own period.
    reader = store.reading(history_files(
        lambda periods, sections: ledger.section_files(store, periods=periods,
                                                       sections=sections),
        todo, period, rules))
    outcomes: list[SectionOutcome] = []
    unrecorded: list[dict[str, object]] = []
    last_flush = time.monotonic()
    for section in todo:
        outcome = bill_one_section(reader, tariffs, period, section, run_id, rules)
        outcomes.append(outcome)
        unrecorded.append(outcome.as_record(finished_at=clock()))
        # One catalog transaction per second, not per section: a crash loses at most a
        # second of records, and those sections are simply billed again on resume.
        if time.monotonic() - last_flush >= RECORD_INTERVAL_S:
            ledger.record_sections(run_id, unrecorded)
            unrecorded, last_flush = [], time.monotonic()
        if on_section is not None:
            on_section(outcome)
    ledger.finish_run(run_id, clock(), unrecorded)
    ledger.sweep(store, period, run_id)
    return RunSummary(run_id, period, tuple(outcomes), time.perf_counter() - started)
