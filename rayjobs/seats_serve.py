"""The seats HTTP API on Ray Serve: ``python -m rayjobs.seats_serve --root DIR ...``.

Routes (JSON in, JSON out; see docs/seats.md):

    POST /trains                      create a train-date (placed on the idlest centre)
    GET  /trains/{train_no}/{date}    its owner and directory version
    POST /orders                      sell: {train_no, date, from, to, class, count, request_id}
    POST /orders/refund               refund: {train_no, date, request_id}
    GET  /remaining?train_no=&date=&from=&to=
    GET  /centres                     each centre's report
    GET  /migrations                  list;  POST /migrations {selector, target}
    GET  /migrations/{id};  POST /migrations/{id}/pause | resume | rollback

A bad request answers 4xx with ``{"error": kind, "message": ...}``: 400 for a malformed
body or a broken rule, 404 for an unknown train-date, order or migration, 409 for a state
conflict (sold out is *not* an error: 200 with ``"status": "sold_out"``), 503 when a
train-date stays frozen or a centre is unreachable. Never a 500 for a request's fault.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date

from ray import serve

from gridfare.errors import (
    ConfigError,
    GridfareError,
    InvalidInput,
    MigrationError,
    StaleVersion,
    TrainFrozen,
    UnknownOrder,
    UnknownTrain,
)

APP_NAME = "gridfare-seats"
MAX_BODY = 64 * 1024
MAX_COUNT = 1000  # anything larger is refused before it reaches a centre


class BadRequest(InvalidInput):
    pass


def status_of(exc: GridfareError) -> int:
    if isinstance(exc, (UnknownTrain, UnknownOrder)) or (
        isinstance(exc, MigrationError) and str(exc).startswith("no migration")
    ):
        return 404
    if isinstance(exc, (InvalidInput, ConfigError)):
        return 400
    if isinstance(exc, (MigrationError, StaleVersion)):
        return 409
    if isinstance(exc, TrainFrozen):
        return 503
    return 503  # SeatError: a centre or the directory is unavailable


def _field(body: dict, name: str, kind: type, *, required: bool = True, default=None):
    if name not in body:
        if required:
            raise BadRequest(f"field {name!r} is required")
        return default
    value = body[name]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise BadRequest(f"field {name!r} must be an integer, got {value!r}")
    if not isinstance(value, kind):
        raise BadRequest(f"field {name!r} must be a {kind.__name__}, got {value!r}")
    return value


def _date(value: str, name: str = "date") -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except (TypeError, ValueError):
        raise BadRequest(f"field {name!r} must be YYYY-MM-DD, got {value!r}") from None


# The replica's own Serve settings (read when its process starts, so they travel in its
# runtime_env). Profiled with py-spy under 64 connections (2 cores): the replica and the
# proxy each burned ~57 % of a core at ~240 requests/s; in the replica about a third went
# to handing each request to a second event-loop thread and back, and to per-request access
# logging. Running the handler on the replica's main loop and logging only warnings
# removes that work; the handler is all ``await``s, so it never blocks that loop.
REPLICA_ENV = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_LOG_TO_STDERR": "0",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
}


@serve.deployment(
    name="SeatsHTTP",
    ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": REPLICA_ENV}},
    max_ongoing_requests=1000,
    num_replicas=1,
    logging_config={"enable_access_log": False, "log_level": "WARNING"},
)
class SeatsHTTP:
    def __init__(self, root: str) -> None:
        from gridfare.seats_client import AsyncSeatsClient

        self._seats = AsyncSeatsClient(root)

    async def __call__(self, request):
        from starlette.responses import JSONResponse

        try:
            status, body = await self._route(request)
        except GridfareError as exc:
            status, body = status_of(exc), {"error": type(exc).__name__, "message": str(exc)}
        except Exception as exc:  # an unexpected fault of ours: say so, but not as a 500
            status, body = 503, {"error": type(exc).__name__, "message": str(exc)[:500]}
        return JSONResponse(body, status_code=status)

    async def _json(self, request) -> dict:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise BadRequest(f"body of {len(raw)} bytes; at most {MAX_BODY}")
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise BadRequest(f"malformed JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    async def _route(self, request) -> tuple[int, object]:
        method = request.method
        parts = [p for p in request.url.path.split("/") if p]
        seats = self._seats
        match (method, parts):
            case ("POST", ["orders"]):
                b = await self._json(request)
                count = _field(b, "count", int)
                if not 1 <= count <= MAX_COUNT:
                    raise BadRequest(f"count {count} is out of range (1..5 seats per order)")
                answer = await seats.sell(
                    _field(b, "train_no", str),
                    _date(_field(b, "date", str)),
                    _field(b, "from", str),
                    _field(b, "to", str),
                    _field(b, "class", str),
                    count,
                    _field(b, "request_id", str),
                )
                return 200, answer
            case ("POST", ["orders", "refund"]):
                b = await self._json(request)
                return 200, await seats.refund(
                    _field(b, "train_no", str),
                    _date(_field(b, "date", str)),
                    _field(b, "request_id", str),
                )
            case ("GET", ["remaining"]):
                q = request.query_params
                for name in ("train_no", "date", "from", "to"):
                    if not q.get(name):
                        raise BadRequest(f"query parameter {name!r} is required")
                return 200, await seats.remaining(
                    q["train_no"], _date(q["date"]), q["from"], q["to"]
                )
            case ("POST", ["trains"]):
                from gridfare.seats.train import TrainDate

                b = await self._json(request)
                return 201, await seats.create_train(TrainDate.from_dict(b))
            case ("GET", ["trains", train_no, day]):
                from gridfare.seats.train import train_key

                key = train_key(train_no, date.fromisoformat(_date(day)))
                centre, version = await seats._call(seats.directory.lookup.remote(key))
                return 200, {"key": key, "centre": centre, "version": version}
            case ("GET", ["centres"]):
                return 200, await seats.reports()
            case ("GET", ["migrations"]):
                return 200, await seats.migrations()
            case ("POST", ["migrations"]):
                b = await self._json(request)
                auto = _field(b, "auto", bool, required=False, default=True)
                status = await seats.migrate(
                    _field(b, "selector", str),
                    _field(b, "target", str),
                    migration_id=_field(b, "id", str, required=False),
                    auto=auto,
                )
                return 202, status
            case ("GET", ["migrations", mid]):
                return 200, await seats.migration(mid)
            case ("POST", ["migrations", mid, action]) if action in (
                "pause",
                "resume",
                "rollback",
                "step",
            ):
                return 200, await getattr(seats, action)(mid)
        return 404, {"error": "NotFound", "message": f"no route {method} {request.url.path}"}


def start_serve(
    root: str, port: int = 8000, host: str = "127.0.0.1", route_prefix: str = "/"
) -> str:
    """Deploy the seats app on the connected Ray cluster; returns its base URL."""
    serve.start(http_options={"host": host, "port": port})
    serve.run(SeatsHTTP.bind(root), name=APP_NAME, route_prefix=route_prefix)
    return f"http://{host}:{port}{route_prefix.rstrip('/')}"


def main(argv: Sequence[str] | None = None) -> int:
    import ray

    from actors import NAMESPACE
    from gridfare.seats_client import SeatsClient

    parser = argparse.ArgumentParser(prog="python -m rayjobs.seats_serve", description=__doc__)
    parser.add_argument("--root", required=True, help="seats data root (a shared directory)")
    parser.add_argument("--centres", help="comma-separated centre ids (first use only)")
    parser.add_argument("--main", help="main centre (default: the first)")
    parser.add_argument("--address", default="auto", help="Ray cluster address")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    try:
        ray.init(address=args.address, namespace=NAMESPACE, log_to_driver=False)
        centres = args.centres.split(",") if args.centres else None
        SeatsClient.start(args.root, centres, args.main)
        url = start_serve(args.root, args.port, args.host)
    except GridfareError as exc:
        print(f"gridfare: error: {exc}", file=sys.stderr)
        return 2
    print(f"seats HTTP API at {url} (root {args.root})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
