"""What a billing run is asked for, checked once, travelling with the run.

A ``RunRequest`` is built at every edge that starts a run (``gridfare bill``,
``DataCentreClient.run_billing``, ``python -m rayjobs.billing``) and handed whole to the
runner that records it (the single-process runner or the ControlServer), which calls
``new_run_sections`` or ``resume_options`` before it writes anything. The tariff book goes
with it as text (``TariffFiles``): the run's book is recorded with the run, so its sections,
a resume and a restarted ControlServer all price with it, whatever was loaded before.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass

from datasets.schemas import check_section_id
from gridfare.errors import InvalidInput, NothingToBill, UnknownSection
from gridfare.period import Period
from gridfare.tariffs import TariffFiles, read_tariff_files

__all__ = [
    "RUN_ID",
    "SECTION_PATTERN",
    "RunRequest",
    "check_run_id",
    "check_section_id",
    "new_run_sections",
    "resume_options",
    "select_sections",
]

# A pattern adds the glob characters; it is only ever matched against listed ids.
SECTION_PATTERN = re.compile(r"[A-Za-z0-9_.*?\[\]!-]{1,64}")
# ``new_run_id``'s shape: period, start time, six hex digits.
RUN_ID = re.compile(r"\d{4}-(0[1-9]|1[0-2])-\d{8}T\d{6}-[0-9a-f]{6}")


def check_run_id(run_id: object) -> str:
    """``run_id`` if it has the shape of a run id (``2026-10-20261123T140312-1a2b3c``)."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise InvalidInput(f"run {run_id!r}: a run id looks like 2026-10-20261123T140312-1a2b3c")
    return run_id


@dataclass(frozen=True)
class RunRequest:
    """One billing request: a new run of ``period`` (all sections, or ids/patterns), or the
    resume of ``resume_run_id``; ``tariffs`` None means the sample book for a new run and
    the run's own recorded book for a resume."""

    period: str | None = None
    sections: tuple[str, ...] | None = None
    resume_run_id: str | None = None
    tariffs: TariffFiles | None = None

    def __post_init__(self) -> None:
        if self.period is not None:
            object.__setattr__(self, "period", str(Period.parse(self.period)))
        if self.resume_run_id is None:
            if self.period is None:
                raise InvalidInput("bill: a period (YYYY-MM) is required for a new run")
        else:
            check_run_id(self.resume_run_id)
            if self.sections is not None:
                raise InvalidInput(f"bill: --sections with --resume {self.resume_run_id}: a "
                                   "resume bills exactly what its run has not done")
        if self.sections is not None:
            if isinstance(self.sections, str) or not isinstance(self.sections, Sequence):
                raise InvalidInput(f"sections {self.sections!r}: expected a list of ids or "
                                   "patterns")
            sections = tuple(self.sections)
            if not sections:
                raise InvalidInput("sections: an empty list names no section (omit it to "
                                   "bill every section)")
            for name in sections:
                if not isinstance(name, str) or not SECTION_PATTERN.fullmatch(name):
                    raise InvalidInput(f"section {name!r}: expected an id or glob pattern "
                                       "of letters, digits, '_', '-', '.', '*', '?', '[]'")
            object.__setattr__(self, "sections", sections)
        if self.tariffs is not None and not isinstance(self.tariffs, TariffFiles):
            raise InvalidInput(f"tariffs: expected TariffFiles, got "
                               f"{type(self.tariffs).__name__}")

    @classmethod
    def build(cls, period: str | None = None, *, sections: Sequence[str] | None = None,
              resume_run_id: str | None = None, tariffs_dir: str | None = None
              ) -> RunRequest:
        """The request the CLI, the API and the job make from their options: the tariff
        directory (if any) is read here, once, in the process that names it."""
        tariffs = read_tariff_files(tariffs_dir) if tariffs_dir is not None else None
        return cls(period, None if sections is None else tuple(sections), resume_run_id,
                   tariffs)


def select_sections(available: Sequence[str], requested: Sequence[str] | None) -> list[str]:
    """Sections named by ids or glob patterns (``S00*``); None or ``all`` means every one.

    A name that matches nothing is an impossible request and is refused, naming it.
    """
    if not requested or list(requested) == ["all"]:
        return sorted(available)
    chosen: set[str] = set()
    for name in requested:
        matches = fnmatch.filter(available, name)
        if not matches:
            raise UnknownSection(f"section {name!r}: no section of the period matches it")
        chosen.update(matches)
    return sorted(chosen)


def new_run_sections(request: RunRequest, with_readings: Sequence[str],
                     with_accounts: Sequence[str]) -> list[str]:
    """The sections a new run bills: those the request names among every section that has
    readings for the period or accounts (a section whose readings file is gone is billed,
    so that its active accounts get ``missing_reading`` exceptions rather than nothing).

    A period without a single reading is refused: it is a wrong period or a missing import,
    never a run of no sections.
    """
    if not with_readings:
        raise NothingToBill(f"period {request.period}: the data centre has no readings for "
                            "it (import them first, or check the period)")
    return select_sections(sorted(set(with_readings) | set(with_accounts)), request.sections)


def resume_options(request: RunRequest, run_period: str,
                   run_tariffs: TariffFiles | None) -> tuple[str, TariffFiles]:
    """The period and tariff book a resume bills with: the run's own.

    A period other than the run's is refused (a resume never files bills under another
    period); so is a tariff book other than the one the run recorded (its sections would be
    priced by two books). A run recorded before books were recorded takes the request's,
    or the sample book.
    """
    run_id = request.resume_run_id
    if request.period is not None and request.period != run_period:
        raise InvalidInput(f"run {run_id} bills period {run_period}, not {request.period}: "
                           "a resume keeps its run's period (omit --period)")
    if run_tariffs is None:
        return run_period, request.tariffs or read_tariff_files()
    if request.tariffs is not None and request.tariffs.digest != run_tariffs.digest:
        raise InvalidInput(
            f"run {run_id} was started with tariff book {run_tariffs.digest[:19]}, not "
            f"{request.tariffs.digest[:19]} ({request.tariffs.origin}): a resume prices with "
            "its run's book (omit --tariffs, or start a new run)")
    return run_period, run_tariffs
