"""What Ray caps on a burst node, what the environment caps itself, and the preemption drain.

A burst node (CPU 0 here, so no other test's task lands on it; a custom ``burst`` resource,
a fixed object store) is added to the session cluster for this module and drained at its
end by the manager's own ``drain_node``: running work finishes, nothing new starts there,
the node leaves.
"""

from __future__ import annotations

import time

import pytest

from gridfare.errors import QuotaExceeded

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

STORE_BYTES = 80 * 1024 * 1024


@pytest.fixture(scope="module")
def burst_node(ray_cluster):
    import ray

    cluster, _ = ray_cluster
    node = cluster.add_node(num_cpus=0, resources={"burst": 1, "loadshare_slot": 1},
                            object_store_memory=STORE_BYTES)
    cluster.wait_for_nodes()
    yield node
    if any(n["NodeID"] == node.node_id and n["Alive"] for n in ray.nodes()):
        cluster.remove_node(node)


def _environment_actor():
    import ray

    from actors.burst_environment import EnvironmentAgent
    from gridfare.loadshare.caps import EnvironmentCaps

    @ray.remote(num_cpus=0, resources={"burst": 1})
    class Environment:
        def __init__(self, caps: dict) -> None:
            self.agent = EnvironmentAgent("no-manager", EnvironmentCaps(**caps))

        def node(self) -> str:
            return self.agent.node_id

        async def carry(self, nbytes: int, times: int) -> float:
            started = time.monotonic()
            for _ in range(times):
                async with self.agent.task():
                    await self.agent.carry(nbytes)
            return time.monotonic() - started

        def write(self, name: str, size: int) -> str:
            return str(self.agent.write(name, b"x" * size))

        def exists(self, name: str) -> bool:
            return (self.agent.workdir / name).exists()

        def stats(self) -> dict:
            return self.agent.stats()

    return Environment


def test_ray_caps_the_burst_resource_and_object_store_the_environment_caps_the_rest(
        burst_node):
    import ray

    node = next(n for n in ray.nodes() if n["NodeID"] == burst_node.node_id)
    assert node["Resources"]["burst"] == 1
    assert node["Resources"]["object_store_memory"] == STORE_BYTES

    caps = {"bandwidth_bytes_s": 20_000, "burst_bytes": 2_000, "workdir_bytes": 10_000}
    environment_class = _environment_actor()
    env = environment_class.remote(caps)
    assert ray.get(env.node.remote()) == burst_node.node_id
    # The node's one `burst` unit is held: a second environment waits for it.
    second = environment_class.remote(caps)
    ready, _ = ray.wait([second.node.remote()], timeout=2)
    assert not ready

    # The bandwidth cap: 42,000 bytes through a 20,000 B/s bucket holding 2,000 cannot
    # pass in less than (42,000 - 2,000) / 20,000 = 2 s, however idle the machine is.
    elapsed = ray.get(env.carry.remote(1_000, 42))
    assert elapsed >= 2.0 * 0.95
    assert ray.get(env.stats.remote())["done"] == 42

    # The working-directory quota: refused whole, before a byte is written.
    ray.get(env.write.remote("a.bin", 6_000))
    with pytest.raises(QuotaExceeded, match="over its quota of 10,000"):
        ray.get(env.write.remote("b.bin", 6_000))
    assert not ray.get(env.exists.remote("b.bin"))
    ray.get(env.write.remote("a.bin", 9_000))  # replacing a file counts the difference
    ray.kill(env)
    assert ray.get(second.node.remote(), timeout=30) == burst_node.node_id
    ray.kill(second)


def test_a_preemption_drain_lets_running_work_finish_and_takes_no_new_work(burst_node,
                                                                           tmp_path):
    import ray

    from actors.loadshare_manager import drain_node

    @ray.remote(num_cpus=0, resources={"burst": 0.5}, max_retries=0)
    def work(seconds: float, started: str) -> str:
        open(started, "w").close()
        time.sleep(seconds)
        return ray.get_runtime_context().get_node_id()

    started = tmp_path / "started"
    running = work.remote(4.0, str(started))
    deadline = time.monotonic() + 60
    while not started.exists():  # it runs on the burst node (the only one with `burst`)
        assert time.monotonic() < deadline, "the task did not start"
        time.sleep(0.1)
    assert drain_node(burst_node.node_id, 60, "test: burst episode over")
    late = work.remote(0.0, str(tmp_path / "late"))
    assert ray.get(running, timeout=60) == burst_node.node_id  # finished, not killed
    ready, _ = ray.wait([late], timeout=2)
    assert not ready  # a draining node takes nothing new
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not any(n["NodeID"] == burst_node.node_id and n["Alive"] for n in ray.nodes()):
            break
        time.sleep(0.5)
    else:
        pytest.fail("the drained node did not leave once idle")
    ray.cancel(late, force=True)
