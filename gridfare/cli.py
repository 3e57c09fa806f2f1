"""The ``gridfare`` command. Heavy modules are imported inside each command so that
``gridfare tariff quote`` answers in well under a second."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from gridfare.errors import ConfigError, GridfareError, InvalidInput
from gridfare.exit_codes import BROKEN_PIPE, INTERRUPTED, SECTIONS_FAILED, error_line, exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every refusal is one line on stderr and the exit code of its error
    class (``gridfare.exit_codes``), never a traceback."""
    try:
        try:
            args = _parser().parse_args(argv)
            code = int(args.handler(args) or 0)
        finally:
            sys.stdout.flush()  # here, so that a closed pipe is seen here, not at exit
        return code
    except GridfareError as exc:
        from datasets.uri import redact  # the messages name URIs; never their credentials

        print(redact(error_line(exc)), file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("gridfare: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`gridfare summary ... | head -1`): say nothing, as a
        # command killed by SIGPIPE would, and let no later flush raise it again.
        _silence_stdout()
        return BROKEN_PIPE


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # stdout is not a file (a test's capture): nothing will flush it at exit


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error raised as a ConfigError (one line, the table's exit
    code) rather than printed as usage text and a second line."""

    def error(self, message: str):
        raise ConfigError(f"{self.prog}: {message} (see {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gridfare", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="generate a synthetic city's data centre")
    generate.add_argument("--accounts", type=int, help="default 200,000 (a new city)")
    generate.add_argument("--sections", type=int, help="default 400 (a new city)")
    when = generate.add_mutually_exclusive_group()
    when.add_argument("--period", help="YYYY-MM")
    when.add_argument("--periods", help="FIRST..LAST, e.g. 2026-01..2027-01: month by month")
    generate.add_argument("--seed", type=int, help="default 7 (a new city)")
    generate.add_argument("--out", required=True, help="data centre directory or URI")
    generate.add_argument("--replace", action="store_true",
                          help="replace the city already there (default: refuse)")
    generate.add_argument("--continue", dest="continue_city", action="store_true",
                          help="continue the city in --out into its next period(s): the same "
                               "accounts and meters (default: the one period after its last)")
    generate.set_defaults(handler=_generate)

    importing = commands.add_parser("import", help="import a utility's own files")
    what = importing.add_subparsers(dest="what", required=True)
    readings = what.add_parser("readings", help="import meter readings (CSV or Parquet)")
    readings.add_argument("file")
    readings.add_argument("--datacentre", required=True)
    readings.add_argument("--period", help="refuse rows of any other period")
    readings.add_argument("--rejects", help="rejects file (default FILE.rejects.csv)")
    readings.add_argument("--tariffs", help="tariff directory whose prices bound the "
                                            "quantities (default: samples)")
    readings.set_defaults(handler=_import_readings)

    tariff = commands.add_parser("tariff", help="tariffs: list and quote")
    tariff_commands = tariff.add_subparsers(dest="tariff_command", required=True)
    listing = tariff_commands.add_parser("list", help="list the tariff book")
    listing.add_argument("--tariffs", help="directory of tariff files (default: samples)")
    listing.set_defaults(handler=_tariff_list)
    quote = tariff_commands.add_parser("quote", help="price one month of one account")
    quote.add_argument("tariff_code")
    quote.add_argument("--kwh", required=True)
    for name in ("critical-kwh", "peak-kwh", "flat-kwh", "valley-kwh", "max-demand-kw",
                 "capacity-kva", "power-factor", "pf-standard"):
        quote.add_argument(f"--{name}")
    quote.add_argument("--ytd-kwh", default="0", help="energy billed earlier this year")
    quote.add_argument("--month", help="YYYY-MM (seasonal rules, annual tiers)")
    quote.add_argument("--tariffs", help="directory of tariff files (default: samples)")
    quote.add_argument("--json", action="store_true")
    quote.set_defaults(handler=_tariff_quote)

    from gridfare.cli_tariffs_urdb import add_urdb_commands

    add_urdb_commands(tariff_commands)

    bill = commands.add_parser("bill", help="bill a period's sections and store the results")
    bill.add_argument("--datacentre", required=True)
    bill.add_argument("--period", help="YYYY-MM (required, except with --resume: a resume "
                                       "bills its run's period)")
    bill.add_argument("--sections", nargs="+", help="ids or patterns (S00*); default all")
    bill.add_argument("--resume", metavar="RUN_ID", help="bill only what RUN_ID has not "
                      "done, with its period and tariff book")
    bill.add_argument("--tariffs", help="directory of tariff files (default: samples; a "
                                        "resume: its run's own)")
    bill.add_argument("--cluster", metavar="ADDRESS",
                      help="bill on a Ray cluster (HOST:PORT, 'auto' for the one on this "
                           "host, 'local' for a private one) through its ControlServer; "
                           "default: in this process")
    bill.set_defaults(handler=_bill)

    status = commands.add_parser("status", help="per-node and per-section progress of a run")
    status.add_argument("run_id")
    status.add_argument("--datacentre", required=True)
    status.add_argument("--sections", action="store_true", help="list every section")
    status.add_argument("--cluster", metavar="ADDRESS",
                        help="also the live state from the data centre's ControlServer on "
                             "this Ray cluster (HOST:PORT or 'auto'): queued and running "
                             "sections, and each node's load")
    status.set_defaults(handler=_status)

    runs = commands.add_parser("runs", help="list billing runs")
    runs.add_argument("--datacentre", required=True)
    runs.set_defaults(handler=_runs)

    summary = commands.add_parser("summary", help="totals of a period's bills")
    summary.add_argument("--datacentre", required=True)
    summary.add_argument("--period", required=True)
    summary.set_defaults(handler=_summary)

    from gridfare.cli_seats import add_seats_commands

    add_seats_commands(commands)

    from gridfare.cli_loadshare import add_loadshare_commands

    add_loadshare_commands(commands)

    from gridfare.cli_accounts import add_accounts_commands

    add_accounts_commands(commands)
    return parser


def _generate(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from datasets.datacentre import DataCentre
    from datasets.generator import check_city, continue_city, generate_city, parse_span
    from datasets.uri import redact

    first, last = parse_span(args.periods) if args.periods else (args.period, args.period)
    if args.continue_city:
        given = [f"--{name}" for name in ("accounts", "sections", "seed", "replace")
                 if getattr(args, name) not in (None, False)]
        if given:
            raise InvalidInput(f"generate --continue: {', '.join(given)}: taken from the city "
                               "being continued; leave them out")
        centre = DataCentre(args.out)
    else:
        if first is None:
            raise InvalidInput("generate: give --period YYYY-MM or --periods FIRST..LAST "
                               "(or --continue an existing city)")
        args.accounts = 200_000 if args.accounts is None else args.accounts
        args.sections = 400 if args.sections is None else args.sections
        args.seed = 7 if args.seed is None else args.seed
        check_city(accounts=args.accounts, sections=args.sections, period=first,
                   seed=args.seed)  # before --out is created
        centre = DataCentre(args.out, create=True)
    with Progress(transient=True) as progress:
        task = progress.add_task("generating sections", total=args.sections)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        if args.continue_city:
            result = continue_city(centre, period=first, through=last, progress=report)
        else:
            result = generate_city(
                centre, accounts=args.accounts, sections=args.sections, period=first,
                seed=args.seed, replace=args.replace, through=last, progress=report)
    span = f"{result.period}..{result.last_period}" if result.last_period else result.period
    print(f"generated {result.accounts:,} accounts in {result.sections:,} sections for "
          f"{span} into {redact(args.out)}")
    print(result.describe())
    return 0


def _import_readings(args: argparse.Namespace) -> int:
    from datasets.datacentre import DataCentre
    from datasets.importer import import_readings

    bounds = _tariff_book(args.tariffs).bounds
    result = import_readings(DataCentre(args.datacentre), args.file, period=args.period,
                             rejects_path=args.rejects, bounds=bounds)
    print(result.describe())
    return 0


def _tariff_book(directory: str | None):
    from gridfare.tariffs import load_tariff_book

    return load_tariff_book(directory)


def _tariff_list(args: argparse.Namespace) -> int:
    book = _tariff_book(args.tariffs)
    for code in book.codes:
        print(f"{code:32} {book[code].name}")
    return 0


def _tariff_quote(args: argparse.Namespace) -> int:
    from gridfare.period import Period
    from gridfare.tariffs import quote

    tariff = _tariff_book(args.tariffs)[args.tariff_code]
    result = quote(
        tariff, kwh=args.kwh, critical_kwh=args.critical_kwh, peak_kwh=args.peak_kwh,
        flat_kwh=args.flat_kwh, valley_kwh=args.valley_kwh, max_demand_kw=args.max_demand_kw,
        capacity_kva=args.capacity_kva, power_factor=args.power_factor,
        pf_standard=args.pf_standard, ytd_kwh=args.ytd_kwh,
        month=Period.parse(args.month).month if args.month else 1,
    )
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return 0
    print(f"{tariff.code}: {tariff.name}")
    for name, amount in result.lines:
        print(f"  {name:20} {amount:>14} CNY")
    print(f"  {'total':20} {result.total:>14} CNY")
    return 0


def _bill(args: argparse.Namespace) -> int:
    from gridfare.billing.request import RunRequest

    # Every option checked (and the tariff directory read) before anything is opened.
    request = RunRequest.build(args.period, sections=args.sections, resume_run_id=args.resume,
                               tariffs_dir=args.tariffs)
    if args.cluster:
        return _bill_on_cluster(args)
    from rich.progress import Progress

    from datasets.catalog import open_catalog
    from datasets.datacentre import DataCentre
    from gridfare.billing.runner import run_billing
    from gridfare.money import format_cny

    centre = DataCentre(args.datacentre)
    catalog = open_catalog(centre, writer=True)
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task(f"billing {request.period or request.resume_run_id}",
                                     total=None)
            summary = run_billing(centre, catalog, request,
                                  on_section=lambda _: progress.advance(task))
        catalog.refresh_views(centre.view_globs())
    finally:
        catalog.release()
    rate = summary.billed / summary.seconds if summary.seconds else 0.0
    print(f"run {summary.run_id}: {len(summary.outcomes)} sections, {summary.billed:,} bills, "
          f"{summary.exceptions:,} audit exceptions, total {format_cny(summary.total_fen)} CNY "
          f"in {summary.seconds:.1f} s ({rate:,.0f} bills/s)")
    for outcome in summary.failed:
        print(f"  section {outcome.section_id} failed: {outcome.error}", file=sys.stderr)
    return SECTIONS_FAILED if summary.failed else 0


def _bill_on_cluster(args: argparse.Namespace) -> int:
    from actors.attach import attach
    from rayjobs.billing import print_end_signal, submit_and_wait

    print(attach(args.cluster).describe(), flush=True)
    signal = submit_and_wait(args.datacentre, args.period, sections=args.sections,
                             resume_run_id=args.resume, tariffs_dir=args.tariffs)
    print_end_signal(signal)
    return SECTIONS_FAILED if signal["sections_failed"] else 0


def _status(args: argparse.Namespace) -> int:
    from datasets.catalog import open_catalog
    from datasets.datacentre import DataCentre
    from gridfare.billing.request import check_run_id
    from gridfare.money import format_cny

    check_run_id(args.run_id)
    centre = DataCentre(args.datacentre)
    if args.cluster:
        _live_status(args.cluster, centre.uri, args.run_id)
    catalog = open_catalog(centre)
    run = catalog.run(args.run_id)
    sections = catalog.sections(args.run_id)
    pending = sum(s.status == "pending" for s in sections)
    print(f"run {run.run_id} ({run.period}) {run.status}: {run.sections_done} done, "
          f"{run.sections_failed} failed, {pending} pending of {run.sections_total}; "
          f"{run.billed:,} bills, total {format_cny(run.total_fen)} CNY")
    nodes: dict[str, list] = {}
    for section in sections:
        if section.node_id:
            nodes.setdefault(section.node_id, []).append(section)
    for node, done in sorted(nodes.items()):
        seconds = sum(s.seconds or 0 for s in done)
        print(f"  node {node[:12]}: {len(done):>5} sections, "
              f"{sum(s.billed or 0 for s in done):>10,} bills, {seconds:8.1f} s billing")
    for section in sections:
        if args.sections or section.status == "failed":
            node = (section.node_id or "-")[:12]
            print(f"  {section.section_id:10} {section.status:8} node {node:12} "
                  f"bills {section.billed or 0:>7,} exceptions {section.exceptions or 0:>5,}"
                  + (f"  {section.error}" if section.error else ""))
    return 0


def _live_status(address: str, uri: str, run_id: str) -> None:
    """The ControlServer's view of a run, on the cluster named (never one it creates)."""
    import ray

    from actors import NAMESPACE
    from actors.attach import attach
    from actors.control_server import control_server_name
    from gridfare.errors import ClusterUnavailable

    cluster = attach(address)
    print(cluster.describe())
    try:
        control = ray.get_actor(control_server_name(uri), namespace=NAMESPACE)
    except ValueError:
        raise ClusterUnavailable(f"no ControlServer for {uri} on the Ray cluster at "
                                 f"{cluster.address}: no run of this data centre was "
                                 "submitted there") from None
    state = ray.get(control.progress.remote(run_id), timeout=30)
    print(f"live: {state['queued']} queued, {state['running']} running, {state['done']} "
          f"done, {state['failed']} failed of {state['total']}"
          + (" (finished)" if state["finished"] else ""))
    for node in ray.get(control.nodes.remote(), timeout=30):
        print(f"  node {node['node_id'][:12]} {node['address']}: cpu {node['cpu_percent']:.0f} "
              f"%, io {node['io_busy']:.2f}, {node['billing_processes']} billing processes "
              f"(report {node['age_s']:.1f} s old)")


def _runs(args: argparse.Namespace) -> int:
    from datasets.catalog import open_catalog
    from datasets.datacentre import DataCentre
    from gridfare.money import format_cny

    for run in open_catalog(DataCentre(args.datacentre)).runs():
        print(f"{run.run_id}  {run.period}  {run.status:8} sections {run.sections_done}/"
              f"{run.sections_total} (failed {run.sections_failed})  bills {run.billed:,}  "
              f"exceptions {run.exceptions:,}  total {format_cny(run.total_fen)} CNY")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from gridfare.api import connect

    print(connect(args.datacentre).summary(args.period).render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
