"""The load-aware dispatch policy vs Ray's default placement on a skewed workload.

Two 1-CPU worker nodes, each pinned to its own core, one of them loaded by two CPU burners
pinned to its core. The same skewed sections are billed once as plain Ray tasks with Ray's
default placement and once through the ControlServer (load-aware); makespans are compared.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from bench._city import PERIOD, ensure_city

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def _pin(node, core: int) -> None:
    """Pin a fake node's raylet and its children to one core (workers inherit it)."""
    raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
    for process in [raylet, *raylet.children(recursive=True)]:
        try:
            process.cpu_affinity([core])
        except psutil.Error:
            continue


def _wait_for_registrations(uri: str, node_ids: set[str], timeout_s: float = 60.0) -> None:
    import ray

    from actors.control_server import get_control_server

    control = get_control_server(uri)
    deadline = time.monotonic() + timeout_s
    while not node_ids <= {n["node_id"] for n in ray.get(control.nodes.remote())}:
        if time.monotonic() > deadline:
            raise TimeoutError(f"nodes not registered after {timeout_s:.0f} s")
        time.sleep(0.2)


def policy_vs_default(accounts: int, sections: int) -> list[tuple]:
    import ray
    from ray.cluster_utils import Cluster
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from actors.billing_task import bill_bundle_task
    from rayjobs.billing import submit_and_wait

    centre = ensure_city(accounts, sections, seed=13)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0,
                                                             "include_dashboard": False})
    loaded, idle = cluster.add_node(num_cpus=1), cluster.add_node(num_cpus=1)
    _pin(loaded, 0)
    _pin(idle, 1)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    for burner in burners:
        psutil.Process(burner.pid).cpu_affinity([0])
    ray.init(address=cluster.address, namespace="gridfare", log_to_driver=False)
    try:
        ids = centre.sections(PERIOD)
        # Warm a worker on each node first, so neither mode pays for starting one.
        for node in (loaded, idle):
            strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
            ray.get([bill_bundle_task.options(scheduling_strategy=strategy).remote(
                centre.uri, None, PERIOD, [s], "warm") for s in ids[:2]])
        started = time.perf_counter()
        ran = ray.get([bill_bundle_task.remote(centre.uri, None, PERIOD, [s], "ray-default")
                       for s in ids])
        default_s = time.perf_counter() - started
        on_loaded = sum(node == loaded.node_id for _, node in ran)
        print(f"Ray default placed {on_loaded} of {len(ids)} sections on the loaded node")
        submit_and_wait(centre.uri, PERIOD, sections=ids[:2], show_progress=False)
        # A standing cluster: every node registered. The loaded node's agent gets a third
        # of a core, so it can take several seconds to start and send its first report;
        # a run started before that waits up to the policy's first-report grace for it.
        _wait_for_registrations(centre.uri, {loaded.node_id, idle.node_id})
        started = time.perf_counter()
        signal = submit_and_wait(centre.uri, PERIOD, show_progress=False, poll_s=0.05)
        policy_s = time.perf_counter() - started
        assert signal["status"] == "done", signal
        from datasets.catalog import open_catalog

        placed = open_catalog(centre).sections(signal["run_id"])
        print(f"load-aware dispatch placed {sum(s.node_id == loaded.node_id for s in placed)} "
              f"of {len(ids)} sections on the loaded node")
    finally:
        for burner in burners:
            burner.kill()
        ray.shutdown()
        cluster.shutdown()
    return [("Ray default placement (plain tasks)", len(ids), default_s),
            ("gridfare load-aware dispatch (ControlServer)", len(ids), policy_s)]


def main() -> str:
    text = ["## Dispatch policy (`bench/dispatch_policy.py`)"]
    policy = policy_vs_default(200_000, 64)
    text += ["", "Skewed sections (200,000 accounts in 64 lognormal-sized sections), two 1-CPU "
             "worker nodes pinned to one core each, one of them loaded by two CPU burners:", "",
             "| placement | sections | makespan s |", "|---|---:|---:|"]
    for name, n, seconds in policy:
        print(f"{name:60} {n:>5} sections {seconds:7.2f} s")
        text.append(f"| {name} | {n} | {seconds:.2f} |")
    ratio = policy[0][2] / policy[1][2]
    print(f"makespan Ray default / load-aware: {ratio:.2f} (above 1: load-aware is faster)")
    text += ["", f"Makespan of Ray's default placement / load-aware dispatch: **{ratio:.2f}** "
             "(above 1: load-aware is faster)."]
    return "\n".join(text)


if __name__ == "__main__":
    print(main())
