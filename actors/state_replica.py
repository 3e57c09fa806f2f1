"""StateReplica: owns one PostgreSQL server of the accounts store (a thin shell over
``backends.postgres``).

It starts, promotes, rebuilds or stops its server only when the coordinator says so, never
on its own: a replica restarted by Ray adopts a server that is still running
(``postmaster.pid``) and otherwise reports it down, so an old primary is never brought
back as a primary behind the coordinator's back. Its port and upstream are kept in
``replica.json`` so a restart serves the same address.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal

import ray

from backends.postgres import PostgresServer, ServerAddress, connect, free_port
from backends.store_root import StoreRoot
from gridfare.errors import StoreError, StoreUnavailable
from gridfare.store.failover import ReplicaStatus, parse_lsn

__all__ = ["StateReplica", "replica_actor_name"]

STATUS = """SELECT pg_is_in_recovery(),
    CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
    (SELECT epoch FROM gridfare_store_meta)"""


def _command(method):
    """The coordinator's commands run one at a time (the actor is threaded so that a status
    probe is answered while a rebuild runs)."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._commands:
            return method(self, *args, **kwargs)
    return locked


def replica_actor_name(root: StoreRoot, name: str) -> str:
    return f"gridfare-state-replica-{root.suffix}-{name}"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=4)
class StateReplica:
    def __init__(self, root: str, name: str) -> None:
        import threading

        self._commands = threading.RLock()  # one command at a time; status runs beside
        self._root = StoreRoot(root)
        self._name = name
        state = self._root.replica_state(name)
        host = ray.util.get_node_ip_address()
        port = state.get("port") if state.get("host") == host else None
        self._address = ServerAddress(host, port or free_port(host))
        self._upstream: str | None = state.get("upstream")
        self._save()
        self._server = PostgresServer(self._root.replica_home(name), self._address)

    def _save(self) -> None:
        self._root.write_replica_state(self._name, {
            "host": self._address.host, "port": self._address.port, "upstream": self._upstream})

    def address(self) -> tuple[str, int]:
        return self._address.host, self._address.port

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def status(self) -> ReplicaStatus:
        if not self._server.is_running():
            return ReplicaStatus(self._name, running=False)
        try:
            with connect(self._address.dsn("gridfare-probe", 2), autocommit=True) as conn:
                in_recovery, lsn, epoch = conn.execute(STATUS).fetchone()
        except StoreUnavailable:
            return ReplicaStatus(self._name, running=False)
        except Exception:  # e.g. the schema not there yet: running, epoch unknown
            with connect(self._address.dsn("gridfare-probe", 2), autocommit=True) as conn:
                in_recovery, lsn = conn.execute(
                    "SELECT pg_is_in_recovery(), pg_current_wal_lsn()").fetchone()
            epoch = None
        return ReplicaStatus(self._name, True, bool(in_recovery), parse_lsn(str(lsn)),
                             self._upstream if in_recovery else None, epoch)

    # ---- the coordinator's commands (each safe to repeat) -------------------------------
    @_command
    def start_primary(self, sync_names: str) -> None:
        """A new store's first primary: initdb (once), configure, start."""
        if not self._server.initialized():
            self._server.initdb()
        self._upstream = None
        self._save()
        self._server.configure(self._name, None, sync_names)
        self._server.start()

    @_command
    def rebuild(self, upstream: str, host: str, port: int) -> str:
        """Make this replica a standby of ``upstream``: stop it, rewind it onto the
        upstream's timeline (or copy it afresh when it cannot be rewound), start it.
        Returns how: 'rewound', 'copied' or 'restarted'."""
        source = ServerAddress(host, port)
        self._server.stop("immediate", timeout_s=3)  # a hung server is then SIGKILLed
        how = "restarted"
        if not self._server.initialized():
            self._server.base_backup(source)
            how = "copied"
        elif not self._server.is_standby() or self._upstream != upstream:
            if self._server.rewind(source):
                how = "rewound"
            else:
                self._server.base_backup(source)
                how = "copied"
        self._upstream = upstream
        self._save()
        self._server.configure(self._name, source)
        try:
            self._server.start()
        except StoreError:
            if how == "copied":
                raise
            # a rewound (or stale) copy that does not start: copy it afresh
            self._server.base_backup(source)
            self._server.configure(self._name, source)
            self._server.start()
            how = "copied"
        return how

    @_command
    def repoint(self, upstream: str, host: str, port: int) -> None:
        """Follow ``upstream`` from now on (primary_conninfo is reloaded, no restart)."""
        self._upstream = upstream
        self._save()
        self._server.configure(self._name, ServerAddress(host, port))
        self._reload()

    @_command
    def promote(self, epoch: int, sync_names: str) -> None:
        """Become the primary under ``epoch`` (idempotent)."""
        from backends.accounts_sql import set_epoch

        if not self._server.is_running():
            raise StoreUnavailable(f"replica {self._name}: its server is not running")
        with connect(self._address.dsn("gridfare-coordinator", 2), autocommit=True) as conn:
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            if in_recovery and not conn.execute("SELECT pg_promote(true, 30)").fetchone()[0]:
                raise StoreError(f"replica {self._name}: pg_promote did not finish")
            self._upstream = None
            self._save()
            self._server.configure(self._name, None, sync_names)
            conn.execute("SELECT pg_reload_conf()")
            set_epoch(conn, epoch)

    @_command
    def set_sync_names(self, sync_names: str) -> None:
        self._server.configure(self._name, None, sync_names)
        self._reload()

    @_command
    def create_schema(self) -> None:
        from backends.accounts_sql import AccountsDB

        with connect(self._address.dsn("gridfare-coordinator", 2), autocommit=True) as conn:
            AccountsDB.create_schema(conn)

    @_command
    def fence(self) -> None:
        """Stop at once: this server must not acknowledge anything more."""
        self._server.stop("immediate", timeout_s=3)

    @_command
    def fence_and_rebuild(self, upstream: str, host: str, port: int) -> str:
        self.fence()
        return "fenced, " + self.rebuild(upstream, host, port)

    @_command
    def stop(self) -> None:
        self._server.stop("fast")

    def _reload(self) -> None:
        pid = self._server.pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)

    # ---- faults (tests and the bench cause them here) ----------------------------------
    def pids(self) -> dict[str, list[int]]:
        return {"actor": [os.getpid()], "server": self._server.processes()}

    def kill_server(self) -> None:
        self._server.kill()

    def pause_server(self) -> list[int]:
        return self._signal(signal.SIGSTOP)

    def resume_server(self) -> list[int]:
        return self._signal(signal.SIGCONT)

    def _signal(self, sig: int) -> list[int]:
        pids = self._server.processes()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return pids
