"""The LoadShareManager over HTTP, for external hot-event sources (a release calendar, a
promotions system, a news feed) that cannot run ``gridfare loadshare signal``.

    POST /loadshare/signal   {"event": "release-2026-01", "end": false}   -> the status
    POST /loadshare/start | /loadshare/stop                              -> the status
    GET  /loadshare/status                                               -> the status

A malformed body answers 400 with ``{"error", "message"}``; the manager not running 503.
"""

from __future__ import annotations

import json

from ray import serve

from gridfare.errors import InvalidInput

__all__ = ["APP_NAME", "LoadShareHTTP", "start_loadshare_http"]

APP_NAME = "gridfare-loadshare"
MAX_EVENT = 200


@serve.deployment(name="LoadShareHTTP", ray_actor_options={"num_cpus": 0}, num_replicas=1,
                  logging_config={"enable_access_log": False, "log_level": "WARNING"})
class LoadShareHTTP:
    def __init__(self, manager_name: str) -> None:
        self._manager_name = manager_name

    async def __call__(self, request):
        import ray
        from starlette.responses import JSONResponse

        from actors import NAMESPACE

        parts = [p for p in request.url.path.split("/") if p]
        action = parts[-1] if parts else ""
        try:
            call = self._call(request.method, action, await request.body())
        except InvalidInput as exc:
            return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, 400)
        if call is None:
            return JSONResponse({"error": "NotFound",
                                 "message": f"no route {request.method} {request.url.path}"},
                                404)
        method, args = call
        try:
            manager = ray.get_actor(self._manager_name, namespace=NAMESPACE)
            status = await getattr(manager, method).remote(*args)
        except Exception as exc:  # the manager is not running or restarting
            return JSONResponse({"error": "Unavailable",
                                 "message": f"load-sharing manager: {exc}"[:500]}, 503)
        return JSONResponse(status, 200)

    @staticmethod
    def _call(method: str, action: str, raw: bytes) -> tuple[str, tuple] | None:
        if method == "GET" and action == "status":
            return "ensure", ()
        if method != "POST":
            return None
        if action in ("start", "stop"):
            return "command", (action,)
        if action != "signal":
            return None
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise InvalidInput(f"malformed JSON: {exc}") from None
        event = body.get("event") if isinstance(body, dict) else None
        if not isinstance(event, str) or not 0 < len(event) <= MAX_EVENT:
            raise InvalidInput(f"field 'event' must be a string of 1..{MAX_EVENT} characters")
        end = body.get("end", False)
        if not isinstance(end, bool):
            raise InvalidInput("field 'end' must be true or false")
        return "signal", (event, end)


def start_loadshare_http(manager_name: str) -> None:
    """Deploy the app on the connected cluster (Serve already started, e.g. by another app)."""
    serve.run(LoadShareHTTP.bind(manager_name), name=APP_NAME, route_prefix="/loadshare")
