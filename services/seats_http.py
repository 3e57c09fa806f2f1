"""The seats HTTP API as a Ray Serve deployment (``python -m rayjobs.seats_serve`` runs it).

Routes (JSON in, JSON out; see docs/seats.md):

    POST /trains                      create a train-date (placed on the idlest centre)
    GET  /trains/{train_no}/{date}    its owner and directory version
    POST /orders                      sell: {train_no, date, from, to, class, count, request_id}
    POST /orders/refund               refund: {train_no, date, request_id}
    GET  /remaining?train_no=&date=&from=&to=
    GET  /centres                     each centre's report
    GET  /migrations                  list;  POST /migrations {selector, target[, id, auto]}
    GET  /migrations/{id};  POST /migrations/{id}/pause | resume | rollback | step

A request is read whole (bounded in size and time) and validated whole
(``gridfare.seats.requests``) before anything is sent to a centre, so a refusal changes
nothing. Every answer is ASCII JSON (a lone surrogate a client sent is escaped, never a
failed encoding). A refusal is ``{"error": kind, "message": one line}`` with the status
``HTTP_STATUS`` gives its class; sold out is *not* an error (200, ``"status": "sold_out"``).
A fault of ours is a 500 whose ``error_id`` is logged with the traceback in the replica's
log; 503 means only "retry later" (a frozen train-date, an unreachable seat actor).

The HTTP path (measured in ``bench/seats_http.py``): HAProxy in front (``haproxy=True``,
``services.haproxy``; Serve's default Python proxy costs ~8 ms of CPU a request here and
caps near 200 requests/s), then the replica, which coalesces concurrent orders: every
order waiting for the same centre joins one ``sell_many`` call (``Batcher``: at most
``ClientConfig.in_flight`` calls in flight per centre, ``max_batch`` orders each), so a
burst of 64 orders costs a few actor calls and fsyncs, not 64. Each order still gets its
own answer. Serve's per-request client-disconnect watch is off for this app's replicas
(``services.ingress``): an order whose client went away is answered, not cancelled, which
changes nothing for the order (its coalesced call was never cancelled; a retry with the same
``request_id`` gets the same seats) and saves the replica a task and an ``asyncio.wait`` per
request.

The deployment is a bare ASGI app (``seats_edge.JsonApp``: no starlette ``Request`` or
``Response`` per request), and in HAProxy mode the replica's own HTTP server hands
``POST /orders`` to it directly (``seats_edge.OrdersFastPath``), ahead of Serve's
per-request work (request ids, metadata, ongoing-request accounting, request metrics): the
replica's CPU per order at a held 1,000/s went 0.35-0.41 -> 0.25-0.26 ms
(``docs/benchmarks.md``). Those orders are counted by ``gridfare_seats_http_answers``, not
by Serve's request metrics, and carry no ``x-request-id``; every other route goes Serve's
way.
"""

from __future__ import annotations

import asyncio
import time

from ray import serve

from gridfare.errors import ConfigError, SeatsAppConflict
from gridfare.seats.batching import ClientConfig
from gridfare.seats.names import check_migration_id
from gridfare.seats.requests import (
    MigrateRequest,
    RefundRequest,
    RemainingQuery,
    SellRequest,
    TrainDateRef,
)
from services import seats_edge
from services.replica_settings import REPLICA_ENV, REPLICA_LOGGING
from services.seats_edge import INGRESS_ENV, JsonApp, ReadDeadlines, read_json

__all__ = ["SeatsHTTP", "app_name", "start_serve"]


def app_name(root: str) -> str:
    """The Serve application of one seats root."""
    from actors.seat_runtime import seats_suffix

    return f"gridfare-seats-{seats_suffix(root)}"


_ACTIONS = ("pause", "resume", "rollback", "step")
METRICS_EVERY_S = 1.0
STOP_WAIT_S = 10.0  # longest a stopping replica waits for the orders on its fast path


# INGRESS_ENV: in HAProxy mode the replica's HTTP server answers POST /orders itself
# (seats_edge.OrdersFastPath), and Serve awaits every other request directly, without its
# disconnect-watch task and asyncio.wait (services.ingress); an order is sold or not as
# part of its batch whether or not its client stays, so finishing it loses nothing
@serve.deployment(
    name="SeatsHTTP",
    ray_actor_options={"num_cpus": 0, "runtime_env": {
        "env_vars": {**REPLICA_ENV, **INGRESS_ENV}}},
    max_ongoing_requests=1000,
    num_replicas=1,
    logging_config=REPLICA_LOGGING,
)
@serve.ingress()
class SeatsHTTP:
    """An ASGI ingress (``__serve_build_asgi_app__``: ``seats_edge.JsonApp`` around
    ``_route``), so Serve hands each request's ``scope, receive, send`` straight to it: no
    starlette ``Request`` and ``Response`` per order, nor Serve's handling of a returned
    response."""

    def __init__(self, root: str, config: ClientConfig | None = None,
                 route_prefix: str = "/") -> None:
        from ray.util import metrics

        from actors.seats_client import AsyncSeatsClient

        self._root = root
        self._seats = AsyncSeatsClient(root, config)
        self._answers = metrics.Counter(
            "gridfare_seats_http_answers", "HTTP answers of the seats API, by status",
            tag_keys=("status",))
        # counted here and handed to the metric at most once a second: Counter.inc per
        # request was ~3 % of the replica's CPU under 64 connections (py-spy)
        self._unreported: dict[int, int] = {}
        self._reported_at = time.monotonic()
        self._deadlines = ReadDeadlines()
        self._app = JsonApp(self._route, self._answered)
        # through the module, not a name bound here: Serve pickles this class by value (its
        # ingress wrapper is a local class), and with it a global object's copy
        self._fast = seats_edge.FAST_PATH
        # the fast path runs this app on the HTTP server's event loop: the one the handler
        # runs on too (REPLICA_ENV: RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0), where
        # the client's batchers live; it knows only the root's POST /orders
        if route_prefix == "/":
            self._fast.serve(self._app)

    def __serve_build_asgi_app__(self) -> JsonApp:
        return self._app

    async def __del__(self) -> None:
        """Serve's graceful shutdown (after its own requests drained): no new order takes
        the fast path, and the ones in flight there are answered first (at most
        ``STOP_WAIT_S``)."""
        self._fast.stop()
        deadline = time.monotonic() + STOP_WAIT_S
        while self._fast.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def root(self) -> str:
        """The seats root served (asked by a second ``start_serve``)."""
        return self._root

    def coalescing(self) -> dict[str, dict[str, int]]:
        """The coalesced centre calls this replica sent and the orders they carried."""
        return self._seats.coalescing()

    def _answered(self, status: int) -> None:
        self._unreported[status] = self._unreported.get(status, 0) + 1
        if time.monotonic() - self._reported_at >= METRICS_EVERY_S:
            self._report()

    def _report(self) -> None:
        self._reported_at = time.monotonic()
        for status, count in self._unreported.items():
            self._answers.inc(count, {"status": str(status)})
        self._unreported.clear()

    async def _route(self, scope, receive) -> tuple[int, object]:
        method = scope["method"]
        path = scope["path"]
        parts = [p for p in path.split("/") if p]
        seats = self._seats

        async def body() -> dict:
            return await read_json(scope, receive, deadlines=self._deadlines)

        match (method, parts):
            case ("POST", ["orders"]):
                return 200, await seats.sell_request(SellRequest.from_json(await body()))
            case ("POST", ["orders", "refund"]):
                return 200, await seats.refund_request(RefundRequest.from_json(await body()))
            case ("GET", ["remaining"]):
                from starlette.datastructures import QueryParams

                return 200, await seats.remaining_query(
                    RemainingQuery.from_query(QueryParams(scope["query_string"])))
            case ("POST", ["trains"]):
                from gridfare.seats.train import TrainDate

                train = TrainDate.from_dict(await body())
                return 201, await seats.create_train(train)
            case ("GET", ["trains", train_no, day]):
                return 200, await seats.owner(TrainDateRef(train_no, day))
            case ("GET", ["centres"]):
                return 200, await seats.reports()
            case ("GET", ["migrations"]):
                return 200, await seats.migrations()
            case ("POST", ["migrations"]):
                return 202, await seats.migrate_request(MigrateRequest.from_json(await body()))
            case ("GET", ["migrations", mid]):
                return 200, await seats.migration(check_migration_id(mid))
            case ("POST", ["migrations", mid, action]) if action in _ACTIONS:
                return 200, await getattr(seats, action)(check_migration_id(mid))
        return 404, {"error": "NotFound", "message": f"no route {method} {path}"}


def start_serve(
    root: str,
    port: int = 8000,
    host: str = "127.0.0.1",
    route_prefix: str = "/",
    *,
    config: ClientConfig | None = None,
    replicas: int = 1,
    haproxy: bool = False,
    haproxy_drain_s: float | None = None,
    proxy_location: str | None = None,
) -> str:
    """Deploy the seats app of ``root`` on the connected Ray cluster; returns its base URL.

    ``config`` holds the replica's batching limits (``ClientConfig``), ``replicas`` how many
    replicas serve. ``haproxy``: when this call starts Serve, it starts it in HAProxy mode
    (``services.haproxy``: its own folder and ports); a Serve already running keeps the
    ingress it was started with (``services.haproxy.listener(port)`` tells which);
    ``haproxy_drain_s`` is how long a stopping replica stays reachable (``haproxy_env``).
    ``proxy_location`` is Serve's (default: an ingress on every node); ``"HeadOnly"`` where
    several Ray nodes share one host and so one address (a test cluster), since each
    node's HAProxy binds ``host:port`` itself.

    One seats app per cluster: Serve has one HTTP address per cluster, and a second app at
    the same route would replace the first. So a second root is refused
    (``SeatsAppConflict``, naming the root served and where), and so is another address
    than the one Serve already listens on; the same root again is a redeploy in place.
    """
    from ray.serve.context import _get_global_client

    from gridfare.seats.store import SeatsRoot

    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= 64:
        raise ConfigError(f"seats HTTP: replicas: must be an integer in 1..64, got "
                          f"{replicas!r}")
    root = str(SeatsRoot(root).path)
    ours = app_name(root)
    client = _get_global_client(raise_if_no_controller_running=False)
    if client is not None:
        http = client.http_config
        url = f"http://{http.host}:{http.port}"
        for other in serve.status().applications:
            if other.startswith("gridfare-seats") and other != ours:
                served = serve.get_app_handle(other).root.remote().result(timeout_s=10)
                raise SeatsAppConflict(
                    f"this Ray cluster already serves seats root {served} at {url}; one "
                    "seats app per cluster (Serve has one HTTP address): stop it with "
                    "`serve shutdown`, or use another cluster"
                )
        if (http.host, http.port) != (host, port):
            raise SeatsAppConflict(
                f"Serve on this Ray cluster already listens at {url}, not "
                f"http://{host}:{port}; pass --host {http.host} --port {http.port}"
            )
    else:
        options: dict = {} if proxy_location is None else {"proxy_location": proxy_location}
        if haproxy:
            from services.haproxy import (
                HAPROXY_TUNING,
                controller_options,
                haproxy_env,
                haproxy_folder,
            )

            env = {**haproxy_env(haproxy_folder(), drain_s=haproxy_drain_s),
                   **HAPROXY_TUNING}
            options["controller_options"] = controller_options(env)
        serve.start(http_options={"host": host, "port": port}, **options)
    app = SeatsHTTP.options(num_replicas=replicas).bind(root, config, route_prefix)
    serve.run(app, name=ours, route_prefix=route_prefix)
    return f"http://{host}:{port}{route_prefix.rstrip('/')}"
