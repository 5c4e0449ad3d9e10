"""The node program a deployment runs: its image, command, listening ports and health check.

``devnet`` (the default) is this project's node, ``python -m bitcell_sim.node --config FILE``,
serving RPC, P2P and metrics (with ``/health``) on the topology's ports. ``bitcell`` is the real
BitCell node: ``bitcell-node validator|full-node --port P2P --rpc-port RPC --data-dir DIR
--key-seed SEED``, which serves metrics on P2P + 2 and has no ``/health``, so its check is a
scrape of ``/metrics``. A ``command`` template replaces either command (``{node}``, ``{config}``,
``{rpc_port}``, ``{p2p_port}``, ``{metrics_port}``, ``{data_dir}``, ``{key_seed}``, ``{role}``).
:func:`node_config` is the devnet node's config file for one node; :class:`P2PKeys` the fresh
P2P key pair of every node it needs (the authenticated handshake accepts only those keys).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from bitcell_sim import __version__
from bitcell_sim.errors import DeployError
from bitcell_sim.protocol.identity import node_key_seed
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.topology import Topology

ProgramKind = Literal["devnet", "bitcell"]
PROGRAMS: tuple[ProgramKind, ...] = ("devnet", "bitcell")

#: Where the config (topology.yaml and one <node>.json per node) and the chain live in a container.
CONFIG_DIR = "/etc/bitcell"
DATA_DIR = "/data/bitcell"
DEVNET_IMAGE = f"bitcell-sim-node:{__version__}"
BITCELL_IMAGE = "bitcell-node:latest"
#: The suffix of a node's secret P2P key file.
KEY_FILE_SUFFIX = ".p2p.key"
#: The real node serves metrics on its P2P port + 2 (there is no flag for it).
BITCELL_METRICS_OFFSET = 2
_PLACEHOLDERS = (
    "node", "config", "rpc_port", "p2p_port", "metrics_port", "data_dir", "key_seed", "role",
)  # fmt: skip


@dataclass(frozen=True)
class ContainerPorts:
    """The ports a node's process listens on inside its container."""

    rpc: int
    p2p: int
    metrics: int


@dataclass(frozen=True)
class NodeProgram:
    kind: ProgramKind
    image: str
    command_template: str | None = None

    @property
    def health_path(self) -> str:
        return "/health" if self.kind == "devnet" else "/metrics"

    def ports(self, topology: Topology, node: str) -> ContainerPorts:
        spec = topology.nodes[node]
        if self.kind == "devnet":
            return ContainerPorts(spec.rpc_port, spec.p2p_port, spec.metrics_port)
        return ContainerPorts(spec.rpc_port, spec.p2p_port, spec.p2p_port + BITCELL_METRICS_OFFSET)

    def command(self, topology: Topology, node: str, config_dir: str = CONFIG_DIR) -> list[str]:
        """The argv that runs ``node`` (its config at ``config_dir/<node>.json``)."""
        spec, ports = topology.nodes[node], self.ports(topology, node)
        values = {
            "node": node,
            "config": f"{config_dir}/{node}.json",
            "rpc_port": ports.rpc,
            "p2p_port": ports.p2p,
            "metrics_port": ports.metrics,
            "data_dir": DATA_DIR,
            "key_seed": node_key_seed(topology.general.name, node),
            "role": spec.role,
        }
        if self.command_template is not None:
            return [part.format(**values) for part in shlex.split(self.command_template)]
        if self.kind == "devnet":
            return ["python", "-m", "bitcell_sim.node", "--config", str(values["config"])]
        subcommand = "validator" if spec.role == "validator" else "full-node"
        return [
            "bitcell-node", subcommand, "--port", str(ports.p2p), "--rpc-port", str(ports.rpc),
            "--data-dir", DATA_DIR, "--key-seed", str(values["key_seed"]),
        ]  # fmt: skip

    def health_command(self, topology: Topology, node: str) -> list[str]:
        """A command that exits 0 when the node answers its health check on the metrics port."""
        url = f"http://127.0.0.1:{self.ports(topology, node).metrics}{self.health_path}"
        if self.kind == "devnet":  # the Python image has no curl
            check = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=5)"
            return ["python", "-c", check]
        return ["curl", "-sf", "-o", "/dev/null", url]


def node_program(
    kind: str = "devnet", image: str | None = None, command: str | None = None
) -> NodeProgram:
    """The program of ``kind`` (its default image unless ``image``), checking a command template."""
    if kind not in PROGRAMS:
        raise DeployError(f"unknown node program {kind!r} (one of {', '.join(PROGRAMS)})")
    if command is not None:
        try:
            parts = shlex.split(command)
            for part in parts:
                part.format(**dict.fromkeys(_PLACEHOLDERS, ""))
        except (ValueError, KeyError, IndexError) as exc:
            raise DeployError(
                f"bad --command {command!r}: {exc} (placeholders: "
                + ", ".join("{" + p + "}" for p in _PLACEHOLDERS)
                + ")"
            ) from None
        if not parts:
            raise DeployError("--command is empty")
    default = DEVNET_IMAGE if kind == "devnet" else BITCELL_IMAGE
    return NodeProgram(kind, image or default, command)


def check_program(topology: Topology, program: NodeProgram) -> None:
    """DeployError when the real node's metrics port (P2P + 2) falls on one of its own ports."""
    if program.kind != "bitcell":
        return
    clashes = [
        node
        for node, spec in topology.nodes.items()
        if program.ports(topology, node).metrics in (spec.rpc_port, spec.p2p_port)
    ]
    if clashes:
        raise DeployError(
            "the real BitCell node serves metrics on its P2P port + 2, which is another of its "
            f"ports for: {', '.join(clashes)}"
        )


@dataclass(frozen=True)
class P2PKeys:
    """Every node's P2P key pair: the secret key file's text and the public key, in hex.

    Fresh on every export (``generate``): the secrets belong to the deployment, so two exports
    never share them and none is derived from anything public."""

    secrets: Mapping[str, str]
    public: Mapping[str, str]

    @classmethod
    def generate(cls, topology: Topology) -> P2PKeys:
        pairs = {node: KeyPair.generate() for node in topology.node_names}
        return cls(
            secrets={node: pair.secret.hex() + "\n" for node, pair in pairs.items()},
            public={node: pair.public_key.hex() for node, pair in pairs.items()},
        )

    @staticmethod
    def file_name(node: str) -> str:
        """The secret key file of ``node``, beside its config."""
        return f"{node}{KEY_FILE_SUFFIX}"


def node_config(
    topology: Topology,
    node: str,
    genesis_time_unix_s: float,
    keys: P2PKeys,
    *,
    topology_path: str = f"{CONFIG_DIR}/topology.yaml",
    data_dir: str = DATA_DIR,
    key_dir: str = CONFIG_DIR,
) -> dict[str, Any]:
    """The devnet node's config file (``bitcell_sim.node.NodeConfig``): listen on every address,
    dial each peer by its node name (the compose service, Kubernetes Service or Shadow host),
    accept the P2P keys of ``keys``."""
    return {
        "node": node,
        "topology": topology_path,
        "data_dir": data_dir,
        "host": "0.0.0.0",
        "genesis_time_unix_s": genesis_time_unix_s,
        "peers": {
            peer: f"{peer}:{topology.nodes[peer].p2p_port}" for peer in topology.peer_map[node]
        },
        "p2p_key_file": str(PurePosixPath(key_dir) / P2PKeys.file_name(node)),
        "p2p_keys": dict(keys.public),
    }
