"""``python -m rayjobs.seats_serve --root DIR [--centres A,B,C] [--cluster ADDRESS]``: start
the seat actors and their HTTP API (``services.seats_http``).

Without ``--cluster`` it starts a private local Ray cluster (127.0.0.1) and serves until
interrupted (Ctrl-C or SIGTERM ends the cluster with it). With ``--cluster ADDRESS`` (or
``auto``) it joins that cluster, deploys, says where, and returns: the actors and the app
live on in the cluster. Either way it first says which cluster it is on, and a cluster that
is not there is one line in seconds (``actors.attach``). HTTP goes through HAProxy
(``--ingress haproxy``, the default) when this starts Serve; the replica coalesces orders
into batched centre calls within ``--in-flight`` and ``--max-batch``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from gridfare.errors import ConfigError, GridfareError
from gridfare.seats.batching import ClientConfig
from gridfare.seats.names import check_centre_id, check_root

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rayjobs.seats_serve",
                                description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="seats data root (a shared directory)")
    p.add_argument("--centres", help="comma-separated centre ids (first use only)")
    p.add_argument("--main", help="main centre (default: the first)")
    p.add_argument("--cluster", "--address", dest="cluster", metavar="ADDRESS",
                   help="join this Ray cluster (HOST:PORT or 'auto'); default: start a "
                        "private local one and serve until interrupted")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--ingress", choices=("haproxy", "proxy"), default="haproxy",
                   help="HAProxy (default; ~10x the default proxy's orders/s here) or Serve's "
                        "Python proxy; applies when this starts Serve")
    p.add_argument("--replicas", type=int, default=1, help="HTTP replicas (default 1)")
    defaults = ClientConfig()
    p.add_argument("--in-flight", type=int, default=defaults.in_flight,
                   help="coalesced calls in flight per centre (default %(default)s)")
    p.add_argument("--max-batch", type=int, default=defaults.max_batch,
                   help="orders per coalesced centre call, at most (default %(default)s)")
    p.add_argument("--min-gap-s", type=float, default=defaults.min_gap_s,
                   help="under load, seconds between one centre's coalesced calls, at least "
                        "(default %(default)s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        check_root(args.root, "--root")
        centres = args.centres.split(",") if args.centres else None
        for centre in [*(centres or ()), *([args.main] if args.main else [])]:
            check_centre_id(centre, "--centres/--main: centre id")
        if not 0 < args.port < 65536:
            raise ConfigError(f"--port {args.port}: must be 1..65535")
        config = ClientConfig(in_flight=args.in_flight, max_batch=args.max_batch,
                              min_gap_s=args.min_gap_s)
        return _serve(args, centres, config)
    except GridfareError as exc:
        print(f"gridfare: error: {exc}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace, centres: list[str] | None, config: ClientConfig) -> int:
    from actors.attach import attach
    from actors.seats_client import SeatsClient
    from services.seats_http import start_serve

    cluster = attach(args.cluster, start_local=args.cluster is None)
    print(cluster.describe(), flush=True)
    SeatsClient.start(args.root, centres, args.main)
    url = start_serve(args.root, args.port, args.host, config=config, replicas=args.replicas,
                      haproxy=args.ingress == "haproxy")
    print(f"seats HTTP API at {url} (root {args.root})", flush=True)
    if cluster.started_local:
        _serve_until_stopped()
    return 0


def _serve_until_stopped() -> None:
    """Block until SIGINT or SIGTERM: the private cluster lives as long as this process."""
    import ray

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("serving on a private cluster: Ctrl-C stops it", flush=True)
    while not stop.wait(0.5):
        pass
    # ray.shutdown ends Serve, its HAProxy and the actors with the private cluster; a
    # serve.shutdown first would wait out each replica's drain window (30 s in HAProxy mode)
    ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
