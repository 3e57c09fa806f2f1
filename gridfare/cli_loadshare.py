"""``gridfare loadshare ...``: load sharing onto burst environments from the command line.

``start`` / ``stop`` are the manual trigger and exit, ``signal EVENT [--end]`` an external
hot event, ``status`` the open-state table, all through the cluster's LoadShareManager
(created on first use with ``--root`` and ``--config``). ``credits`` reads the ledger from
``--root`` without Ray.
"""

from __future__ import annotations

import json
import time

from gridfare.errors import ClusterUnavailable

__all__ = ["add_loadshare_commands"]


def add_loadshare_commands(subparsers) -> None:
    loadshare = subparsers.add_parser("loadshare", help="load sharing onto burst environments")
    commands = loadshare.add_subparsers(dest="loadshare_command", required=True)

    def command(name: str, help: str, handler, *, ray: bool = True):
        parser = commands.add_parser(name, help=help)
        parser.add_argument("--root", required=True,
                            help="the manager's directory (its loadshare.duckdb)")
        if ray:
            parser.add_argument("--cluster", default="auto", metavar="ADDRESS",
                                help="Ray cluster (GCS HOST:PORT or 'auto')")
            parser.add_argument("--config", help="loadshare TOML (used when the manager "
                                                 "is first created)")
            parser.add_argument("--json", action="store_true")
        parser.set_defaults(handler=handler)
        return parser

    command("start", "open burst environments now (held until `stop`)", _command)
    command("stop", "drain and close the burst environments", _command)
    signal = command("signal", "an external hot event (a release, a promotion, news)",
                     _signal)
    signal.add_argument("event")
    signal.add_argument("--end", action="store_true", help="the event is over")
    command("status", "the open-state table and what the triggers see", _status)
    credits = command("credits", "contribution credit per node and period", _credits,
                      ray=False)
    credits.add_argument("--by", default="node_id,period",
                         choices=("node_id", "period", "node_id,period", "env_id"))
    credits.add_argument("--json", action="store_true")


def _manager(args):
    from actors.attach import attach
    from actors.loadshare_manager import get_loadshare_manager
    from gridfare.loadshare.config import LoadShareConfig

    if not args.cluster:
        raise ClusterUnavailable("gridfare loadshare: pass --cluster ADDRESS")
    attach(args.cluster, timeout_s=10.0)
    config = LoadShareConfig.load(args.config) if args.config else LoadShareConfig()
    return get_loadshare_manager(args.root, config)


def _call(args, method: str, *call_args) -> dict:
    import ray

    manager = _manager(args)
    return ray.get(getattr(manager, method).remote(*call_args), timeout=60)


def _command(args) -> int:
    _print_status(_call(args, "command", args.loadshare_command), args.json)
    return 0


def _signal(args) -> int:
    _print_status(_call(args, "signal", args.event, args.end), args.json)
    return 0


def _status(args) -> int:
    _print_status(_call(args, "ensure"), args.json)
    return 0


def _print_status(status: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(status, indent=2, default=str))
        return
    print(f"load sharing {status['phase']} (episode {status['episode']}, cause "
          f"{status['cause']}{', pinned' if status['pinned'] else ''}): "
          f"{status['rate']:.1f} req/s, queue {status['queue']}, billing queue "
          f"{status['billing_queued']}, hot events {status['hot_events'] or '-'}")
    if status["last_plan"]:
        print(f"  last decision: {status['last_plan']}")
    rows = status["environments"]
    if not rows:
        print("  no environments")
    for r in rows:
        opened = time.strftime("%H:%M:%S", time.localtime(r["opened_at"])) if r[
            "opened_at"] else "-"
        node = f"...{r['node_id'][-12:]}" if r["node_id"] else "-"
        print(f"  {r['env_id']:24} {r['state']:9} node {node:15} cpu {r['cpus']:g} "
              f"mem {r['memory_bytes'] / 2**30:.1f} GiB opened {opened} "
              f"in flight {r['tasks_in_flight']} done {r['tasks_done']}"
              f"{'  (' + r['reason'] + ')' if r['reason'] else ''}")


def _credits(args) -> int:
    from datasets.loadshare_store import LoadShareStore
    from gridfare.loadshare.credit import LedgerEntry, credits_by

    entries = [LedgerEntry(**e) for e in LoadShareStore(args.root).entries()]
    fields = args.by.split(",")
    rows = [{**dict(zip(fields, key, strict=True)), **totals}
            for key, totals in credits_by(entries, args.by).items()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no contribution credit recorded under {args.root}")
    for row in rows:
        name = "  ".join(str(row[f]) for f in fields)
        print(f"{name:40} {row['seconds']:>10.1f} s {row['tasks']:>9,} tasks "
              f"{row['millicredits'] / 1000:>14,.3f} credits")
    return 0
