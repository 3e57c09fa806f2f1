"""Rate one billing section: accounts + readings in, bills + audit exceptions out.

Vectorized over the section in exact int64 units (see ``gridfare.money``): registers are
quantised to 0.01 kWh first, so every later step is integer arithmetic. One call of
``Tariff.charge`` per tariff present in the section prices all its accounts at once.

``bill_bundle`` rates several sections in one pass: the same code over the sections' rows
side by side, each row knowing its section (its *segment*), so a reading or a history row
only ever matches an account of its own section. The per-call cost of a few thousand
numpy/Arrow calls is then paid once per bundle, and every section's bills and exceptions
are exactly those ``bill_section`` gives it alone (``bill_section`` is a one-section bundle).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets.schemas import AUDIT_EXCEPTIONS, BILLS, CHARGE_LINES, HISTORY_FOLD, history_months
from gridfare.billing import audit
from gridfare.billing.audit import AuditRules
from gridfare.billing.history import locate, summarize_history
from gridfare.errors import GridfareError, InvalidInput
from gridfare.money import ENERGY_SCALE, FLOAT_EXACT_UNITS, QuantityBounds
from gridfare.period import Period
from gridfare.tariffs import Tariff, Usage
from gridfare.tariffs.bounds import bounds_of
from gridfare.tariffs.power_factor import STANDARDS
from gridfare.tariffs.usage import PF_NOT_METERED

_TOU_COLUMNS = ("critical_kwh", "peak_kwh", "flat_kwh", "valley_kwh")
_QUANTITY_COLUMNS = ("prev_register", "cur_register", *_TOU_COLUMNS,
                     "max_demand_kw", "reactive_kvarh")
_MAX_ROWS = 1024  # readings of one account in one period: 1023 * 2**53 < 2**63


@dataclass(frozen=True)
class SectionBills:
    """The result of rating one section."""

    section_id: str
    period: str
    bills: pa.Table  # schema BILLS, sorted by account_id
    exceptions: pa.Table  # schema AUDIT_EXCEPTIONS, sorted by account_id then rule

    @property
    def total_fen(self) -> int:
        return int(pc.sum(self.bills["total_fen"]).as_py() or 0)


@dataclass(frozen=True)
class SectionInput:
    """One section's tables for ``bill_bundle``."""

    section_id: str
    accounts: pa.Table
    readings: pa.Table
    history: pa.Table | None = None


def bill_section(
    accounts: pa.Table,
    readings: pa.Table,
    tariffs: Mapping[str, Tariff],
    period: str,
    *,
    history: pa.Table | None = None,
    rules: AuditRules = AuditRules(),  # noqa: B008 - frozen, so a shared default is safe
    run_id: str = "",
    section_id: str | None = None,
) -> SectionBills:
    """Audit and rate every account of one section for ``period``.

    ``readings`` may hold other periods (they are ignored) and several meter points per
    account (a replaced meter): an account's energy is the sum over its meter points.
    ``history`` holds ``(account_id, period, kwh)`` of earlier months (or billing's own
    ``(account_id, month, kwh)`` rows: ``history_months``). An account that fails
    an audit rule goes to exceptions with the rule and a detail, never to bills.
    """
    billing_period = Period.parse(period)
    section_id = _section_of(accounts, section_id)
    return _bill_segments([SectionInput(section_id, accounts, readings, history)], tariffs,
                          billing_period, rules, run_id)[0]


def bill_bundle(
    sections: Sequence[SectionInput],
    tariffs: Mapping[str, Tariff],
    period: str,
    *,
    rules: AuditRules = AuditRules(),  # noqa: B008 - frozen, so a shared default is safe
    run_id: str = "",
) -> list[SectionBills | GridfareError]:
    """``bill_section`` for several sections in one pass; one result per section, in order.

    A section whose input is wrong gets its error in its place and the others are billed:
    if the joint pass fails, each section is rated alone, so only the bad one fails.
    """
    billing_period = Period.parse(period)
    results: list[SectionBills | GridfareError | None] = [None] * len(sections)
    valid: list[int] = []
    for index, part in enumerate(sections):
        try:
            _section_of(part.accounts, part.section_id)
            valid.append(index)
        except GridfareError as exc:
            results[index] = exc
    try:
        rated: list[SectionBills | GridfareError] = list(_bill_segments(
            [sections[i] for i in valid], tariffs, billing_period, rules, run_id))
    except (GridfareError, pa.ArrowException):
        # Which section is at fault is unknown: rate each alone, so only it fails.
        rated = []
        for index in valid:
            try:
                rated += _bill_segments([sections[index]], tariffs, billing_period, rules,
                                        run_id)
            except GridfareError as exc:
                rated.append(exc)
    for index, result in zip(valid, rated, strict=True):
        results[index] = result
    return results  # type: ignore[return-value] - every slot is filled above


def _bill_segments(parts: Sequence[SectionInput], tariffs: Mapping[str, Tariff],
                   billing_period: Period, rules: AuditRules,
                   run_id: str) -> list[SectionBills]:
    """Rate ``parts`` side by side; each row keeps to its own section (segment)."""
    if not parts:
        return []
    period = str(billing_period)
    k = len(parts)
    sorted_accounts = [_by_account(part.accounts) for part in parts]
    sizes = [table.num_rows for table in sorted_accounts]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    accounts = _stack(sorted_accounts)
    account_ids = accounts["account_id"].to_numpy()
    segment = np.repeat(np.arange(k), sizes)
    same = (account_ids[1:] == account_ids[:-1]) & (segment[1:] == segment[:-1])
    if np.any(same):
        first = int(np.flatnonzero(same)[0])
        raise InvalidInput(f"section {parts[segment[first]].section_id}: account "
                           f"{int(account_ids[first])} appears twice")

    readings = _stack([part.readings for part in parts])
    reading_segment = np.repeat(np.arange(k), [part.readings.num_rows for part in parts])
    in_period = pc.fill_null(pc.equal(readings["period"], period), False)
    readings = readings.filter(in_period)
    reading_segment = reading_segment[in_period.to_numpy(zero_copy_only=False)]
    bounds = bounds_of(tariffs.values())
    metered = _aggregate_readings(readings, account_ids, offsets, reading_segment, bounds)
    findings = _Findings(account_ids, segment)
    findings.extend(metered.row_findings)
    history = None
    # Month indices, not labels (history_months): a part's rows as it came, or read from
    # its labels once (a caller's USAGE_HISTORY rows).
    histories = [HISTORY_FOLD.empty_table() if part.history is None
                 else history_months(part.history) for part in parts]
    if any(part.history is not None for part in parts):
        history = _stack(histories)
    history_segment = np.repeat(np.arange(k), [table.num_rows for table in histories])
    if history is not None and history.num_rows:
        history, history_segment = _drop_bad_history(history, history_segment, account_ids,
                                                     offsets, findings)
    profile = summarize_history(history, account_ids, billing_period, rules.history_months,
                                account_offsets=offsets, row_segments=history_segment)
    findings.add_where(profile.ytd_kwh > FLOAT_EXACT_UNITS, audit.OUT_OF_RANGE,
                       lambda i: f"energy billed earlier this year {_kwh(profile.ytd_kwh[i])} "
                                 "kWh is beyond float64's 0.01 steps")
    for account_id, meter_point_id, at in metered.orphans:
        findings.add_orphan(account_id, meter_point_id, at, parts[at].section_id)

    n = len(account_ids)
    capacity, bad_capacity = _checked_units(accounts["capacity_kva"])
    # An account without a standard of its own takes its tariff's standard_default (below,
    # per tariff), as ``gridfare tariff quote`` does; a stored 0 exempts it.
    pf_given = accounts["pf_standard"].is_valid().to_numpy(zero_copy_only=False)
    pf_raw = pc.fill_null(accounts["pf_standard"], 0.0).to_numpy(zero_copy_only=False)
    pf_standard = np.rint(np.where(np.isfinite(pf_raw), pf_raw, -1.0) * 100).astype(np.int64)
    bad_account = bad_capacity | (capacity < 0) | (capacity > bounds.demand)
    bad_account |= ~np.isin(pf_standard, (0, *STANDARDS))
    findings.add_where(bad_account, audit.OUT_OF_RANGE,
                       lambda i: f"account capacity_kva {accounts['capacity_kva'][i].as_py()}, "
                                 f"pf_standard {accounts['pf_standard'][i].as_py()}: capacity "
                                 "must be finite, non-negative and within "
                                 f"{_kwh(bounds.demand)} kVA, the standard 0.80, 0.85 or 0.90")
    capacity = np.where(bad_account, 0, capacity)
    pf_standard = np.where(bad_account, 0, pf_standard)
    active = accounts["active"].to_numpy(zero_copy_only=False).astype(bool)
    # Few tariffs over many accounts: look each tariff up once, then work with masks.
    encoded = pc.dictionary_encode(accounts["tariff_code"]).combine_chunks()
    labels = encoded.dictionary.to_pylist()
    tariff_index = encoded.indices.to_numpy(zero_copy_only=False)
    of_tariff = {code: tariff_index == k for k, code in enumerate(labels) if code in tariffs}
    has_reading = metered.rows > 0
    clean = has_reading & ~findings.flagged(n)

    # An account opened after the period (a later month's new account, billed again for
    # an earlier period) has nothing to read in it.
    next_start = (dt.date(billing_period.year + billing_period.month // 12,
                          billing_period.month % 12 + 1, 1) - dt.date(1970, 1, 1)).days
    opened = accounts["opened_on"].cast(pa.int32()).to_numpy(zero_copy_only=False)
    findings.add_where(active & (opened < next_start) & ~has_reading, audit.MISSING_READING,
                       lambda i: f"active account has no reading for {period}")
    known = np.isin(tariff_index, [k for k, code in enumerate(labels) if code in tariffs])
    findings.add_where(has_reading & ~known, audit.UNKNOWN_TARIFF,
                       lambda i: f"tariff {labels[tariff_index[i]]!r} is not in the tariff book")
    findings.add_where(clean & active & (metered.kwh == 0), audit.ZERO_CONSUMPTION,
                       lambda i: f"active account consumed 0 kWh in {period}")
    spike_limit = np.maximum(profile.avg_kwh * rules.spike_factor,
                             rules.spike_floor_kwh * ENERGY_SCALE)
    findings.add_where(
        clean & (profile.avg_kwh > 0) & (metered.kwh > spike_limit), audit.CONSUMPTION_SPIKE,
        lambda i: (f"{_kwh(metered.kwh[i])} kWh is above {rules.spike_factor}x the "
                   f"{rules.history_months}-month average of {_kwh(profile.avg_kwh[i])} kWh"),
    )

    for code, mask_of_tariff in sorted(of_tariff.items()):
        lacking = _lacking_inputs(tariffs[code], metered, capacity)
        for what, mask in lacking.items():
            findings.add_where(has_reading & mask_of_tariff & mask, audit.INPUT_NOT_METERED,
                               lambda i, what=what, code=code:
                               f"tariff {code} needs {what}, which this account lacks")

    for code, mask_of_tariff in sorted(of_tariff.items()):
        periods = tariffs[code].tou_periods
        for column in _TOU_COLUMNS if periods else ():
            name = column.removesuffix("_kwh")
            # Critical energy outside a critical tariff is priced at peak, by the tariff.
            if name in periods or name == "critical":
                continue
            findings.add_where(
                has_reading & mask_of_tariff & (metered.tou[column] != 0),
                audit.TOU_SPLIT_MISMATCH,
                lambda i, code=code, name=name, column=column:
                f"tariff {code} has no {name} period but {_kwh(metered.tou[column][i])} kWh "
                f"were metered {name}",
            )

    billable = has_reading & known & ~findings.flagged(n)
    lines = {line: np.zeros(n, np.int64) for line in CHARGE_LINES}
    for code, mask_of_tariff in sorted(of_tariff.items()):
        rows = np.flatnonzero(billable & mask_of_tariff)
        if len(rows) == 0:
            continue
        usage = Usage(
            month=billing_period.month,
            kwh=metered.kwh[rows],
            critical=metered.tou["critical_kwh"][rows],
            peak=metered.tou["peak_kwh"][rows],
            flat=metered.tou["flat_kwh"][rows],
            valley=metered.tou["valley_kwh"][rows],
            tou_metered=metered.tou_metered[rows],
            max_demand_kw=metered.max_demand[rows],
            capacity_kva=capacity[rows],
            power_factor=metered.power_factor[rows],
            pf_standard=np.where(pf_given[rows], pf_standard[rows],
                                 tariffs[code].pf_standard_default),
            ytd_kwh=profile.ytd_kwh[rows],
        )
        for line, fen in tariffs[code].charge(usage).items():
            lines[line][rows] = fen

    keep = np.flatnonzero(billable)
    total = np.zeros(len(keep), np.int64)
    for line in CHARGE_LINES:
        total += lines[line][keep]
    pf = metered.power_factor[keep]
    bills = pa.table(
        {
            "account_id": pa.array(account_ids[keep], pa.int64()),
            "period": _repeat(period, len(keep)),
            "section_id": _repeat("", len(keep)),  # set per section below
            "tariff_code": accounts["tariff_code"].take(keep),
            "kwh": pa.array(metered.kwh[keep] / ENERGY_SCALE, pa.float64()),
            "power_factor": pa.array(pf / 100, pa.float64(), mask=pf == PF_NOT_METERED),
            **{line: pa.array(lines[line][keep], pa.int64()) for line in CHARGE_LINES},
            "total_fen": pa.array(total, pa.int64()),
            "run_id": _repeat(run_id, len(keep)),
        },
        schema=BILLS,
    ).combine_chunks()
    bounds = np.searchsorted(keep, offsets)
    section_column = BILLS.get_field_index("section_id")
    results = []
    for at, part in enumerate(parts):
        lo, hi = int(bounds[at]), int(bounds[at + 1])
        own = bills.slice(lo, hi - lo)
        own = own.set_column(section_column, BILLS.field("section_id"),
                             _repeat(part.section_id, hi - lo))
        results.append(SectionBills(part.section_id, period, own,
                                    findings.table(at, period, part.section_id, run_id)))
    return results


def _stack(tables: Sequence[pa.Table]) -> pa.Table:
    """Tables of the same schema one after another (the one table itself when alone)."""
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _repeat(value: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), n)


def _by_account(accounts: pa.Table) -> pa.Table:
    """``accounts`` sorted by account id; stored sections already are, and are kept as is."""
    ids = accounts["account_id"].to_numpy()
    if len(ids) < 2 or bool(np.all(ids[1:] >= ids[:-1])):
        return accounts
    return accounts.sort_by("account_id")


def _section_of(accounts: pa.Table, section_id: str | None) -> str:
    sections = pc.unique(accounts["section_id"]).to_pylist()
    if section_id is None:
        if len(sections) != 1:
            raise InvalidInput(f"accounts span sections {sections[:5]}: bill one section at "
                               "a time or name it with section_id")
        return sections[0]
    if any(s != section_id for s in sections):
        raise InvalidInput(f"section {section_id}: accounts of other sections were passed")
    return section_id


@dataclass(frozen=True)
class _Metered:
    """Readings folded per account (index = position in the sorted account ids)."""

    rows: np.ndarray  # readings per account
    kwh: np.ndarray
    tou: dict[str, np.ndarray]
    tou_metered: np.ndarray
    max_demand: np.ndarray
    demand_metered: np.ndarray
    power_factor: np.ndarray  # hundredths, PF_NOT_METERED = not metered
    row_findings: list[tuple[int, str, str]]  # (account position, rule, detail)
    orphans: list[tuple[int, int, int]]  # (account_id, meter_point_id, segment): not in it


def _aggregate_readings(readings: pa.Table, account_ids: np.ndarray, offsets: np.ndarray,
                        segments: np.ndarray, bounds: QuantityBounds) -> _Metered:
    n = len(account_ids)
    ids = readings["account_id"].to_numpy()
    meters = readings["meter_point_id"].to_numpy()
    pos, found = locate(account_ids, offsets, ids, segments)
    orphans = [(int(a), int(m), int(at)) for a, m, at
               in zip(ids[~found], meters[~found], segments[~found], strict=True)]

    prev, bad_prev = _checked_units(readings["prev_register"])
    cur, bad_cur = _checked_units(readings["cur_register"])
    mult = readings["multiplier"].to_numpy().astype(np.int64)
    tou_checked = {c: _checked_units(readings[c]) for c in _TOU_COLUMNS}
    tou = {c: units for c, (units, _) in tou_checked.items()}
    demand, bad_demand = _checked_units(readings["max_demand_kw"])
    reactive, bad_reactive = _checked_units(readings["reactive_kvarh"])
    advance = cur - prev  # both within 2**53: no wrap
    # A row is out of range where a value is not finite, beyond float64's 0.01 steps, or
    # its product with the multiplier beyond the book's bounds (gridfare.tariffs.bounds):
    # compared as value > bound // multiplier, exact, before any product is formed.
    safe_mult = np.maximum(mult, 1)
    energy_cap = bounds.energy // safe_mult
    out = (mult < 1) | bad_prev | bad_cur | bad_demand | bad_reactive
    out |= (advance > energy_cap) | (demand > bounds.demand // safe_mult) | (demand < 0)
    out |= (reactive > energy_cap) | (reactive < 0)
    for units, bad in tou_checked.values():
        out |= bad | (units > energy_cap)
    conflict = _meter_conflicts(ids, meters, segments) & ~out
    # Peak and valley are what every TOU meter registers; flat and critical may be absent.
    row_tou = (readings["peak_kwh"].is_valid().to_numpy(zero_copy_only=False)
               & readings["valley_kwh"].is_valid().to_numpy(zero_copy_only=False))
    tou_sum = sum(tou.values())
    checked = ~out & ~conflict
    negative = checked & ((prev < 0) | (cur < 0) | np.any([t < 0 for t in tou.values()], axis=0))
    rollback = checked & ~negative & (cur < prev)
    mismatch = checked & ~negative & ~rollback & row_tou & (tou_sum != advance)

    row_findings: list[tuple[int, str, str]] = []
    for mask, rule, describe in (
        (out, audit.OUT_OF_RANGE, lambda r: _out_of_range_detail(readings, r, meters, mult)),
        (conflict, audit.METER_CONFLICT,
         lambda r: f"meter {meters[r]}: " + ("a meter point id is at least 1" if meters[r] < 1
                                              else "read on more than one row this period")),
        (negative, audit.NEGATIVE_REGISTER,
         lambda r: f"meter {meters[r]}: registers prev {_kwh(prev[r])} cur {_kwh(cur[r])} "
                   "(and TOU splits) cannot be negative"),
        (rollback, audit.REGISTER_ROLLBACK,
         lambda r: f"meter {meters[r]}: cur {_kwh(cur[r])} is below prev {_kwh(prev[r])}"),
        (mismatch, audit.TOU_SPLIT_MISMATCH,
         lambda r: f"meter {meters[r]}: TOU splits sum to {_kwh(tou_sum[r])} kWh but the "
                   f"register advanced {_kwh(advance[r])} kWh"),
    ):
        for r in np.flatnonzero(mask & found):
            row_findings.append((int(pos[r]), rule, describe(r)))

    idx = pos[found]
    rows = np.bincount(idx, minlength=n).astype(np.int64)
    # Each row's products are now within 2**53, so sums of fewer than 1024 rows cannot
    # wrap; the rows of an out-of-range row's account, or of an account with more rows,
    # count as zero (the account is not billed).
    crowded = rows >= _MAX_ROWS
    for at in np.flatnonzero(crowded):
        row_findings.append((int(at), audit.OUT_OF_RANGE,
                             f"{int(rows[at])} readings in one period (at most "
                             f"{_MAX_ROWS - 1})"))
    # Flagged rows are never billed; voided, their products cannot wrap either.
    void = out | conflict | negative | rollback | ~found
    void[found] |= crowded[idx]
    if void.any():
        mult = np.where(void, 0, mult)
    kwh = _sum_at(idx, (advance * mult)[found], n)
    tou_totals = {c: _sum_at(idx, (tou[c] * mult)[found], n) for c in _TOU_COLUMNS}
    tou_metered = _sum_at(idx, row_tou[found].astype(np.int64), n) == rows

    demand_valid = readings["max_demand_kw"].is_valid().to_numpy(zero_copy_only=False)
    max_demand = np.zeros(n, np.int64)
    np.maximum.at(max_demand, idx, (demand * mult)[found])
    demand_metered = _sum_at(idx, demand_valid[found].astype(np.int64), n) > 0

    reactive_valid = readings["reactive_kvarh"].is_valid().to_numpy(zero_copy_only=False)
    reactive = _sum_at(idx, (reactive * mult)[found], n)
    reactive_metered = _sum_at(idx, reactive_valid[found].astype(np.int64), n) > 0
    summed = {"energy": kwh, "reactive_kvarh": reactive, **tou_totals}
    for what, total in summed.items():
        for at in np.flatnonzero(total > bounds.energy):
            row_findings.append((int(at), audit.OUT_OF_RANGE, bounds.describe(
                f"{what} over the account's meters", _kwh(int(total[at])))))
    power_factor = _power_factor(kwh, reactive, reactive_metered & (kwh > 0))
    return _Metered(rows, kwh, tou_totals, tou_metered & (rows > 0), max_demand,
                    demand_metered, power_factor, row_findings, orphans)


def _meter_conflicts(accounts: np.ndarray, meters: np.ndarray,
                     segments: np.ndarray) -> np.ndarray:
    """Rows whose meter point id is below 1, or that repeat an account's meter point in its
    section: a meter point is read once a period, and a second row would bill it twice.
    (Which account a meter point belongs to is the importer's rule, which knows the data
    centre's earlier readings: ``datasets.importer``.)"""
    conflict = meters < 1
    if len(meters) < 2:
        return conflict
    # Stored readings are sorted by account and meter point: rising keys are distinct
    # without a sort (one pass, where a sort cost ~0.1 s of a 1.5 M-row run).
    step = np.diff(accounts)
    rising = (step > 0) | ((step == 0) & (np.diff(meters) > 0)) | (np.diff(segments) != 0)
    if rising.all():
        return conflict
    order = np.lexsort((meters, accounts, segments))
    same = ((np.diff(meters[order]) == 0) & (np.diff(accounts[order]) == 0)
            & (np.diff(segments[order]) == 0))
    twice = np.zeros(len(meters), bool)
    twice[order[1:][same]] = True
    twice[order[:-1][same]] = True
    return conflict | twice


def _out_of_range_detail(readings: pa.Table, row: int, meters: np.ndarray,
                         mult: np.ndarray) -> str:
    values = {name: readings[name][row].as_py() for name in _QUANTITY_COLUMNS}
    shown = ", ".join(f"{name} {value}" for name, value in values.items() if value is not None)
    return (f"meter {meters[row]}: multiplier {mult[row]}, {shown}: a multiplier below 1, a "
            "value that is not finite or negative, or a product with the multiplier beyond "
            "what the tariff book prices exactly in int64 fen")


def _drop_bad_history(history: pa.Table, segments: np.ndarray, account_ids: np.ndarray,
                      offsets: np.ndarray, findings: _Findings) -> tuple[pa.Table, np.ndarray]:
    """History rows without a finite kWh in 0..2**53 units, dropped; their accounts flagged."""
    values = history["kwh"].to_numpy(zero_copy_only=False)
    if _within(values, FLOAT_EXACT_UNITS / ENERGY_SCALE, 0.0):
        return history, segments
    kwh = values * ENERGY_SCALE
    bad = ~((kwh >= 0) & (kwh <= FLOAT_EXACT_UNITS))
    pos, found = locate(account_ids, offsets, history["account_id"].to_numpy(), segments)
    flagged = np.zeros(len(account_ids), bool)
    flagged[pos[bad & found]] = True
    findings.add_where(flagged, audit.OUT_OF_RANGE,
                       lambda i: "usage history holds a kWh that is negative, not finite or "
                                 "beyond float64's 0.01 steps")
    keep = ~bad
    return history.filter(pa.array(keep)), segments[keep]


def _lacking_inputs(tariff: Tariff, metered: _Metered,
                    capacity: np.ndarray) -> dict[str, np.ndarray]:
    needs = {
        "tou": ("a time-of-use split", ~metered.tou_metered),
        "max_demand": ("a maximum-demand reading", ~metered.demand_metered),
        "capacity": ("a contracted capacity", capacity <= 0),
    }
    return {needs[r][0]: needs[r][1] for r in sorted(tariff.requires) if r in needs}


def _power_factor(kwh: np.ndarray, kvarh: np.ndarray, where: np.ndarray) -> np.ndarray:
    """cos(phi) = kWh / sqrt(kWh^2 + kvarh^2) in hundredths, half-up as the tables expect;
    PF_NOT_METERED where ``where`` is false (no reactive metering or no energy). A factor
    that rounds to 0.00 stays 0: a reading the table surcharges, not a missing one."""
    p = kwh.astype(np.float64)
    q = kvarh.astype(np.float64)
    ratio = np.divide(p, np.sqrt(p * p + q * q), out=np.zeros(len(p)), where=where)
    hundredths = np.floor(ratio * 100 + 0.5 + 1e-9).astype(np.int64)
    return np.where(where, hundredths, PF_NOT_METERED)


def _sum_at(idx: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, np.int64)
    np.add.at(out, idx, values)
    return out


def _checked_units(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """kWh floats (null: 0) as exact int64 units of 0.01, never casting garbage: ``(units,
    bad)`` where ``bad`` marks a value that is not finite or beyond 2**53 units (float64's
    exact 0.01 steps), held as 0."""
    values = pc.fill_null(column, 0.0).to_numpy(zero_copy_only=False)
    if _within(values, FLOAT_EXACT_UNITS / ENERGY_SCALE):
        return np.rint(values * ENERGY_SCALE).astype(np.int64), np.zeros(len(values), bool)
    scaled = values * ENERGY_SCALE
    bad = ~(np.abs(scaled) <= FLOAT_EXACT_UNITS)  # NaN compares false: bad
    return np.rint(np.where(bad, 0.0, scaled)).astype(np.int64), bad


def _within(values: np.ndarray, most: float, least: float | None = None) -> bool:
    """Whether every value is in ``[least (default -most), most]``: two reductions, no
    temporaries (the common case of the checks above costs ~1 ms a 1.5 M-row run). A NaN
    makes a reduction NaN, which fails the comparison."""
    if not len(values):
        return True
    return bool(values.max() <= most) and bool(values.min() >= (-most if least is None
                                                                  else least))


def _kwh(units: int) -> str:
    return f"{units / ENERGY_SCALE:.2f}"


class _Findings:
    """Audit exceptions being collected, at most one per section, account and rule."""

    def __init__(self, account_ids: np.ndarray, segments: np.ndarray) -> None:
        self._account_ids = account_ids
        self._segments = segments
        self._rows: dict[tuple[int, int, str], str] = {}  # (segment, account, rule) -> detail
        self._flagged: set[int] = set()

    def extend(self, findings: list[tuple[int, str, str]]) -> None:
        for position, rule, detail in findings:
            self._add(int(self._segments[position]), int(self._account_ids[position]), rule,
                      detail)
            self._flagged.add(position)

    def add_orphan(self, account_id: int, meter_point_id: int, segment: int,
                   section_id: str) -> None:
        self._add(segment, account_id, audit.READING_WITHOUT_ACCOUNT,
                  f"meter {meter_point_id}: account {account_id} is not in section {section_id}")

    def add_where(self, mask: np.ndarray, rule: str, describe) -> None:
        for position in np.flatnonzero(mask):
            self._add(int(self._segments[position]), int(self._account_ids[position]), rule,
                      describe(position))
            self._flagged.add(int(position))

    def flagged(self, n: int) -> np.ndarray:
        mask = np.zeros(n, bool)
        mask[list(self._flagged)] = True
        return mask

    def _add(self, segment: int, account_id: int, rule: str, detail: str) -> None:
        # Two meters of one account breaking one rule make one exception with both details.
        key = (segment, account_id, rule)
        self._rows[key] = f"{self._rows[key]}; {detail}" if key in self._rows else detail

    def table(self, segment: int, period: str, section_id: str, run_id: str) -> pa.Table:
        keys = sorted((k for k in self._rows if k[0] == segment),
                      key=lambda k: (k[1], audit.RULES.index(k[2])))
        return pa.table(
            {
                "account_id": pa.array([k[1] for k in keys], pa.int64()),
                "period": pa.array([period] * len(keys), pa.string()),
                "section_id": pa.array([section_id] * len(keys), pa.string()),
                "rule": pa.array([k[2] for k in keys], pa.string()),
                "detail": pa.array([self._rows[k] for k in keys], pa.string()),
                "run_id": pa.array([run_id] * len(keys), pa.string()),
            },
            schema=AUDIT_EXCEPTIONS,
        )
