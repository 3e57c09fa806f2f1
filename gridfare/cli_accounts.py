"""``gridfare accounts ...``: the prepaid accounts store and its processors on a cluster.

Every command names the store's directory (``--store``) and the cluster (``--cluster``,
default ``auto``: the one on this host). Answers are one JSON line; a refusal is one
``gridfare: error:`` line and exit 2.
"""

from __future__ import annotations

import argparse
import json

__all__ = ["add_accounts_commands"]


def add_accounts_commands(subparsers) -> None:
    accounts = subparsers.add_parser("accounts", help="prepaid accounts: store, operations, "
                                                      "processors")
    commands = accounts.add_subparsers(dest="accounts_command", required=True)

    def command(name: str, help: str, handler):
        parser = commands.add_parser(name, help=help)
        parser.add_argument("--store", required=True, help="the store's directory")
        parser.add_argument("--cluster", default="auto", metavar="ADDRESS",
                            help="Ray cluster address (default: the one on this host)")
        parser.set_defaults(handler=handler)
        return parser

    start = command("start", "start the store: a primary and synchronous standbys", _start)
    start.add_argument("--standbys", type=int, default=1)
    start.add_argument("--replication", choices=["refuse", "accept"], default="refuse",
                       help="with no standby in sync: refuse writes (RPO 0) or accept them")
    start.add_argument("--floor-fen", type=int, default=0, help="new accounts' floor")
    command("status", "the store's epoch, primary and replicas", _status)
    command("stop", "stop the store's servers (its data stays)", _stop)
    opening = command("open", "open an account (idempotent)", _open)
    opening.add_argument("account_id", type=int)
    opening.add_argument("--floor-fen", type=int)
    show = command("show", "an account's balance and version", _show)
    show.add_argument("account_id", type=int)
    show.add_argument("--operations", action="store_true", help="every recorded answer")
    for name, kind in (("pay", "payment"), ("deduct", "deduction"), ("refund", "refund")):
        op = command(name, f"a {kind} (exactly once per --key)", _operation)
        op.add_argument("account_id", type=int)
        op.add_argument("amount_fen", type=int)
        op.add_argument("--key", required=True, help="idempotency key")
        if kind == "refund":
            op.add_argument("--refund-of", required=True, help="the deduction's key")
        op.set_defaults(kind=kind)
    serve = command("serve", "deploy N + B processors behind HTTP", _serve)
    serve.add_argument("--processors", type=int, default=2, metavar="N")
    serve.add_argument("--spares", type=int, default=1, metavar="B")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--in-flight", type=int, default=1,
                       help="batch transactions at once per processor")
    serve.add_argument("--max-batch", type=int, default=64,
                       help="payments and deductions coalesced into one transaction at most")
    scale = command("scale", "resize the processors live: N for the load, B spares", _scale)
    scale.add_argument("processors", type=int, metavar="N")
    scale.add_argument("spares", type=int, metavar="B")


def _client(args: argparse.Namespace, create: bool = False, **config):
    from actors.accounts_client import connect_accounts

    return connect_accounts(args.store, args.cluster, create, **config)


def _print(answer) -> int:
    print(json.dumps(answer, sort_keys=True, default=str))
    return 0


def _start(args: argparse.Namespace) -> int:
    client = _client(args, True, standbys=args.standbys, replication=args.replication,
                     floor_fen=args.floor_fen)
    return _print(client.describe()["record"])


def _status(args: argparse.Namespace) -> int:
    return _print(_client(args).describe())


def _stop(args: argparse.Namespace) -> int:
    from actors.accounts_client import remove_store

    _client(args)
    remove_store(args.store)
    return _print({"stopped": args.store})


def _open(args: argparse.Namespace) -> int:
    return _print(_client(args).open(args.account_id, args.floor_fen).__dict__)


def _show(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.operations:
        return _print([r.to_dict() for r in client.operations(args.account_id)])
    return _print(client.get(args.account_id).__dict__)


def _operation(args: argparse.Namespace) -> int:
    from gridfare.store.operations import Operation

    op = Operation.make(args.account_id, args.kind, args.amount_fen, args.key,
                        getattr(args, "refund_of", None))
    return _print(_client(args).apply(op).to_dict())


def _serve(args: argparse.Namespace) -> int:
    from services.accounts import ProcessorConfig, start_processors

    config = ProcessorConfig(in_flight=args.in_flight, max_batch=args.max_batch)
    _client(args)
    url = start_processors(args.store, args.processors, args.spares, port=args.port,
                           host=args.host, config=config)
    return _print({"url": url, "processors": args.processors, "spares": args.spares,
                   "in_flight": config.in_flight, "max_batch": config.max_batch})


def _scale(args: argparse.Namespace) -> int:
    from services.accounts import scale

    _client(args)
    return _print(scale(args.store, args.processors, args.spares)["after"])
