"""Free loopback ports and topology copies relocated into a free block (real sockets)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest
import yaml

from bitcell_sim.devnet import plan_devnet
from bitcell_sim.devnet.monitor import monitoring_port_owners
from bitcell_sim.devnet.ports import block_size, relocate_ports, relocated_copy
from bitcell_sim.errors import DevnetError, TopologyError
from bitcell_sim.loopback import BLOCK_HIGH, BLOCK_LOW, free_port, free_port_block, free_ports
from bitcell_sim.topology import parse_topology

ROOT = Path(__file__).resolve().parent.parent
RC3_FAST = ROOT / "topologies" / "rc3-fast.yaml"


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    assert all(bindable(port) for port in [*ports, free_port()])


def test_a_block_is_free_and_below_the_ephemeral_range() -> None:
    base = free_port_block(12)
    assert base >= BLOCK_LOW and base + 12 <= BLOCK_HIGH < 32768
    assert all(bindable(port) for port in range(base, base + 12))


def test_a_block_with_a_taken_port_is_passed_over() -> None:
    first = random.Random(5).randrange(BLOCK_LOW, BLOCK_HIGH - 4)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", first + 2))
        base = free_port_block(4, rng=random.Random(5))
    assert base != first and first + 2 not in range(base, base + 4)


def test_a_block_too_large_is_an_error() -> None:
    with pytest.raises(DevnetError, match=r"count=8000 does not fit in 25000\.\.32699"):
        free_port_block(8000)


def test_relocated_ports_and_links_stay_in_the_block() -> None:
    data = yaml.safe_load(RC3_FAST.read_text())
    moved = relocate_ports(data, 26000)
    assert data["nodes"]["us-east-1"]["rpc_port"] != 26000  # the input is not changed
    plan = plan_devnet(parse_topology(yaml.safe_dump(moved)))
    ports = [port for _, port in plan.ports()]
    assert len(set(ports)) == len(ports)
    assert min(ports) == 26000 and max(ports) < 26000 + block_size(data)
    first = plan.nodes[next(iter(data["nodes"]))]
    assert (first.rpc_port, first.p2p_port, first.metrics_port) == (26000, 26001, 26002)
    after_nodes = 26000 + 3 * len(data["nodes"])
    monitoring = parse_topology(yaml.safe_dump(moved)).monitoring.ports()
    assert sorted(monitoring.values()) == list(range(after_nodes, after_nodes + len(monitoring)))
    assert plan.control_port == after_nodes + len(monitoring)


def test_relocated_copy_keeps_nodes_and_merges_sections(tmp_path: Path) -> None:
    target = relocated_copy(
        RC3_FAST,
        tmp_path / "t.yaml",
        keep=("us-east-1", "eu-central-1"),
        protocol={"tx_pool_capacity": 500},
        devnet={"genesis_delay": "2 s"},
    )
    topology = parse_topology(target.read_text())
    assert list(topology.nodes) == ["us-east-1", "eu-central-1"]
    assert topology.protocol.tx_pool_capacity == 500
    assert topology.peers == "full_mesh"
    assert topology.devnet.genesis_delay_s == 2.0
    assert all(BLOCK_LOW <= port < BLOCK_HIGH for _, port in plan_devnet(topology).ports())


def test_relocated_copy_rejects_a_bad_change(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="tx_pool_capcity"):
        relocated_copy(RC3_FAST, tmp_path / "t.yaml", protocol={"tx_pool_capcity": 5})


def test_monitoring_ports_join_the_plan_and_clash_with_link_listeners() -> None:
    data = relocate_ports(yaml.safe_load(RC3_FAST.read_text()), 26000)
    topology = parse_topology(yaml.safe_dump(data))
    owners = monitoring_port_owners(topology)
    plan = plan_devnet(topology, services=tuple(owners))
    assert set(owners) <= set(plan.ports())
    # A link listener sits on netem_port_base + 1: the topology cannot see it, the plan does.
    data["monitoring"]["haproxy_port"] = data["devnet"]["netem_port_base"] + 1
    clashing = parse_topology(yaml.safe_dump(data))
    with pytest.raises(DevnetError, match=r"planned twice.*monitoring haproxy_port"):
        plan_devnet(clashing, services=tuple(monitoring_port_owners(clashing)))
