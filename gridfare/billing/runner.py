"""Bill a period section by section and record each outcome: the single-process runner.

I/O is passed in: a ``SectionStore`` (the data centre's Parquet side) and a ``RunLedger``
(its catalog). ``bill_one_section`` is the unit of work that the distributed runner ships to
Ray tasks, so both runners produce the same bills.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

import pyarrow as pa

from datasets.schemas import FOLD_MONTHS
from gridfare.billing.audit import AuditRules
from gridfare.billing.history import fold_history, history_window
from gridfare.billing.kernel import SectionBills, SectionInput, bill_bundle, bill_section
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
    def write_section_result(self, period: str, section: str, bills: pa.Table) -> object: ...
    def write_history_fold(self, period: str, section: str, table: pa.Table) -> object: ...


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


class _RecordedRun(Protocol):
    period: str


ExceptionRow = tuple[int, str, str]  # account_id, rule, detail


@dataclass(frozen=True)
class SectionOutcome:
    """What billing one section did; ``error`` is set when it failed.

    A done section's audit exceptions travel with its outcome (``exception_rows``) to the
    ledger, which records them with the section's state in one transaction: they are a
    few rows per section, and the section is done only once they are recorded.
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

    def as_record(self, **extra: object) -> dict[str, object]:
        """The outcome as a catalog row (``extra``: node_id, finished_at)."""
        return {
            "section_id": self.section_id, "status": self.status, "accounts": self.accounts,
            "billed": self.billed,
            "exceptions": self.exceptions, "total_fen": self.total_fen,
            "seconds": self.seconds, "error": self.error,
            "exception_rows": self.exception_rows, **extra,
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


def bill_one_section(store: SectionStore, tariffs: Mapping[str, Tariff], period: str,
                     section: str, run_id: str, rules: AuditRules = AuditRules(),  # noqa: B008
                     ) -> SectionOutcome:
    """Read, audit, rate and atomically store one section; a GridfareError fails it alone."""
    started = time.perf_counter()
    try:
        carried, history = _read_history(store, section, period, rules)
        result = bill_section(
            store.read_accounts(section),
            store.read_readings(period, section),
            tariffs,
            period,
            history=history,
            rules=rules,
            run_id=run_id,
            section_id=section,
        )
        _write(store, period, section, result, carried)
    except GridfareError as exc:
        return _failed(section, exc, time.perf_counter() - started)
    return _done(result, time.perf_counter() - started)


def bill_sections(store: SectionStore, tariffs: Mapping[str, Tariff], period: str,
                  sections: Sequence[str], run_id: str,
                  rules: AuditRules = AuditRules(),  # noqa: B008
                  ) -> list[SectionOutcome]:
    """Bill a bundle of sections in one call: one outcome per section, in order.

    The sections are read one by one, rated together in one kernel pass (``bill_bundle``)
    and written one by one, each atomically, exactly as ``bill_one_section`` would. Each
    fails alone: a GridfareError reading, rating or writing one section fails that section
    and leaves its bundle-mates untouched. A section's ``seconds`` is its share (by
    accounts) of the joint read and rating, plus its own write.
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
    shared = time.perf_counter() - started
    accounts = sum(part.accounts.num_rows for part in parts) or 1
    outcomes: dict[str, SectionOutcome] = dict(failed)
    for part, result in zip(parts, rated, strict=True):
        share = shared * part.accounts.num_rows / accounts
        begun = time.perf_counter()
        if isinstance(result, GridfareError):
            outcomes[part.section_id] = _failed(part.section_id, result, share)
            continue
        try:
            _write(store, period, part.section_id, result, carried[part.section_id])
        except GridfareError as exc:
            outcomes[part.section_id] = _failed(part.section_id, exc,
                                                share + time.perf_counter() - begun)
            continue
        outcomes[part.section_id] = _done(result, share + time.perf_counter() - begun)
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


def _write(store: SectionStore, period: str, section: str, result: SectionBills,
           carried: pa.Table) -> None:
    """The bills, then the history fold the next period reads (a fold is only ever there
    beside the bills it was made with: a failure between the two leaves the next period
    reading the bills files, which gives the same rows)."""
    store.write_section_result(period, section, result.bills)
    store.write_history_fold(period, section,
                             fold_history(carried, result.bills, Period.parse(period)))


def _failed(section: str, exc: GridfareError, seconds: float) -> SectionOutcome:
    return SectionOutcome(section, "failed", seconds=seconds,
                          error=f"{type(exc).__name__}: {exc}")


def _done(result: SectionBills, seconds: float) -> SectionOutcome:
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
                    with_readings: Sequence[str] | None = None) -> StartedRun:
    """Check ``request`` against the data centre and record it. Nothing is written unless
    every check passed (the book is parsed first); a resume keeps its run's period and book
    (``resume_options``). ``with_readings``: the period's sections with readings, when the
    caller has listed them already."""
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
    todo = new_run_sections(request, with_readings, store.all_sections())
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
    outcomes: list[SectionOutcome] = []
    unrecorded: list[dict[str, object]] = []
    last_flush = time.monotonic()
    for section in todo:
        outcome = bill_one_section(store, tariffs, period, section, run_id, rules)
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
    return RunSummary(run_id, period, tuple(outcomes), time.perf_counter() - started)
