"""What a fault touches (``topology.scope``), and that the model and the devnet apply exactly that.

The devnet side runs the real link emulator process (every directed link of the topology,
listening on ports the OS picks) behind ``DevnetFaults``; its node processes are stand-ins that
record which nodes were killed or throttled. Every fault of every shipped topology is applied
alone, plus, per topology, each fault kind on every region (multi-node regions included) and on
a node: the model's fault schedule and the emulator's links in force must select the same
nodes and the same directed links as ``fault_scope``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter

from bitcell_sim.devnet import Devnet, DevnetMeta, StateDir, link_name, link_specs, plan_devnet
from bitcell_sim.errors import FaultError
from bitcell_sim.faults import DevnetFaults, ThrottleHandle
from bitcell_sim.model.schedule import FaultSchedule
from bitcell_sim.netem import EmulatorProcess, write_links_file
from bitcell_sim.topology import (
    CpuThrottle,
    Fault,
    NodeDown,
    RegionDown,
    Topology,
    boundary_links,
    fault_scope,
    load_topology,
    partition_links,
    partition_sides,
    resolve_targets,
)
from tests.conftest import TOPOLOGIES
from tests.model_topologies import variant

SHIPPED = sorted(p.stem for p in TOPOLOGIES.glob("*.yaml"))


def test_partition_cuts_every_directed_link_across(rc3_fast_path: Path) -> None:
    topology = load_topology(rc3_fast_path)
    sides = partition_sides(topology, [["eu-central", "ap-southeast"]])
    assert sides[1] == frozenset(resolve_targets(topology, ["us-east", "us-west"]))
    links = partition_links(topology, sides)
    assert len(links) == 2 * 3 * 4  # both directions of every (EU/AP, US) pair
    assert ("eu-central-1", "us-east-1") in links and ("us-east-1", "eu-central-1") in links
    assert ("eu-central-1", "ap-southeast-1") not in links


def test_added_latency_touches_links_in_and_out_of_a_region(rc3_fast_path: Path) -> None:
    topology = load_topology(rc3_fast_path)
    links = boundary_links(topology, topology.nodes_in_region("us-east"))
    assert len(links) == 2 * 2 * 5
    assert ("us-east-1", "us-east-2") not in links  # within the region: unchanged
    assert len(boundary_links(topology, ["ap-southeast-1"])) == 12


def test_bad_targets_and_groups_are_named(rc3_fast_path: Path) -> None:
    topology = load_topology(rc3_fast_path)
    with pytest.raises(FaultError, match=r"unknown node or region 'mars'"):
        resolve_targets(topology, ["mars"])
    with pytest.raises(FaultError, match=r"node\(s\) us-east-1 are in two groups"):
        partition_sides(topology, [["us-east"], ["us-east-1"]])
    with pytest.raises(FaultError, match="at least one non-empty group"):
        partition_sides(topology, [[]])


def faults_to_check(topology: Topology) -> list[dict[str, Any]]:
    """The topology's own faults, then every kind on every region and on its first node."""
    window = {"start": "10 s", "duration": "5 s"}
    out = [f.model_dump(mode="json", by_alias=True) for f in topology.faults]
    for region in topology.regions:
        if not topology.nodes_in_region(region):
            continue
        out += [
            {"kind": "region_down", "target": region, **window},
            {"kind": "added_latency", "target": region, "latency": "50 ms", **window},
            {"kind": "partition", "groups": [[region]], **window},
        ]
    first = topology.node_names[0]
    out += [
        {"kind": "node_down", "target": first, **window},
        {"kind": "cpu_throttle", "target": first, "share": 0.5, **window},
        {"kind": "added_latency", "target": first, "latency": "50 ms", **window},
    ]
    return out


def model_picks(topology: Topology) -> tuple[set[str], set[tuple[str, str]]]:
    """Nodes and directed links the model's schedule applies the topology's one fault to."""
    names = topology.node_names
    schedule = FaultSchedule(topology, {n: i for i, n in enumerate(names)})
    nodes = {names[w.node] for w in schedule.down_windows}
    nodes |= {names[w.node] for w in schedule.throttles}
    masks = [p.cut for p in schedule.partitions] + [w.links for w in schedule.latencies]
    links = {(names[a], names[b]) for mask in masks for a, b in zip(*np.nonzero(mask), strict=True)}
    return nodes, links


class StandInDevnet(Devnet):
    """A devnet whose emulator is real but whose nodes are stand-ins that record signals."""

    killed: list[str]

    def kill_node(self, node: str, signum: int = 9, timeout_s: float = 10.0) -> bool:
        self.killed.append(self.check_node(node))
        return True

    def is_running(self, name: str) -> bool:
        return name not in self.killed

    def start_node(self, node: str) -> Any:
        self.killed.remove(node)


class StandInFaults(DevnetFaults):
    throttled: list[str]

    def _throttle_one(self, node: str, share: float) -> ThrottleHandle:
        self.throttled.append(node)
        return ThrottleHandle("signals", node, 0, 0, share)


@pytest.fixture(params=SHIPPED)
def devnet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StandInDevnet]:
    topology = load_topology(TOPOLOGIES / f"{request.param}.yaml")
    state = StateDir(tmp_path / "state")
    state.create()
    state.write_token()
    specs = [
        dataclasses.replace(spec, listen_port=0)
        for spec in link_specs(plan_devnet(topology), topology.general.seed)
    ]
    write_links_file(state.links_path, specs)
    with EmulatorProcess.start(state.links_path, state.token_path) as emulator:
        meta = DevnetMeta(
            name=topology.general.name,
            topology_source=request.param,
            host="127.0.0.1",
            genesis_time_unix_s=0.0,
            control_url=emulator.control_url,
            created_unix_s=0.0,
            python="python",
            node_command=("true",),
        )
        stand_in = StandInDevnet(state, topology, meta)
        stand_in.killed = []
        yield stand_in


def devnet_picks(devnet: StandInDevnet, fault: Fault) -> tuple[set[str], set[tuple[str, str]]]:
    """Apply ``fault`` on the devnet; the nodes signalled and the links the emulator changed."""
    faults = StandInFaults(devnet)
    faults.throttled = []
    active = faults.apply(fault)
    by_name = {link_name(a, b): (a, b) for a, b in devnet.topology.directed_links}
    with devnet.netem() as netem:
        changed = {
            by_name[state.name] for state in netem.links() if state.current != state.configured
        }
    nodes = set(devnet.killed) | set(faults.throttled)
    faults.revert(active.id)
    with devnet.netem() as netem:
        assert all(state.current == state.configured for state in netem.links())
    assert not devnet.killed
    return nodes, changed


def with_fault(topology: Topology, fault: dict[str, Any]) -> Topology:
    return topology.model_copy(update={"faults": (TypeAdapter(Fault).validate_python(fault),)})


@pytest.mark.real
@pytest.mark.timeout(120)
def test_model_and_devnet_pick_the_same_nodes_and_links(devnet: StandInDevnet) -> None:
    topology = devnet.topology
    assert any(len(topology.nodes_in_region(r)) > 1 for r in topology.regions)
    for raw in faults_to_check(topology):
        alone = with_fault(topology, raw)
        fault = alone.faults[0]
        scope = fault_scope(alone, fault)
        if isinstance(fault, NodeDown | RegionDown | CpuThrottle):
            expected = (set(scope.nodes), set())
        else:
            expected = (set(), set(scope.links))
        assert expected[0] or expected[1], raw
        assert model_picks(alone) == expected, raw
        assert devnet_picks(devnet, fault) == expected, raw


def test_added_latency_on_a_region_leaves_its_inside_links_alone() -> None:
    topology = variant(
        "rc3",
        faults=[{"kind": "added_latency", "target": "us-east", "latency": "80 ms",
                 "start": "0 s", "duration": "10 s"}],
    )  # fmt: skip
    inside = set(itertools.permutations(topology.nodes_in_region("us-east"), 2))
    nodes, links = model_picks(topology)
    assert not nodes and links and not links & inside
    assert links == set(boundary_links(topology, topology.nodes_in_region("us-east")))
