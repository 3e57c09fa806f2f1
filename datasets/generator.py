"""A seeded synthetic city: accounts, meter readings for one period or a span of months,
and legacy usage history.

``continue_city`` (and ``generate_city(..., through=)``) carries a generated city on month by
month from the generator's per-section state (``generator_state``): see ``continue_section``.

``generate_city`` streams section by section (it never holds more than one section's
tables), so it scales to tens of millions of accounts in bounded memory. Each section is a
pure function of ``(seed, section_index)`` (its generator is
``numpy.random.default_rng([seed, section_index])``), so output does not depend on the order
sections are made in, and the same seed gives byte-identical files.

The mix is roughly a northern Chinese city: 88 % residential (monthly tiers, annual tiers,
Zhejiang-style peak/valley), 9 % commercial TOU, 3 % industrial two-part; ~1 % of accounts
inactive. Registers hold whole 0.01 kWh units. About 0.5 % of accounts carry one kind of
dirty data (see ``DIRTY_KINDS``), for the audit to find.
"""

from __future__ import annotations

import calendar
import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from datasets.datacentre import (
    DATASETS,
    MANIFEST,
    DataCentre,
    check_period,
    periods_before,
    shift_period,
)
from datasets.schemas import ACCOUNTS, GENERATOR_STATE, READINGS, USAGE_HISTORY
from gridfare.errors import DataCentreError, DataCentreNotEmpty, InvalidInput, NotADataCentre

__all__ = [
    "DIRTY_KINDS",
    "MAX_ACCOUNTS",
    "TARIFF_MIX",
    "UNKNOWN_TARIFF",
    "GeneratedSection",
    "GenerationSummary",
    "check_city",
    "continue_city",
    "continue_section",
    "generate_city",
    "generate_section",
    "parse_span",
    "section_ids",
    "section_sizes",
    "span_periods",
]

# (customer_kind, tariff_code, share of all accounts)
TARIFF_MIX: tuple[tuple[str, str, float], ...] = (
    ("residential", "cn-bj-residential-monthly", 0.55),
    ("residential", "cn-bj-residential-annual", 0.25),
    ("residential", "cn-zj-residential-tou", 0.08),
    ("commercial", "cn-bj-commercial-tou", 0.09),
    ("industrial", "cn-bj-industrial-two-part", 0.03),
)
UNKNOWN_TARIFF = "cn-xx-unknown"

# Dirty kinds and their share of all accounts (tou_split_mismatch: of all, hitting TOU ones).
DIRTY_KINDS: tuple[str, ...] = (
    "register_rollback",
    "meter_replacement",
    "zero_read",
    "spike",
    "missing_reading",
    "negative_register",
    "tou_split_mismatch",
    "unknown_tariff",
)
_DIRTY_RATES = np.array([0.0008, 0.0008, 0.0008, 0.0007, 0.0005, 0.0004, 0.0005, 0.0005])
INACTIVE_SHARE = 0.01
# Account ids run 1..accounts and meter point ids to accounts * 10 + 2 in int64; a billion
# accounts is beyond any province (and any machine's memory for one run).
MAX_ACCOUNTS = 10**9

_KINDS = ("residential", "commercial", "industrial")
_CODES = np.array([code for _, code, _ in TARIFF_MIX] + [UNKNOWN_TARIFF], dtype=object)
_KIND_OF_CODE = np.array([_KINDS.index(kind) for kind, _, _ in TARIFF_MIX])
_MIX_EDGES = np.cumsum([share for _, _, share in TARIFF_MIX])
_ZJ_TOU, _COMMERCIAL, _INDUSTRIAL = 2, 3, 4  # indices into TARIFF_MIX
_TOU_SHARE = sum(share for _, code, share in TARIFF_MIX if "tou" in code or "two-part" in code)

# Typical monthly kWh (after the multiplier) and the spread of the lognormal around it.
_LEVEL_KWH = np.array([180.0, 2_500.0, 150_000.0])
_LEVEL_SIGMA = np.array([0.55, 0.7, 0.8])
# Seasonal factor by class and calendar month: summer cooling and winter heating peaks.
_SEASON = np.array(
    [
        [1.20, 1.10, 0.95, 0.85, 0.90, 1.10, 1.35, 1.35, 1.00, 0.85, 0.95, 1.15],
        [1.05, 0.95, 0.95, 0.95, 1.00, 1.10, 1.25, 1.25, 1.05, 0.95, 0.95, 1.05],
        [0.95, 0.90, 1.00, 1.00, 1.00, 1.05, 1.05, 1.05, 1.00, 1.00, 1.00, 1.00],
    ]
)
_COMMERCIAL_CT = np.array([20, 30, 40, 50, 60, 80])
_INDUSTRIAL_CT_PT = np.array([40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 400, 500, 600])
_COMMERCIAL_KVA = np.array([100, 125, 160, 200, 250, 315, 400, 500, 630])
_INDUSTRIAL_KVA = np.array(
    [315, 400, 500, 630, 800, 1000, 1250, 1600, 2000, 2500, 3150, 4000, 5000]
)
_OPENED_FROM = (dt.date(1995, 1, 1) - dt.date(1970, 1, 1)).days
_HOURS_PER_MONTH = 720.0


@dataclass(frozen=True)
class GeneratedSection:
    """One section's tables; unpacks as ``accounts, readings, history``. ``state``: the
    generator's state after the period (``GENERATOR_STATE``), to continue from."""

    accounts: pa.Table
    readings: pa.Table
    history: pa.Table
    dirty: dict[str, int] = field(default_factory=dict)
    state: pa.Table | None = None

    def __iter__(self) -> Iterator[pa.Table]:
        return iter((self.accounts, self.readings, self.history))


@dataclass(frozen=True)
class GenerationSummary:
    """What ``generate_city`` wrote."""

    uri: str
    period: str
    seed: int
    accounts: int
    sections: int
    active: int
    readings_rows: int
    history_rows: int
    by_tariff: dict[str, int]
    dirty: dict[str, int]
    files: tuple[str, ...]
    bytes_written: int
    last_period: str = ""  # the last period generated ("" : ``period`` alone)
    opened: int = 0  # accounts opened and closed by the periods after the first
    closed: int = 0

    @property
    def dirty_total(self) -> int:
        """Accounts carrying some kind of dirty data."""
        return sum(self.dirty.values())

    def describe(self) -> str:
        """A few lines for a person: sizes, the tariff mix and the dirty data seeded."""
        mix = ", ".join(f"{code} {count:,}" for code, count in self.by_tariff.items() if count)
        dirty = ", ".join(f"{kind} {count:,}" for kind, count in self.dirty.items())
        return "\n".join(
            [
                f"  accounts {self.accounts:,} ({self.active:,} active) in {self.sections:,} "
                f"sections; readings {self.readings_rows:,}; history {self.history_rows:,} rows",
                f"  tariffs: {mix}",
                f"  dirty ({self.dirty_total:,} accounts): {dirty}",
                f"  {len(self.files):,} files, {self.bytes_written / 1e6:,.1f} MB",
                *([f"  periods {self.period}..{self.last_period}: {self.opened:,} accounts "
                   f"opened, {self.closed:,} closed"] if self.last_period else []),
            ]
        )


def section_ids(sections: int) -> list[str]:
    """``S00001`` .. zero-padded to width 5 (wider if there are more than 99,999)."""
    width = max(5, len(str(sections)))
    return [f"S{i:0{width}d}" for i in range(1, sections + 1)]


def section_sizes(accounts: int, sections: int, seed: int) -> np.ndarray:
    """Skewed (lognormal) section sizes, every one >= 1, summing exactly to ``accounts``."""
    if sections < 1 or accounts < sections:
        raise InvalidInput(f"generator: need 1 <= sections <= accounts, got {sections}, {accounts}")
    rng = np.random.default_rng([seed, 2**32 - 1, 0x5EC7])
    weights = rng.lognormal(mean=0.0, sigma=0.6, size=sections)
    spare = accounts - sections
    exact = weights / weights.sum() * spare
    sizes = np.floor(exact).astype(np.int64)
    short = spare - int(sizes.sum())
    if short:
        # Largest remainders get the leftover accounts (stable order: deterministic).
        order = np.argsort(-(exact - sizes), kind="stable")
        sizes[order[:short]] += 1
    return sizes + 1


def generate_city(
    datacentre: DataCentre,
    *,
    accounts: int,
    sections: int,
    period: str,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
    replace: bool = False,
    through: str | None = None,
) -> GenerationSummary:
    """Generate a city into ``datacentre``: per section its accounts, its readings for
    ``period`` and its 12 months of legacy usage history; with ``through``, the city goes
    on month by month to that period (``continue_city``), so ``period="2026-01",
    through="2027-01"`` is 13 periods. ``progress(done, total)`` is called after each
    section. The same arguments give identical files. The generator's state
    (``generator_state``) is written last, for ``continue_city``.

    A data centre that already holds data is refused (DataCentreNotEmpty: two cities would
    mix) unless ``replace``: the new city is then generated beside it and swapped in by two
    renames, so a failed generate leaves the old city as it was. Either way a root holding
    anything that is not a data centre's is refused, never replaced.
    """
    check_city(accounts=accounts, sections=sections, period=period, seed=seed)
    periods = span_periods(period, through or period)
    held = _held(datacentre)
    if not held:
        return _generate(datacentre, accounts, sections, periods, seed, progress)
    if not replace:
        raise DataCentreNotEmpty(
            f"generate: data centre {datacentre.uri} already holds {', '.join(held)}; "
            "generating into it would mix two cities: pass --replace (replace=True) to "
            "replace it, or choose an empty directory")
    return _replace(datacentre, accounts, sections, periods, seed, progress)


def check_city(*, accounts: int, sections: int, period: str, seed: int) -> None:
    """Refuse arguments no city can be made of, before anything is created."""
    check_period(period)
    for name, value, most in (("accounts", accounts, MAX_ACCOUNTS),
                              ("sections", sections, MAX_ACCOUNTS),
                              ("seed", seed, 2**63 - 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InvalidInput(f"generator: {name} {value!r} is not an integer")
        if not (0 if name == "seed" else 1) <= value <= most:
            raise InvalidInput(f"generator: {name} {value} is not in "
                               f"{0 if name == 'seed' else 1}..{most:,}")
    if sections > accounts:
        raise InvalidInput(f"generator: need 1 <= sections <= accounts, got {sections}, "
                           f"{accounts}")


def _held(datacentre: DataCentre) -> list[str]:
    """The data centre's entries under its root; refuses a root that holds other things."""
    if not datacentre.exists():
        return []
    selector = pafs.FileSelector(datacentre.root, allow_not_found=True)
    try:
        names = sorted(info.base_name for info in datacentre.filesystem.get_file_info(selector))
    except (OSError, pa.ArrowException) as exc:
        raise DataCentreError(f"generate: cannot list {datacentre.uri}: {exc}") from exc
    foreign = [name for name in names if name not in DATASETS and name != MANIFEST
               and not name.startswith(("catalog", "."))]
    if foreign:
        raise DataCentreNotEmpty(
            f"generate: {datacentre.uri} holds {', '.join(foreign[:3])}, which is not part of "
            "a data centre: refusing to generate into it (choose an empty directory)")
    # The manifest alone (written when the data centre is created) holds no city.
    return [name for name in names if not name.startswith(".") and name != MANIFEST]


def _replace(datacentre: DataCentre, accounts: int, sections: int, periods: list[str],
             seed: int, progress: Callable[[int, int], None] | None) -> GenerationSummary:
    fs, root = datacentre.filesystem, datacentre.root
    token = uuid.uuid4().hex[:12]
    staging, retired = f"{root}.generating-{token}", f"{root}.replaced-{token}"
    try:
        staged = DataCentre(staging, filesystem=fs, create=True)
        summary = _generate(staged, accounts, sections, periods, seed, progress)
        fs.move(root, retired)
        fs.move(staging, root)
    except BaseException:
        with contextlib.suppress(OSError, pa.ArrowException):
            fs.delete_dir(staging)
        raise
    with contextlib.suppress(OSError, pa.ArrowException):
        fs.delete_dir(retired)
    files = tuple(root + name[len(staging):] for name in summary.files)
    return dataclasses.replace(summary, uri=datacentre.uri, files=files)


def _generate(datacentre: DataCentre, accounts: int, sections: int, periods: list[str],
              seed: int, progress: Callable[[int, int], None] | None) -> GenerationSummary:
    sizes = section_sizes(accounts, sections, seed)
    ids = section_ids(sections)
    tally = _Tally(datacentre)
    first = 1
    for index, (section, size) in enumerate(zip(ids, sizes.tolist(), strict=True)):
        result = generate_section(index, section, size, first, periods[0], seed)
        first += size
        tally.readings(periods[0], section, result)
        tally.history(section, result)
        for period in periods[1:]:
            result = continue_section(result.state, period)
            tally.readings(period, section, result)
        tally.close_section(section, result)
        if progress is not None:
            progress(index + 1, sections)
    return tally.summary(periods, seed)


def continue_city(
    datacentre: DataCentre,
    *,
    period: str | None = None,
    through: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationSummary:
    """Continue the generated city in ``datacentre`` from ``period`` (default: the period
    after its last one) through ``through`` (default: ``period``), month by month: the
    same accounts and meters, registers going on from their last reading, accounts opened
    and closed, meters replaced now and then (``continue_section``). The legacy history
    is left as it is. The same city and periods give identical files.

    Refused before anything is written: no data centre there (NotADataCentre), one that
    holds no generated city, a period that does not follow the city's last or a span in
    the wrong order (InvalidInput), a period the city already holds (DataCentreNotEmpty).
    A continuation that was interrupted is finished by running it again: each section
    goes on from its own state, written after its readings, and a period's readings are
    the same bytes whenever they are made.
    """
    if not datacentre.is_datacentre():
        raise NotADataCentre(f"generate: {datacentre.uri} holds no data centre to continue "
                             "(generate a city there first)")
    held = datacentre.periods("readings")
    sections = datacentre.all_sections()
    if not held or not sections:
        raise InvalidInput(f"generate: {datacentre.uri} holds no generated city to continue "
                           "(no readings or no accounts)")
    last = held[-1]
    # A last period that not every section has yet is an interrupted continuation.
    complete = len(datacentre.sections(last)) == len(sections)
    following = shift_period(last, 1) if complete else last
    period = check_period(period) if period is not None else following
    if period != following:
        if period in held:
            raise DataCentreNotEmpty(f"generate: {datacentre.uri} already holds readings for "
                                     f"{period}; the city's next period is {following}")
        raise InvalidInput(f"generate: the city's last period is {last}: it continues into "
                           f"{following}, not {period}")
    periods = span_periods(period, through or period)
    stateless = sorted(set(sections) - set(datacentre.generated_sections()))
    if stateless:
        raise InvalidInput(f"generate: section {stateless[0]} of {datacentre.uri} (and "
                           f"{len(stateless) - 1} more) has no generator state: only a city "
                           "made by `gridfare generate` (since continuation exists) can be "
                           "continued")
    tally = _Tally(datacentre)
    for done, section in enumerate(sections, start=1):
        state = datacentre.read_generator_state(section)
        at = state["period"][0].as_py()
        result = None
        # From the section's own state: a section an interrupted continuation left behind
        # catches up, one it already took further is not made again.
        for later in span_periods(shift_period(at, 1), periods[-1]) if at < periods[-1] else []:
            result = continue_section(state if result is None else result.state, later)
            tally.readings(later, section, result)
        if result is not None:
            tally.close_section(section, result)
        if progress is not None:
            progress(done, len(sections))
    return tally.summary(periods, int(state["seed"][0].as_py()))


def span_periods(first: str, last: str) -> list[str]:
    """Every period from ``first`` through ``last``; a span in the wrong order is refused."""
    check_period(first)
    check_period(last)
    if last < first:
        raise InvalidInput(f"generator: the span {first}..{last} ends before it starts")
    periods = [first]
    while periods[-1] != last:
        periods.append(shift_period(periods[-1], 1))
    return periods


def parse_span(text: str) -> tuple[str, str]:
    """``"2026-01..2027-01"`` -> ``("2026-01", "2027-01")`` (checked; one period alone is
    a span of one)."""
    first, dots, last = text.partition("..")
    if not dots:
        first = last = text
    span_periods(first.strip(), last.strip())
    return first.strip(), last.strip()


class _Tally:
    """What a generate wrote, section by section: the writes and the summary's counts."""

    def __init__(self, datacentre: DataCentre) -> None:
        self._centre = datacentre
        self.by_tariff = dict.fromkeys([*_CODES], 0)
        self.dirty = dict.fromkeys(DIRTY_KINDS, 0)
        self.files: list[str] = []
        self.written = self.accounts = self.sections = self.active = 0
        self.readings_rows = self.history_rows = self.opened = self.closed = 0

    def readings(self, period: str, section: str, result: GeneratedSection) -> None:
        self.written += self._centre.write_readings(period, section, result.readings)
        self.files.append(self._centre.path("readings", period=period, section=section))
        self.readings_rows += result.readings.num_rows
        for kind, count in result.dirty.items():
            if kind in self.dirty:
                self.dirty[kind] += count
        self.opened += result.dirty.get("opened", 0)
        self.closed += result.dirty.get("closed", 0)

    def history(self, section: str, result: GeneratedSection) -> None:
        self.written += self._centre.write_history(section, result.history)
        self.files.append(self._centre.path("usage_history", section=section))
        self.history_rows += result.history.num_rows

    def close_section(self, section: str, result: GeneratedSection) -> None:
        """The section's accounts as they are after its last period, then its state (last:
        a section whose state is written is done)."""
        self.written += self._centre.write_accounts(section, result.accounts)
        self.files.append(self._centre.path("accounts", section=section))
        self._centre.write_generator_state(section, result.state)  # not city data
        codes, counts = np.unique(
            result.accounts["tariff_code"].to_numpy(zero_copy_only=False), return_counts=True
        )
        for code, count in zip(codes.tolist(), counts.tolist(), strict=True):
            self.by_tariff[code] += count
        self.accounts += result.accounts.num_rows
        self.sections += 1
        self.active += int(result.accounts["active"].to_numpy(zero_copy_only=False).sum())

    def summary(self, periods: list[str], seed: int) -> GenerationSummary:
        return GenerationSummary(
            uri=self._centre.uri,
            period=periods[0],
            seed=seed,
            accounts=self.accounts,
            sections=self.sections,
            active=self.active,
            readings_rows=self.readings_rows,
            history_rows=self.history_rows,
            by_tariff=self.by_tariff,
            dirty=self.dirty,
            files=tuple(self.files),
            bytes_written=self.written,
            last_period=periods[-1] if len(periods) > 1 else "",
            opened=self.opened,
            closed=self.closed,
        )


def generate_section(
    section_index: int,
    section_id: str,
    n_accounts: int,
    first_account_id: int,
    period: str,
    seed: int,
) -> GeneratedSection:
    """One section's ``accounts, readings, history`` tables: a pure function of its
    arguments (random draws from ``default_rng([seed, section_index])``). ``state`` is the
    generator's state after ``period``, from which ``continue_section`` goes on."""
    check_period(period)
    if n_accounts < 1:
        raise InvalidInput(f"generator: section {section_id} needs at least one account")
    rng = np.random.default_rng([seed, section_index])
    n = n_accounts
    year, month = int(period[:4]), int(period[5:])
    period_start = (dt.date(year, month, 1) - dt.date(1970, 1, 1)).days

    account_id = np.arange(first_account_id, first_account_id + n, dtype=np.int64)
    drawn = _draw_accounts(rng, n, period_start)
    month_rows = _draw_month(rng, drawn, drawn.active, drawn.meter_of(account_id), None,
                             year, month, _DIRTY_RATES)
    tariff = np.where(month_rows.is_dirty["unknown_tariff"], len(_CODES) - 1, drawn.code)
    readings = _readings_table(account_id, drawn, month_rows, period, period_start)
    accounts = pa.Table.from_arrays(
        [
            pa.array(account_id),
            _repeat(section_id, n),
            pa.array(np.array(_KINDS, dtype=object)[drawn.kind], pa.string()),
            pa.array(_CODES[tariff], pa.string()),
            pa.array(drawn.capacity, mask=~drawn.priced_by_capacity),
            pa.array(np.where(drawn.industrial, 0.90, 0.85), mask=~drawn.priced_by_capacity),
            pa.array(drawn.active),
            pa.array(drawn.opened.astype(np.int32), pa.date32()),
        ],
        schema=ACCOUNTS,
    )
    history = _history(rng, account_id, drawn.kind, drawn.level, drawn.active, drawn.opened,
                       period)
    state = _state_table(accounts, drawn, month_rows, period, seed)
    return GeneratedSection(accounts, readings, history, month_rows.counts, state)


def continue_section(state: pa.Table, period: str) -> GeneratedSection:
    """The section of ``state`` one period on, into ``period`` (the period after the
    state's): the same accounts and meters, registers going on from their last reading,
    about ``CLOSE_SHARE`` of the open accounts closed and ``OPEN_SHARE`` new ones opened,
    and meters replaced at the generator's rate. A pure function of the state and the
    period (draws from ``default_rng([seed, section_index, month number])``); ``history``
    is empty (the legacy history does not change), ``state`` is the state after
    ``period``."""
    check_period(period)
    if state.num_rows == 0:
        raise InvalidInput(f"generator: no state to continue into {period}")
    section_id = state["section_id"][0].as_py()
    previous = set(state["period"].unique().to_pylist())
    if previous != {shift_period(period, -1)}:
        raise InvalidInput(f"generator: section {section_id} was generated through "
                           f"{', '.join(sorted(previous))}; it can only continue into "
                           f"{shift_period(max(previous), 1)}, not {period}")
    seed = int(state["seed"][0].as_py())
    section_index = _section_index(section_id)
    year, month = int(period[:4]), int(period[5:])
    period_start = (dt.date(year, month, 1) - dt.date(1970, 1, 1)).days
    rng = np.random.default_rng([seed, section_index, year * 12 + month - 1])

    old = _Drawn.of_state(state)
    account_id = state["account_id"].to_numpy()
    active = old.active & ~(rng.random(len(old.active)) < CLOSE_SHARE)
    closed = int((old.active & ~active).sum())
    opened_before = int((account_id >= _opened_ids(section_index)).sum())
    opening = min(int(rng.binomial(len(account_id), OPEN_SHARE)),
                  OPENED_PER_SECTION - opened_before)
    new = _draw_accounts(rng, opening, period_start)
    days = calendar.monthrange(year, month)[1]
    new = dataclasses.replace(new, active=np.ones(opening, bool),
                              opened=period_start + rng.integers(0, days, size=opening))
    new_ids = _opened_ids(section_index) + opened_before + np.arange(opening, dtype=np.int64)
    drawn = _Drawn.joined(dataclasses.replace(old, active=active), new)
    all_ids = np.concatenate([account_id, new_ids])
    meters = np.concatenate([state["meter_point_id"].to_numpy(), new_ids * 10 + 1])
    registers = np.concatenate([state["register"].to_numpy(), np.zeros(opening, np.int64)])
    rates = _DIRTY_RATES.copy()
    rates[DIRTY_KINDS.index("unknown_tariff")] = 0.0  # a property of an account, not a month
    month_rows = _draw_month(rng, drawn, drawn.active, meters, registers, year, month, rates)

    kept = state.select(ACCOUNTS.names).set_column(
        ACCOUNTS.get_field_index("active"), ACCOUNTS.field("active"), pa.array(active))
    opened_accounts = pa.Table.from_arrays(
        [
            pa.array(new_ids),
            _repeat(section_id, opening),
            pa.array(np.array(_KINDS, dtype=object)[new.kind], pa.string()),
            pa.array(_CODES[new.code], pa.string()),
            pa.array(new.capacity, mask=~new.priced_by_capacity),
            pa.array(np.where(new.industrial, 0.90, 0.85), mask=~new.priced_by_capacity),
            pa.array(new.active),
            pa.array(new.opened.astype(np.int32), pa.date32()),
        ],
        schema=ACCOUNTS,
    )
    accounts = pa.concat_tables([kept.cast(ACCOUNTS), opened_accounts]).combine_chunks()
    readings = _readings_table(all_ids, drawn, month_rows, period, period_start)
    counts = {**month_rows.counts, "opened": opening, "closed": closed}
    return GeneratedSection(accounts, readings, USAGE_HISTORY.empty_table(), counts,
                            _state_table(accounts, drawn, month_rows, period, seed))


# Accounts opened by ``continue_section`` get ids above every first-period id, in a block
# of OPENED_PER_SECTION per section, so that a section's new ids never depend on another's.
OPENED_PER_SECTION = 100_000
CLOSE_SHARE = 0.001  # of the open accounts, closed each month
OPEN_SHARE = 0.0012  # of a section's accounts, the new ones opened each month


def _opened_ids(section_index: int) -> int:
    return MAX_ACCOUNTS + 1 + section_index * OPENED_PER_SECTION


def _section_index(section_id: str) -> int:
    """The generator's index of ``S00001``-style ids (``section_ids``)."""
    digits = section_id[1:]
    if not (section_id.startswith("S") and digits.isdigit() and int(digits) >= 1):
        raise InvalidInput(f"generator: section {section_id} was not made by the generator")
    return int(digits) - 1


@dataclass(frozen=True)
class _Drawn:
    """Each account's lasting traits, drawn once when it opens."""

    code: np.ndarray  # index into TARIFF_MIX
    active: np.ndarray
    opened: np.ndarray  # days since 1970-01-01
    level: np.ndarray  # typical monthly kWh after the multiplier, before the season
    load_factor: np.ndarray
    capacity: np.ndarray  # kVA (commercial and industrial)
    multiplier: np.ndarray

    @property
    def kind(self) -> np.ndarray:
        return _KIND_OF_CODE[self.code]

    @property
    def commercial(self) -> np.ndarray:
        return self.code == _COMMERCIAL

    @property
    def industrial(self) -> np.ndarray:
        return self.code == _INDUSTRIAL

    @property
    def priced_by_capacity(self) -> np.ndarray:
        return self.commercial | self.industrial

    @property
    def tou(self) -> np.ndarray:
        return (self.code == _ZJ_TOU) | self.commercial | self.industrial

    @staticmethod
    def meter_of(account_id: np.ndarray) -> np.ndarray:
        """The first meter point of each account."""
        return account_id * 10 + 1

    @classmethod
    def of_state(cls, state: pa.Table) -> _Drawn:
        def column(name: str) -> np.ndarray:
            return state[name].to_numpy(zero_copy_only=False)

        return cls(code=column("code").astype(np.int64), active=column("active").astype(bool),
                   opened=column("opened_on").astype("datetime64[D]").astype(np.int64),
                   level=column("level_kwh"), load_factor=column("load_factor"),
                   capacity=pc.fill_null(state["capacity_kva"], 0.0).to_numpy(),
                   multiplier=column("multiplier").astype(np.int64))

    @staticmethod
    def joined(first: _Drawn, second: _Drawn) -> _Drawn:
        return _Drawn(**{f.name: np.concatenate([getattr(first, f.name),
                                                 getattr(second, f.name)])
                         for f in dataclasses.fields(_Drawn)})


def _draw_accounts(rng: np.random.Generator, n: int, period_start: int) -> _Drawn:
    """The lasting traits of ``n`` accounts (the first draws of a section, in this order)."""
    code = np.searchsorted(_MIX_EDGES, rng.random(n) * _MIX_EDGES[-1], side="right")
    kind = _KIND_OF_CODE[code]
    commercial, industrial = code == _COMMERCIAL, code == _INDUSTRIAL
    active = rng.random(n) >= INACTIVE_SHARE
    opened = rng.integers(_OPENED_FROM, period_start, size=n)
    level = _LEVEL_KWH[kind] * np.exp(_LEVEL_SIGMA[kind] * rng.standard_normal(n))
    load_factor = rng.uniform(0.35, 0.75, size=n)
    utilisation = rng.uniform(0.45, 0.85, size=n)
    usual_kw = level * _SEASON[kind].max(axis=1) / (_HOURS_PER_MONTH * load_factor)
    bump = rng.integers(0, 4, size=n)  # some customers contract well above their load
    capacity = np.where(
        industrial,
        _standard_size(usual_kw / utilisation, _INDUSTRIAL_KVA, bump // 2),
        _standard_size(usual_kw / utilisation, _COMMERCIAL_KVA, bump),
    ).astype(np.float64)
    multiplier = np.ones(n, dtype=np.int64)
    ct = rng.random(n) < 0.3
    multiplier = np.where(commercial & ct, rng.choice(_COMMERCIAL_CT, size=n), multiplier)
    multiplier = np.where(industrial, rng.choice(_INDUSTRIAL_CT_PT, size=n), multiplier)
    return _Drawn(code=code, active=active, opened=opened, level=level,
                  load_factor=load_factor, capacity=capacity, multiplier=multiplier)


@dataclass(frozen=True)
class _Month:
    """One period's meter rows (one per meter read; a replaced meter gives two)."""

    owner: np.ndarray  # account position of each row
    second: np.ndarray  # the row of a new meter (a replacement)
    meter: np.ndarray
    prev: np.ndarray
    cur: np.ndarray
    critical: np.ndarray
    peak: np.ndarray
    flat: np.ndarray
    valley: np.ndarray
    demand: np.ndarray  # per account
    reactive: np.ndarray
    day: np.ndarray  # per account
    is_dirty: dict[str, np.ndarray]  # per account
    counts: dict[str, int]
    next_meter: np.ndarray  # per account: the meter in place after the period
    next_register: np.ndarray  # per account: its last read value


def _draw_month(rng: np.random.Generator, drawn: _Drawn, active: np.ndarray,
                meter: np.ndarray, registers: np.ndarray | None, year: int, month: int,
                rates: np.ndarray) -> _Month:
    """One period of readings; ``registers`` (each account's last read value) is drawn
    for a first period (None)."""
    n = len(active)
    code, kind, multiplier = drawn.code, drawn.kind, drawn.multiplier
    commercial, tou = drawn.commercial, drawn.tou

    # --- dirty kinds: at most one per account --------------------------------------
    rates = rates.copy()
    tou_slot = DIRTY_KINDS.index("tou_split_mismatch")
    rates[tou_slot] /= _TOU_SHARE  # only TOU accounts can carry it
    draw = np.searchsorted(np.cumsum(rates), rng.random(n), side="right")
    dirty = np.where(draw < len(DIRTY_KINDS), draw, -1)
    needs_reading = dirty != DIRTY_KINDS.index("unknown_tariff")
    dirty[needs_reading & ~active] = -1
    dirty[(dirty == tou_slot) & ~tou] = -1
    # A meter point id is account_id * 10 + k: a ninth meter would reach the next account's.
    dirty[(dirty == DIRTY_KINDS.index("meter_replacement")) & (meter % 10 == 9)] = -1
    is_dirty = {name: dirty == slot for slot, name in enumerate(DIRTY_KINDS)}

    # --- this period's energy, per account, in register units (0.01, before multiplier)
    noise = np.exp(0.08 * rng.standard_normal(n))
    energy = drawn.level * _SEASON[kind, month - 1] * noise
    advance = np.maximum(1, np.rint(energy * 100 / multiplier)).astype(np.int64)
    advance = np.where(is_dirty["spike"], advance * 20, advance)
    advance = np.where(is_dirty["zero_read"], 0, advance)
    prev = rng.integers(0, 20_000_000, size=n) if registers is None else registers
    demand_kw = advance * multiplier / 100 / (_HOURS_PER_MONTH * drawn.load_factor)
    demand = np.rint(demand_kw * 100 / multiplier).astype(np.int64)
    power_factor = np.where(
        rng.random(n) < 0.9, rng.uniform(0.85, 0.98, size=n), rng.uniform(0.6, 0.85, size=n)
    )
    reactive = np.rint(advance * np.sqrt(1 / power_factor**2 - 1)).astype(np.int64)
    replaced_share = rng.uniform(0.2, 0.8, size=n)
    peak_share = np.where(code == _ZJ_TOU, rng.uniform(0.5, 0.7, n), rng.uniform(0.3, 0.4, n))
    flat_share = rng.uniform(0.3, 0.4, n)
    critical_share = np.where(commercial & (month in (7, 8)), rng.uniform(0.04, 0.08, n), 0.0)
    day = rng.integers(1, calendar.monthrange(year, month)[1] + 1, size=n)
    tou_extra = rng.integers(1, 50, size=n)

    # --- readings rows: one per meter; a replaced meter gives a second row -------------
    has_row = active & ~is_dirty["missing_reading"]
    base = np.flatnonzero(has_row)
    extra = np.flatnonzero(has_row & is_dirty["meter_replacement"])
    owner = np.concatenate([base, extra])
    second = np.concatenate([np.zeros(len(base), bool), np.ones(len(extra), bool)])
    order = np.lexsort((second, owner))
    owner, second = owner[order], second[order]
    replaced = is_dirty["meter_replacement"][owner]
    first_part = np.floor(advance[owner] * replaced_share[owner]).astype(np.int64)
    row_advance = np.where(
        replaced, np.where(second, advance[owner] - first_part, first_part), advance[owner]
    )
    row_prev = np.where(second, 0, prev[owner])
    row_cur = row_prev + row_advance
    # What the meters hold after the period (before the dirty kinds below spoil a row):
    # a replaced account's new meter, and every read meter's register, go on next period.
    next_meter = meter.copy()
    next_register = prev.copy()
    next_register[owner[~second]] = row_cur[~second]
    next_register[owner[second]] = row_cur[second]  # a replaced account: its new meter
    next_meter[owner[second]] += 1
    row_reactive = np.where(
        replaced & (advance[owner] > 0),
        reactive[owner] * row_advance // np.maximum(advance[owner], 1),
        reactive[owner],
    )
    critical = np.floor(row_advance * critical_share[owner]).astype(np.int64)
    rest = 1.0 - critical_share[owner]
    peak = np.floor(row_advance * peak_share[owner] * rest).astype(np.int64)
    flat = np.where(
        code[owner] == _ZJ_TOU, 0, np.floor(row_advance * flat_share[owner] * rest)
    ).astype(np.int64)
    valley = row_advance - critical - peak - flat

    primary = ~second
    rollback = primary & is_dirty["register_rollback"][owner]
    row_prev, row_cur = np.where(rollback, row_cur, row_prev), np.where(rollback, row_prev, row_cur)
    row_cur = np.where(primary & is_dirty["negative_register"][owner], -row_cur - 1, row_cur)
    peak = np.where(primary & is_dirty["tou_split_mismatch"][owner], peak + tou_extra[owner], peak)

    counts = {name: int(mask.sum()) for name, mask in is_dirty.items()}
    return _Month(owner=owner, second=second, meter=meter[owner] + second, prev=row_prev,
                  cur=row_cur, critical=critical, peak=peak, flat=flat, valley=valley,
                  demand=demand, reactive=row_reactive, day=day, is_dirty=is_dirty,
                  counts=counts, next_meter=next_meter, next_register=next_register)


def _readings_table(account_id: np.ndarray, drawn: _Drawn, rows: _Month, period: str,
                    period_start: int) -> pa.Table:
    owner = rows.owner
    row_tou = drawn.tou[owner]
    row_kind_ci = drawn.priced_by_capacity[owner]
    return pa.Table.from_arrays(
        [
            pa.array(account_id[owner]),
            pa.array(rows.meter),
            _repeat(period, len(owner)),
            pa.array((period_start + rows.day[owner] - 1).astype(np.int32), pa.date32()),
            pa.array(rows.prev / 100),
            pa.array(rows.cur / 100),
            pa.array(drawn.multiplier[owner].astype(np.int32)),
            pa.array(rows.critical / 100, mask=~row_kind_ci),
            pa.array(rows.peak / 100, mask=~row_tou),
            pa.array(rows.flat / 100, mask=~row_kind_ci),
            pa.array(rows.valley / 100, mask=~row_tou),
            pa.array(rows.demand[owner] / 100, mask=~drawn.industrial[owner]),
            pa.array(rows.reactive / 100, mask=~row_kind_ci),
        ],
        schema=READINGS,
    )


def _state_table(accounts: pa.Table, drawn: _Drawn, rows: _Month, period: str,
                 seed: int) -> pa.Table:
    n = accounts.num_rows
    extra = {
        "period": _repeat(period, n),
        "seed": pa.array(np.full(n, seed, np.int64)),
        "code": pa.array(drawn.code.astype(np.int8)),
        "level_kwh": pa.array(drawn.level),
        "load_factor": pa.array(drawn.load_factor),
        "multiplier": pa.array(drawn.multiplier.astype(np.int32)),
        "meter_point_id": pa.array(rows.next_meter),
        "register": pa.array(rows.next_register),
    }
    return pa.Table.from_arrays([*accounts.columns, *extra.values()], schema=GENERATOR_STATE)



def _history(
    rng: np.random.Generator,
    account_id: np.ndarray,
    kind: np.ndarray,
    level: np.ndarray,
    active: np.ndarray,
    opened: np.ndarray,
    period: str,
) -> pa.Table:
    """The 12 billed months before ``period`` of each active account open by then."""
    months = periods_before(period, 12)
    month_index = np.array([int(p[5:]) - 1 for p in months])
    next_start = np.array(
        [
            (dt.date.fromisoformat(shift_period(p, 1) + "-01") - dt.date(1970, 1, 1)).days
            for p in months
        ]
    )
    n = len(account_id)
    noise = np.exp(0.1 * rng.standard_normal((n, 12)))
    kwh = np.rint(level[:, None] * _SEASON[kind][:, month_index] * noise * 100).astype(np.int64)
    keep = active[:, None] & (opened[:, None] < next_start[None, :])
    rows, cols = np.nonzero(keep)
    return pa.Table.from_arrays(
        [
            pa.array(account_id[rows]),
            pa.array(np.array(months, dtype=object)[cols], pa.string()),
            pa.array(kwh[rows, cols] / 100),
        ],
        schema=USAGE_HISTORY,
    )


def _standard_size(needed: np.ndarray, sizes: np.ndarray, bump: np.ndarray) -> np.ndarray:
    """The standard size ``bump`` steps above the smallest >= ``needed`` (capped at the top)."""
    index = np.minimum(np.searchsorted(sizes, needed, side="left") + bump, len(sizes) - 1)
    return sizes[index]


def _repeat(value: str, n: int) -> pa.Array:
    return pa.array([value], pa.string()).take(np.zeros(n, dtype=np.int64))
