"""``gridfare seats ...``: the seat inventory from the command line.

``plan --offline`` and ``audit`` need no Ray (they read a generated timetable or the files
under the seats root); every other command talks to a running cluster (``--address``,
RAY_ADDRESS) through ``gridfare.api.seats``. Heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse
import json

from gridfare.errors import InvalidInput

__all__ = ["add_seats_commands"]


def add_seats_commands(subparsers) -> None:
    seats = subparsers.add_parser("seats", help="railway seat inventory: sell, migrate, audit")
    commands = seats.add_subparsers(dest="seats_command", required=True)

    def command(name: str, help: str, handler, *, ray: bool = True):
        parser = commands.add_parser(name, help=help)
        parser.add_argument("--root", required=True, help="seats data root (shared directory)")
        if ray:
            parser.add_argument(
                "--cluster", "--address", dest="cluster", metavar="ADDRESS",
                help="the Ray cluster of the seat actors (HOST:PORT or 'auto'; default: "
                     "RAY_ADDRESS)",
            )
        parser.set_defaults(handler=handler)
        return parser

    serve = command("serve", "start the seat actors and the HTTP API (default: on a private "
                    "local Ray cluster, until interrupted)", _serve)
    serve.add_argument("--centres", help="comma-separated centre ids (first use only)")
    serve.add_argument("--main", help="the bureau's main centre (default: the first)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--ingress", choices=("haproxy", "proxy"),
                       help="HAProxy (default) or Serve's Python proxy")
    serve.add_argument("--replicas", type=int, help="HTTP replicas (default 1)")
    serve.add_argument("--in-flight", type=int, help="centre calls in flight per centre")
    serve.add_argument("--max-batch", type=int, help="orders per coalesced centre call")

    sell = command("sell", "sell seats (idempotent by --request-id)", _sell)
    for name in ("train", "date", "from", "to", "class"):
        sell.add_argument(f"--{name}", required=True)
    sell.add_argument("--count", type=int, default=1)
    sell.add_argument("--request-id", required=True)

    refund = command("refund", "refund an order", _refund)
    for name in ("train", "date", "request-id"):
        refund.add_argument(f"--{name}", required=True)

    remaining = command("remaining", "tickets left per class for a segment", _remaining)
    for name in ("train", "date", "from", "to"):
        remaining.add_argument(f"--{name}", required=True)

    command("centres", "each centre's report (seats stored, unsold, sales/min, CPU)", _centres)

    migrate = command("migrate", "move the selected train-dates to a centre", _migrate)
    migrate.add_argument("selector", help="e.g. 'G%% kind=through dates=2026-10-01..2026-10-07'")
    migrate.add_argument("--to", required=True, help="target centre")
    migrate.add_argument("--wait", action="store_true", help="wait until it ends")
    for name, help in (
        ("pause", "pause a migration after the train-date in flight"),
        ("resume", "resume a paused or failed migration"),
        ("rollback", "send a migration's moved train-dates back"),
        ("status", "a migration's state"),
    ):
        command(name, help, _migration_action).add_argument("migration_id")
    command("migrations", "list migrations", _migrations)

    plan = command("plan", "current vs target shares per centre, and the moves", _plan)
    plan.add_argument(
        "--offline",
        action="store_true",
        help="plan a generated timetable with no cluster (--trains, --seed)",
    )
    plan.add_argument("--centres", help="with --offline: comma-separated centre ids")
    plan.add_argument("--main", help="with --offline: the main centre (default: the first)")
    plan.add_argument("--r", default="0.65", help="with --offline: the main centre's factor R")
    plan.add_argument("--trains", type=int, default=200)
    plan.add_argument("--seed", type=int, default=0)

    audit = command(
        "audit", "prove from the logs that no seat-leg sold twice, no sale lost", _audit, ray=False
    )
    audit.add_argument("--json", action="store_true")


def _client(args):
    import sys

    from gridfare.api import seats

    return seats(args.root, cluster=args.cluster,
                 on_attach=lambda text: print(text, file=sys.stderr, flush=True))


def _print(data) -> None:
    print(json.dumps(data, indent=2, default=str))


def _serve(args) -> int:
    from rayjobs.seats_serve import main

    argv = [
        "--root",
        args.root,
        *(["--cluster", args.cluster] if args.cluster else []),
        "--port",
        str(args.port),
        "--host",
        args.host,
    ]
    if args.centres:
        argv += ["--centres", args.centres]
    if args.main:
        argv += ["--main", args.main]
    # unset options keep rayjobs.seats_serve's defaults: one set of defaults
    for flag, value in (("--ingress", args.ingress), ("--replicas", args.replicas),
                        ("--in-flight", args.in_flight), ("--max-batch", args.max_batch)):
        if value is not None:
            argv += [flag, str(value)]
    return main(argv)


def _sell(args) -> int:
    from gridfare.seats.requests import SellRequest

    SellRequest(args.train, args.date, getattr(args, "from"), args.to, getattr(args, "class"),
                args.count, args.request_id)  # refused here, before any cluster is joined
    answer = _client(args).sell(
        args.train,
        args.date,
        getattr(args, "from"),
        args.to,
        getattr(args, "class"),
        args.count,
        args.request_id,
    )
    _print(answer)
    return 0 if answer["status"] == "sold" else 1


def _refund(args) -> int:
    from gridfare.seats.requests import RefundRequest

    RefundRequest(args.train, args.date, args.request_id)
    _print(_client(args).refund(args.train, args.date, args.request_id))
    return 0


def _remaining(args) -> int:
    _print(_client(args).remaining(args.train, args.date, getattr(args, "from"), args.to))
    return 0


def _centres(args) -> int:
    for r in _client(args).reports():
        print(
            f"{r['centre_id']:8} {r['train_dates']:>7,} train-dates {r['seats_stored']:>12,} "
            f"seats {r['seats_unsold']:>12,} unsold {r['sales_per_minute']:>9,.0f} sales/min "
            f"cpu {r['cpu']:.0%}"
        )
    return 0


def _migrate(args) -> int:
    from gridfare.seats.requests import MigrateRequest

    MigrateRequest(args.selector, args.to)  # refused here, before any cluster is joined
    client = _client(args)
    status = client.migrate(args.selector, args.to)
    if args.wait:
        status = client.wait_migration(status["id"], timeout_s=3600)
    _print({k: v for k, v in status.items() if k != "moves"})
    return 0 if status["state"] in ("running", "done") else 1


def _migration_action(args) -> int:
    from gridfare.seats.names import check_migration_id

    check_migration_id(args.migration_id)
    client = _client(args)
    action = {"status": client.migration}.get(args.seats_command) or getattr(
        client, args.seats_command
    )
    _print({k: v for k, v in action(args.migration_id).items() if k != "moves"})
    return 0


def _migrations(args) -> int:
    for m in _client(args).migrations():
        print(
            f"{m['id']:28} {m['state']:12} to {m.get('target', '?'):6} {m['selector']!r} "
            f"{m['steps']}"
        )
    return 0


def _plan(args) -> int:
    if args.offline:
        from gridfare.seats.plan import placement_plan
        from gridfare.seats.timetable import generate_timetable

        if not args.centres:
            raise InvalidInput("seats plan --offline: --centres is required (e.g. A,B,C)")
        centres = args.centres.split(",")
        timetable = generate_timetable(seed=args.seed, n_trains=args.trains, days=1)
        seats = {t.train_no: t.seats for t in timetable.trains}
        plan = placement_plan(dict.fromkeys(seats), seats, centres, args.main or centres[0], args.r)
        print(f"{len(seats)} generated trains, none placed yet: the formula's targets")
    else:
        plan = _client(args).plan()
    print(plan.render())
    return 0


def _audit(args: argparse.Namespace) -> int:
    from gridfare.seats.store import SeatsRoot

    report = SeatsRoot(args.root).audit()
    if args.json:
        _print(
            {
                "ok": report.ok,
                "train_dates": report.train_dates,
                "open_sales": report.open_sales,
                "changes": report.changes,
                "violations": [str(v) for v in report.violations],
            }
        )
    else:
        print(
            f"audit {'ok' if report.ok else 'FAILED'}: {report.train_dates:,} train-dates, "
            f"{report.changes:,} changes, {report.open_sales:,} open sales, "
            f"{len(report.violations)} violations"
        )
        for v in report.violations[:50]:
            print(f"  {v}")
    return 0 if report.ok else 1
