"""Free loopback ports for devnets started beside others (tests, benchmarks, the load CLI).

``free_port``/``free_ports`` ask the OS for ports it has free now; ``free_port_block`` finds a
run of consecutive free ports below the ephemeral range, where no client socket of another
process can take one between the check and the bind. ``relocate_ports`` moves every port of a
topology document into such a block and ``relocated_copy`` writes that copy of a topology file.
"""

from __future__ import annotations

import copy
import random
import socket
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

from bitcell_sim.errors import DevnetError
from bitcell_sim.topology import parse_topology

LOOPBACK = "127.0.0.1"
# Blocks are drawn from [BLOCK_LOW, BLOCK_HIGH): below Linux's ephemeral range (32768 up), so
# the OS never hands one of these ports to an outgoing connection.
BLOCK_LOW = 25000
BLOCK_HIGH = 32700
BLOCK_ATTEMPTS = 500


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports the OS had free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """One loopback port the OS had free a moment ago."""
    return free_ports(1)[0]


def _block_free(base: int, count: int) -> bool:
    sockets = []
    try:
        for port in range(base, base + count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((LOOPBACK, port))
        return True
    except OSError:
        return False
    finally:
        for sock in sockets:
            sock.close()


def free_port_block(count: int, *, rng: random.Random | None = None) -> int:
    """A base port such that ``base .. base + count - 1`` are all free on loopback, below the
    ephemeral range; blocks are drawn at random (from ``rng`` if given) so that parallel
    callers rarely collide. DevnetError if ``count`` does not fit or no block is free."""
    if not 0 < count < BLOCK_HIGH - BLOCK_LOW:
        raise DevnetError(
            f"a port block of count={count} does not fit in {BLOCK_LOW}..{BLOCK_HIGH - 1}"
        )
    chooser = rng if rng is not None else random.Random()
    for _ in range(BLOCK_ATTEMPTS):
        base = chooser.randrange(BLOCK_LOW, BLOCK_HIGH - count)
        if _block_free(base, count):
            return base
    raise DevnetError(f"no block of {count} free ports after {BLOCK_ATTEMPTS} tries")


def block_size(data: Mapping[str, Any]) -> int:
    """How many ports ``relocate_ports`` uses for the topology document ``data``: three per
    node, the emulator's control port and one per directed link of a full mesh (the most any
    peer graph needs)."""
    nodes = len(data["nodes"])
    return 3 * nodes + 1 + nodes * (nodes - 1)


def relocate_ports(data: Mapping[str, Any], base: int) -> dict[str, Any]:
    """A copy of the topology document ``data`` with every port in ``base ..``: each node's
    rpc, p2p and metrics ports in turn, then ``devnet.netem_control_port`` and
    ``devnet.netem_port_base`` (the emulator's link listeners count up from there)."""
    moved = copy.deepcopy(dict(data))
    for index, spec in enumerate(moved["nodes"].values()):
        spec["rpc_port"] = base + 3 * index
        spec["p2p_port"] = base + 3 * index + 1
        spec["metrics_port"] = base + 3 * index + 2
    after_nodes = base + 3 * len(moved["nodes"])
    moved["devnet"] = {
        **moved.get("devnet", {}),
        "netem_control_port": after_nodes,
        "netem_port_base": after_nodes + 1,
    }
    return moved


def relocated_copy(
    source: Path,
    target: Path,
    *,
    keep: Collection[str] | None = None,
    rng: random.Random | None = None,
    **sections: Mapping[str, Any],
) -> Path:
    """Write to ``target`` the topology file ``source`` with every port moved into a fresh free
    block (so it can run beside another devnet), each of ``sections`` merged into the section
    of that name, and, if ``keep`` is given, only those nodes, peered as a full mesh (the file's
    peer list may name the others). The copy is parsed once so a bad change raises
    TopologyError here, not at ``up``. Returns ``target``."""
    data = yaml.safe_load(source.read_text())
    if keep is not None:
        data["nodes"] = {name: spec for name, spec in data["nodes"].items() if name in keep}
        data["peers"] = "full_mesh"
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    data = relocate_ports(data, free_port_block(block_size(data), rng=rng))
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    parse_topology(target.read_text())
    return target
