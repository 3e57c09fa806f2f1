"""StoreCoordinator: watches the accounts store's replicas and fails over (a thin shell
over ``gridfare.store.failover.decide``).

Detached, restarted by Ray (``max_restarts=-1``); its hard state is ``coordinator.json``
under the store's root (``backends.store_root``), written before each step, so a restarted
coordinator decides again from it and finishes a promotion it had begun (the record names
the candidate and the new epoch before anything is promoted).

A promotion: record ``promoting`` (candidate, epoch + 1) -> point the other standbys at the
candidate -> promote it, raise the epoch in its ``gridfare_store_meta`` row, point its
``synchronous_standby_names`` at every other replica -> record ``steady`` with the new
primary -> fence the old primary (stop it at once, if its replica answers). An old primary
that comes back (paused, partitioned) finds no standby to confirm its commits, so under
RPO 0 it acknowledges nothing (``backends.accounts_sql``) until it is fenced. The watch loop
then rewinds the old primary into a standby of the new one and re-points the other
standbys: every action is safe to repeat.
"""

from __future__ import annotations

import threading
import time

import ray
from ray.util.placement_group import get_placement_group, placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from actors import NAMESPACE, one_line
from actors.state_replica import StateReplica, replica_actor_name
from backends.store_root import StoreRoot
from gridfare.errors import ConfigError, StoreError
from gridfare.store.config import StoreConfig
from gridfare.store.failover import (
    Action,
    ActionKind,
    CoordinatorRecord,
    Phase,
    ReplicaStatus,
    Snapshot,
    decide,
    sync_standby_names,
)
from gridfare.store.replication import ReplicationRule

__all__ = ["StoreCoordinator", "coordinator_name"]

PROBE_TIMEOUT_S = 3.0  # a status call not answered by then counts as a failed probe
ACTION_TIMEOUT_S = 300.0  # a rebuild (a base backup of a large store) may take this long
REPLICA_MEMORY = 256 * 2**20  # bytes a replica's bundle reserves for its server


def coordinator_name(root: StoreRoot) -> str:
    return f"gridfare-store-coordinator-{root.suffix}"


def _metrics():
    from ray.util.metrics import Counter, Gauge

    return (Gauge("gridfare_store_epoch", "the accounts store's epoch"),
            Counter("gridfare_store_failovers", "promotions of a standby"),
            Gauge("gridfare_store_standbys_running", "standbys whose server answers"))


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=16)
class StoreCoordinator:
    def __init__(self, root: str, config: dict | None = None) -> None:
        self._root = StoreRoot(root)
        self._root.path.mkdir(parents=True, exist_ok=True)
        stored = self._root.config()
        if stored is None:
            stored = StoreConfig.from_mapping(config or {})
            self._root.write_config(stored)
        elif config is not None and StoreConfig.from_mapping(config) != stored:
            raise ConfigError(f"store {self._root.path} was created with {stored.to_dict()}; "
                              f"asked for {StoreConfig.from_mapping(config).to_dict()}")
        self._config = stored
        self._lock = threading.RLock()
        self._names = tuple(f"pg{i}" for i in range(stored.standbys + 1))
        self._replicas = self._place_replicas()
        self._epoch_gauge, self._failovers, self._standbys_gauge = _metrics()
        self._failures = 0
        self._inflight: dict[str, tuple[ray.ObjectRef, str, float]] = {}
        self._waiting: str | None = None
        self._log: list[str] = []
        self._statuses: dict[str, ReplicaStatus] = {}
        record = self._root.record()
        if record is None:
            record = self._bootstrap()
        self._record = record
        self._epoch_gauge.set(record.epoch)
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watch_loop, name="store-watch",
                                       daemon=True)
        self._watch.start()

    # ---- placement and bootstrap -------------------------------------------------------
    def _place_replicas(self) -> dict[str, ray.actor.ActorHandle]:
        """One replica per bundle of a detached placement group: STRICT_SPREAD (distinct
        nodes) when there are enough nodes, else SPREAD. A bundle reserves memory for its
        server, no CPU: a fraction of a CPU would keep whole-CPU tasks off the node."""
        count = len(self._names)
        nodes = [n for n in ray.nodes() if n["Alive"]]
        strategy = "STRICT_SPREAD" if len(nodes) >= count else "SPREAD"
        name = f"gridfare-store-{self._root.suffix}"
        try:  # a restarted coordinator finds the group its replicas live in
            group = get_placement_group(name)
        except ValueError:
            group = placement_group([{"memory": REPLICA_MEMORY}] * count, strategy=strategy,
                                    name=name, lifetime="detached")
        if not group.wait(30):
            raise StoreError(f"store {self._root.path}: no room for {count} replicas "
                             f"({strategy})")
        replicas = {}
        for index, name in enumerate(self._names):
            replicas[name] = StateReplica.options(
                name=replica_actor_name(self._root, name), namespace=NAMESPACE,
                get_if_exists=True, lifetime="detached",
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    group, placement_group_bundle_index=index),
            ).remote(str(self._root.path), name)
        return replicas

    def _bootstrap(self) -> CoordinatorRecord:
        primary, standbys = self._names[0], self._names[1:]
        ray.get(self._replicas[primary].start_primary.remote(
            sync_standby_names(primary, self._names)))
        ray.get(self._replicas[primary].create_schema.remote())
        host, port = ray.get(self._replicas[primary].address.remote())
        ray.get([self._replicas[s].rebuild.remote(primary, host, port) for s in standbys])
        record = CoordinatorRecord(1, primary, self._names)
        self._root.write_record(record)
        return record

    # ---- the watch loop ------------------------------------------------------------------
    def _watch_loop(self) -> None:
        while not self._stop.wait(self._config.probe_interval_s):
            try:
                self.step()
            except Exception as exc:  # keep watching: the next probe decides again
                self._note(f"step failed: {one_line(exc)}")

    def _probe(self) -> dict[str, ReplicaStatus]:
        refs = {name: handle.status.remote() for name, handle in self._replicas.items()}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs),
                            timeout=PROBE_TIMEOUT_S)
        statuses = {}
        for name, ref in refs.items():
            try:
                statuses[name] = ray.get(ref) if ref in ready else ReplicaStatus(name, False)
            except Exception:
                statuses[name] = ReplicaStatus(name, running=False)
        return statuses

    def step(self) -> list[str]:
        """One probe and the actions it calls for; returns what was started or done.

        A promotion is carried out here and now; fencing, rebuilding and re-pointing are
        started and collected on a later step, so a replica that hangs never stalls the
        watch over the primary."""
        with self._lock:
            done = self._collect()
            statuses = self._probe()
            self._statuses = statuses
            record = self._record
            primary = statuses[record.primary]
            healthy = primary.running and not primary.in_recovery
            self._failures = 0 if healthy else self._failures + 1
            self._standbys_gauge.set(sum(1 for n, s in statuses.items()
                                         if n != record.primary and s.running))
            plan = decide(Snapshot(
                record, statuses, self._failures, self._config.failures_to_fail_over,
                every_standby_needed=self._config.replication is ReplicationRule.REFUSE,
                down=frozenset(self._inflight)))
            if plan.waiting and plan.waiting != self._waiting:
                self._note(plan.waiting)
            self._waiting = plan.waiting
            for action in plan.actions:
                done.append(self._carry_out(action))
            return done

    def _collect(self) -> list[str]:
        done = []
        for name, (ref, what, started) in list(self._inflight.items()):
            ready, _ = ray.wait([ref], timeout=0)
            if ready:
                del self._inflight[name]
                try:
                    done.append(self._note(f"{what}: {ray.get(ref)}"))
                except Exception as exc:
                    done.append(self._note(f"{what} failed: {one_line(exc)}"))
            elif time.monotonic() - started > ACTION_TIMEOUT_S:
                del self._inflight[name]  # decided again on the next step
                done.append(self._note(f"{what}: no answer in {ACTION_TIMEOUT_S:.0f} s"))
        return done

    def _carry_out(self, action: Action) -> str:
        if action.kind is ActionKind.PROMOTE:
            return self._promote(action)
        replica = self._replicas[action.replica]
        host, port = ray.get(self._replicas[action.primary].address.remote(),
                             timeout=PROBE_TIMEOUT_S)
        if action.kind is ActionKind.FENCE:
            ref = replica.fence_and_rebuild.remote(action.primary, host, port)
        elif action.kind is ActionKind.REBUILD:
            ref = replica.rebuild.remote(action.primary, host, port)
        else:
            ref = replica.repoint.remote(action.primary, host, port)
        what = f"{action.kind.value} {action.replica} (primary {action.primary})"
        self._inflight[action.replica] = (ref, what, time.monotonic())
        return self._note(f"started {what}")

    def _promote(self, action: Action) -> str:
        record = self._record
        if record.phase is Phase.STEADY:
            old = record.primary
            record = record.promoting(action.replica)
            self._root.write_record(record)  # durable before anything is promoted
            self._record = record
            self._note(f"promoting {action.replica} under epoch {record.epoch} ({old} lost)")
        self._pause("promoting")
        # the other standbys follow the candidate before it is promoted (cascading until
        # then), so none of them can go on acknowledging the old primary should it return
        host, port = ray.get(self._replicas[record.candidate].address.remote(),
                             timeout=PROBE_TIMEOUT_S)
        others = [n for n in self._names if n not in (record.candidate, record.primary)]
        refs = [self._replicas[n].repoint.remote(record.candidate, host, port) for n in others]
        ray.wait(refs, num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
        candidate = self._replicas[record.candidate]
        ray.get(candidate.promote.remote(record.epoch,
                                         sync_standby_names(record.candidate, self._names)),
                timeout=60)
        self._pause("promoted")
        old = record.primary
        record = record.promoted()
        self._root.write_record(record)
        self._record = record
        self._failures = 0
        self._failovers.inc()
        self._epoch_gauge.set(record.epoch)
        try:  # fence the old primary if it answers; the watch loop rebuilds it later
            ray.get(self._replicas[old].fence.remote(), timeout=PROBE_TIMEOUT_S)
        except Exception as exc:
            self._note(f"could not fence {old} now ({one_line(exc)}); the watch loop will")
        return self._note(f"promoted {record.primary} (epoch {record.epoch})")

    def _pause(self, where: str) -> None:
        """Fault tests stop the coordinator mid-failover here (``GRIDFARE_STORE_PAUSE_S``)."""
        import os

        seconds = float(os.environ.get("GRIDFARE_STORE_PAUSE_S", "0") or 0)
        if seconds:
            self._note(f"pausing {seconds} s after step '{where}'")
            time.sleep(seconds)

    def _note(self, text: str) -> str:
        self._log.append(f"{time.strftime('%H:%M:%S')} {text}")
        del self._log[:-200]
        return text

    # ---- answers -----------------------------------------------------------------------
    def current(self) -> tuple[int, str, str, int]:
        """``(epoch, primary, host, port)`` as recorded now."""
        record = self._record
        host, port = ray.get(self._replicas[record.primary].address.remote(),
                             timeout=PROBE_TIMEOUT_S)
        return record.epoch, record.primary, host, port

    def config(self) -> dict:
        return self._config.to_dict()

    def describe(self) -> dict:
        """The record, each replica's fresh status and node, and the last actions taken."""
        record = self._record
        statuses = self._probe()
        refs = {n: self._replicas[n].node_id.remote() for n in self._names}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs),
                            timeout=PROBE_TIMEOUT_S)
        nodes = {n: ray.get(ref) if ref in ready else None for n, ref in refs.items()}
        return {"root": str(self._root.path), "record": record.to_dict(),
                "replicas": {n: {**s.__dict__, "node_id": nodes[n]}
                             for n, s in statuses.items()},
                "log": list(self._log[-20:])}

    def replica(self, name: str) -> ray.actor.ActorHandle:
        return self._replicas[name]

    def names(self) -> tuple[str, ...]:
        return self._names

    def shutdown(self) -> None:
        """Stop watching and stop every server (the store's data stays on disk)."""
        self._stop.set()
        with self._lock:
            refs = [h.stop.remote() for h in self._replicas.values()]
            ray.wait(refs, num_returns=len(refs), timeout=60)
