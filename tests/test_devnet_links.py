"""The devnet's link wiring and network faults, measured through the real emulator.

The emulator is started by the devnet's own code (plan, links file, token, ``start_emulator``)
in front of ``ProbeServer``s standing at the nodes' P2P ports, so what is measured is exactly
what a node's bytes go through: one-way latency, bandwidth, partitions and added latency.
"""

from __future__ import annotations

import socket
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bitcell_sim.devnet import Devnet, DevnetMeta, StateDir, down, link_specs, plan_devnet
from bitcell_sim.devnet.launch import start_emulator
from bitcell_sim.errors import DevnetError, FaultError, NetemError
from bitcell_sim.faults import DevnetFaults, read_events
from bitcell_sim.loopback import free_port, free_port_block
from bitcell_sim.netem import ProbeServer, measure_delays, write_links_file
from bitcell_sim.topology import parse_topology

pytestmark = [pytest.mark.real, pytest.mark.timeout(60)]


@dataclass
class Wired:
    devnet: Devnet
    probes: dict[str, ProbeServer]

    def port(self, source: str, target: str) -> int:
        return self.devnet.plan.link(source, target).listen_port


def _within(measured_s: float, expected_s: float) -> bool:
    return abs(measured_s - expected_s) <= max(0.10 * expected_s, 0.005)


def _start_wired(folder: Path, probes: dict[str, ProbeServer]) -> Devnet:
    nodes = "\n".join(
        f"  {name}: {{region: {region}, rpc_port: {free_port()}, "
        f"p2p_port: {probes[name].port}, metrics_port: {free_port()}}}"
        for name, region in (("n1", "a"), ("n2", "a"), ("n3", "b"))
    )
    # Links and the control API from one block below the ephemeral range, so no client
    # socket of another process can take one between the check and the bind.
    base = free_port_block(7)
    topology = parse_topology(
        f"""
general: {{name: wired, seed: 3}}
regions:
  a: {{rtt: {{a: 2 ms, b: 100 ms}}}}
  b: {{rtt: {{b: 2 ms}}}}
links: {{bandwidth: 10 Mbit}}
nodes:
{nodes}
devnet: {{netem_port_base: {base}, netem_control_port: {base + 6}}}
"""
    )
    plan = plan_devnet(topology)
    state = StateDir(folder)
    state.create()
    state.write_token()
    write_links_file(state.links_path, link_specs(plan, topology.general.seed))
    state.topology_path.write_text("# not read by these tests\n")
    meta = DevnetMeta(
        "wired", "-", plan.host, time.time(), f"http://127.0.0.1:{plan.control_port}",
        time.time(), sys.executable, ("unused",),
    )  # fmt: skip
    state.write_meta(meta)
    devnet = Devnet(state, topology, meta)
    start_emulator(devnet)
    return devnet


@pytest.fixture
def wired(tmp_path: Path) -> Iterator[Wired]:
    probes = {name: ProbeServer(echo=True).start() for name in ("n1", "n2", "n3")}
    folders: list[Path] = []
    try:
        for attempt in range(3):  # another process may take a chosen port first: pick again
            folders.append(tmp_path / f"devnet{attempt}")
            try:
                devnet = _start_wired(folders[-1], probes)
                break
            except DevnetError:
                down(folders[-1], grace_s=2.0)
                if attempt == 2:
                    raise
        yield Wired(devnet, probes)
    finally:
        for folder in folders:
            down(folder, grace_s=2.0)
        for probe in probes.values():
            probe.stop()


def _one_way_s(wired: Wired, source: str, target: str, samples: int = 6) -> float:
    delays = measure_delays(wired.probes[target], wired.port(source, target), samples=samples)
    return statistics.median(d.one_way_s for d in delays)


def test_node_links_carry_the_topology_latency(wired: Wired) -> None:
    # a <-> b is 100 ms RTT: 50 ms one way, measured at the receiving end.
    assert _within(_one_way_s(wired, "n1", "n3"), 0.050)
    assert _within(_one_way_s(wired, "n3", "n2"), 0.050)
    assert _within(_one_way_s(wired, "n1", "n2"), 0.001)
    with wired.devnet.netem() as netem:
        counters = netem.link("n1->n3").counters
    assert counters.bytes_forward >= 6 * 64 and counters.connections_total == 1


def test_200kb_over_a_10mbit_link_takes_about_160ms(wired: Wired) -> None:
    size = 200_000
    probe = wired.probes["n2"]
    durations = []
    for _ in range(3):
        index = probe.accepted
        with socket.create_connection(("127.0.0.1", wired.port("n1", "n2"))) as sock:
            sock.sendall(b"h")
            probe.wait_for(1, 5.0, index)
            sock.recv(1)
            start = time.monotonic()
            sock.sendall(b"x" * size)
            durations.append(probe.wait_for(size + 1, 10.0, index) - start)
            sock.shutdown(socket.SHUT_WR)
        time.sleep(0.4)  # the echo drains back over the same link first
    expected_s = size * 8 / 10e6 + 0.001
    assert abs(statistics.median(durations) - expected_s) <= 0.1 * expected_s, durations


def _reachable(wired: Wired, source: str, target: str) -> bool:
    try:
        measure_delays(wired.probes[target], wired.port(source, target), samples=1, timeout_s=2)
    except (OSError, NetemError):
        return False
    return True


def test_partition_cuts_the_links_across_and_heal_restores_them(wired: Wired) -> None:
    faults = DevnetFaults(wired.devnet)
    fault = faults.partition([["b"]])
    assert sorted(fault.links) == ["n1->n3", "n2->n3", "n3->n1", "n3->n2"]
    assert not _reachable(wired, "n1", "n3") and not _reachable(wired, "n3", "n2")
    assert _reachable(wired, "n1", "n2")
    # A second partition over the same links: healing one keeps them cut.
    second = faults.partition([["n3"], ["n1", "n2"]])
    faults.revert(fault.id)
    assert not _reachable(wired, "n2", "n3")
    faults.revert(second.id)
    assert _reachable(wired, "n2", "n3") and _reachable(wired, "n3", "n1")
    assert faults.active() == []
    events = read_events(wired.devnet.state.faults_log_path)
    assert [(e.action, e.kind) for e in events] == [
        ("apply", "partition"),
        ("apply", "partition"),
        ("revert", "partition"),
        ("revert", "partition"),
    ]
    assert events[0].detail["links"] == list(fault.links)


def test_added_latency_adds_up_and_reverts(wired: Wired) -> None:
    faults = DevnetFaults(wired.devnet)
    first = faults.add_latency("n3", 0.030)
    assert sorted(first.links) == ["n1->n3", "n2->n3", "n3->n1", "n3->n2"]
    second = faults.add_latency("b", 0.020)
    assert _within(_one_way_s(wired, "n1", "n3"), 0.100)
    assert _within(_one_way_s(wired, "n1", "n2"), 0.001)  # not touching n3: unchanged
    faults.revert(first.id)
    assert _within(_one_way_s(wired, "n3", "n1"), 0.070)
    faults.revert(second.id)
    assert _within(_one_way_s(wired, "n2", "n3"), 0.050)
    with wired.devnet.netem() as netem:
        assert all(link.current == link.configured for link in netem.links())


def test_fault_errors_name_the_bad_value(wired: Wired) -> None:
    faults = DevnetFaults(wired.devnet)
    with pytest.raises(FaultError, match=r"unknown node or region 'mars'"):
        faults.partition([["mars"]])
    with pytest.raises(FaultError, match=r"added latency -1 s must be > 0"):
        faults.add_latency("n1", -1)
    with pytest.raises(FaultError, match=r"node\(s\) n1 are in two groups"):
        faults.partition([["a"], ["n1"]])
    with pytest.raises(FaultError, match=r"no active fault with id 42"):
        faults.revert(42)
