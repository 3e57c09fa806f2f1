"""The seats deployment's settings (no Ray cluster): what its replicas' runtime_env
carries."""

from __future__ import annotations


def test_the_seats_replicas_run_without_serves_disconnect_watch():
    # services.ingress's callback travels in the deployment's own runtime_env (read by each
    # replica's HTTP server in HAProxy mode), beside the shared replica settings, as for the
    # accounts processors
    from services.ingress import DISCONNECT_WATCH_OFF_ENV
    from services.replica_settings import REPLICA_ENV
    from services.seats_http import SeatsHTTP

    env = SeatsHTTP.ray_actor_options["runtime_env"]["env_vars"]
    assert env == {**REPLICA_ENV, **DISCONNECT_WATCH_OFF_ENV}
