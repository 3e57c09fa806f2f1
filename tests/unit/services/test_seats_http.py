"""The seats deployment's settings (no Ray cluster): what its replicas' runtime_env
carries."""

from __future__ import annotations


def test_the_seats_replicas_run_without_serves_disconnect_watch():
    # services.ingress's callback travels in the deployment's own runtime_env (read by each
    # replica's HTTP server in HAProxy mode), beside the shared replica settings, as for the
    # accounts processors
    from services.ingress import DISCONNECT_WATCH_OFF_ENV, NoDisconnectWatch
    from services.replica_settings import REPLICA_ENV
    from services.seats_edge import INGRESS_ENV, OrdersFastPath, middlewares
    from services.seats_http import SeatsHTTP

    env = SeatsHTTP.ray_actor_options["runtime_env"]["env_vars"]
    assert env == {**REPLICA_ENV, **INGRESS_ENV}
    assert INGRESS_ENV.keys() == DISCONNECT_WATCH_OFF_ENV.keys()
    module, name = INGRESS_ENV["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"].split(":")
    assert f"{module}:{name}" == "services.seats_edge:middlewares"
    assert [m.cls for m in middlewares()] == [NoDisconnectWatch, OrdersFastPath]


def test_the_orders_fast_path_takes_post_orders_only_while_an_app_serves():
    # the seats replicas' HTTP callback through Serve's own loader and middleware stack:
    # POST /orders goes to the registered app ahead of Serve's entry point; every other
    # request (and every request while no app is registered) goes Serve's way
    import asyncio

    from ray.serve._private.http_util import (
        _apply_middlewares,
        validate_http_proxy_callback_return,
    )
    from ray.serve._private.utils import call_function_from_import_path

    from services.seats_edge import FAST_PATH, INGRESS_ENV

    reached: list[str] = []

    async def entry(scope, receive, send):  # stands where Serve's _direct_ingress_asgi is
        reached.append(f"serve {scope['method']} {scope['path']}")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"serve"})

    async def ours(scope, receive, send):
        reached.append(f"fast {scope['method']} {scope['path']} {FAST_PATH.in_flight}")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"fast"})

    path = INGRESS_ENV["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"]
    app = _apply_middlewares(
        entry, validate_http_proxy_callback_return(call_function_from_import_path(path)))

    def call(method: str, path: str) -> bytes:
        sent: list = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": method, "path": path, "headers": [],
                 "query_string": b""}
        asyncio.run(app(scope, receive, send))
        return sent[-1]["body"]

    assert call("POST", "/orders") == b"serve"  # no app registered yet
    FAST_PATH.serve(ours)
    try:
        assert [call("POST", "/orders"), call("GET", "/orders"),
                call("POST", "/orders/refund")] == [b"fast", b"serve", b"serve"]
    finally:
        FAST_PATH.stop()
    assert FAST_PATH.in_flight == 0
    assert reached == ["serve POST /orders", "fast POST /orders 1", "serve GET /orders",
                       "serve POST /orders/refund"]


def test_the_replica_registers_with_the_module_s_fast_path_not_a_copy():
    # Serve pickles the ingress class by value (its wrapper is a local class), and with it
    # the globals its methods name: the fast path must be reached through its module
    from ray import cloudpickle

    from services import seats_edge
    from services.seats_http import SeatsHTTP

    shipped = cloudpickle.loads(cloudpickle.dumps(SeatsHTTP.func_or_class))
    ours = next(c for c in shipped.__mro__ if c.__name__ == "SeatsHTTP"
                and "_route" in c.__dict__)
    assert ours.__init__.__globals__["seats_edge"].FAST_PATH is seats_edge.FAST_PATH
