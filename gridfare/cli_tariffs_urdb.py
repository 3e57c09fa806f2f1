"""``gridfare tariff import-urdb`` and ``gridfare tariff bill``: URDB rates and hourly bills.

No Ray: both read files, price with the pure core and print. Heavy imports stay inside
the handlers so that the command answers quickly.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from gridfare.errors import InvalidInput, ProfileError, UrdbError

__all__ = ["add_urdb_commands", "read_load_csv"]


def add_urdb_commands(tariff_commands) -> None:
    importing = tariff_commands.add_parser(
        "import-urdb", help="check a URDB export (API v7/v8 JSON) and translate its rates")
    importing.add_argument("file", help="an export: {\"items\": [rate records]}")
    importing.add_argument("--label", help="only the record with this label")
    importing.add_argument("--out", help="write each rate as OUT/<label>.json (one-item "
                           "exports), only once every record is accepted")
    importing.add_argument("--json", action="store_true")
    importing.set_defaults(handler=_import_urdb)

    bill = tariff_commands.add_parser(
        "bill", help="bill a year of hourly load under a URDB or CN tariff")
    which = bill.add_mutually_exclusive_group(required=True)
    which.add_argument("--urdb", metavar="FILE.json", help="a URDB export")
    which.add_argument("--cn", metavar="CODE", help="a CN tariff code of the tariff book")
    bill.add_argument("--label", help="the URDB record, if the export holds several")
    bill.add_argument("--tariffs", help="with --cn: directory of tariff files")
    bill.add_argument("--capacity-kva", help="with --cn: contracted capacity (two-part)")
    bill.add_argument("--tou-hours", help="with --cn: 24 comma-separated TOU periods, one "
                      "per hour from 00:00 (default: docs/urdb.md)")
    bill.add_argument("--load", required=True, help="CSV: one kWh value per hour, "
                      "optionally under a header line")
    bill.add_argument("--year", required=True, type=int, help="the calendar year of the load")
    bill.add_argument("--json", action="store_true")
    bill.set_defaults(handler=_bill)


def read_load_csv(path: str, year: int) -> list[str]:
    """The hourly values of a load file as text (checked later, exactly, by ``load_wh``)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read load file: {exc}") from exc
    while lines and not lines[-1].strip():
        lines.pop()
    values = [line.strip() for line in lines]
    if values and not _numeric(values[0]):
        values = values[1:]  # a header
    for number, value in enumerate(values):
        if "," in value or ";" in value:
            raise ProfileError(f"{path}: hour {number}: {value!r}: expected one kWh value a "
                               "line, not several columns")
    return values


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _import_urdb(args: argparse.Namespace) -> int:
    from gridfare.tariffs.urdb import load_urdb

    tariffs = load_urdb(args.file, label=args.label)
    if args.out:
        _write_records(args.file, [t.label for t in tariffs], Path(args.out))
    if args.json:
        print(json.dumps([{"label": t.label, "name": t.name, "utility": t.utility,
                           "currency": t.currency,
                           "components": [c.kind for c in t.components]} for t in tariffs],
                         indent=2))
        return 0
    for tariff in tariffs:
        print(tariff.describe())
    print(f"{len(tariffs)} rate{'s' if len(tariffs) != 1 else ''} accepted from {args.file}"
          + (f", written to {args.out}" if args.out else ""))
    return 0


def _write_records(source: str, labels: list[str], out: Path) -> None:
    """Each accepted record as its own export, written to a temporary name then renamed."""
    items = {item.get("label"): item for item in json.loads(Path(source).read_bytes())["items"]}
    try:
        out.mkdir(parents=True, exist_ok=True)
        for label in labels:
            fd, temp = tempfile.mkstemp(dir=out, prefix=f".{label}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as sink:
                json.dump({"items": [items[label]]}, sink, indent=1)
            os.replace(temp, out / f"{label}.json")
    except OSError as exc:
        raise UrdbError(f"{out}: cannot write the imported rates: {exc}") from exc


def _bill(args: argparse.Namespace) -> int:
    from gridfare.tariffs.hourly_bill import bill_hourly

    if args.urdb:
        from gridfare.tariffs.urdb import load_urdb

        tariffs = load_urdb(args.urdb, label=args.label)
        if len(tariffs) > 1:
            raise InvalidInput(f"{args.urdb}: holds {len(tariffs)} rates; choose one with "
                               "--label (labels: " + ", ".join(t.label for t in tariffs) + ")")
        tariff, title = tariffs[0], f"{tariffs[0].label}: {tariffs[0].name}"
    else:
        from gridfare.tariffs import load_tariff_book

        tariff = load_tariff_book(args.tariffs)[args.cn]
        title = f"{tariff.code}: {tariff.name}"
    hours = None
    if args.tou_hours:
        hours = [period.strip() for period in args.tou_hours.split(",")]
    bill = bill_hourly(tariff, read_load_csv(args.load, args.year), args.year,
                       tou_hours=hours, capacity_kva=args.capacity_kva, profile=args.load)
    result = bill.to_dict()
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    print(f"{title} ({bill.currency}, {bill.year})")
    shown = ("energy", "demand", "fixed", "minimum_adjustment", "total")
    print(f"  {'month':>5} " + " ".join(f"{line:>18}" for line in shown))
    for month in result["months"]:
        print(f"  {month['month']:>5} " + " ".join(f"{month[line]:>18}" for line in shown))
    print(f"  annual total {result['total']} {bill.currency}")
    return 0
