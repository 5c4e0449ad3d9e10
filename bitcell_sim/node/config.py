"""The node process's configuration file: which node of which topology, where, and its peers.

``NodeConfig`` is the JSON the orchestrator writes (``node``, ``topology``, ``data_dir``,
``host``, ``genesis_time_unix_s``, ``peers`` as name -> "host:port" to dial); ``load_config``
reads and validates it, raising ``DevnetError`` with ``field: message`` lines on mistakes.
``NodeSettings`` is the resolved view: the loaded ``Topology`` plus this node's entry and key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bitcell_sim.errors import DevnetError, TopologyError
from bitcell_sim.protocol.identity import node_keypair
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.topology import Topology, load_topology
from bitcell_sim.topology.schema import NodeSpec


def parse_host_port(text: str) -> tuple[str, int]:
    """``"host:port"`` -> (host, port); raises ``ValueError`` naming the text."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"peer address {text!r} is not host:port")
    return host, int(port_text)


class NodeConfig(BaseModel):
    """The node's JSON config file (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: str = Field(min_length=1)
    topology: Path
    data_dir: Path
    host: str = "127.0.0.1"
    genesis_time_unix_s: float
    peers: dict[str, str] = Field(default_factory=dict)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("peers")
    @classmethod
    def _check_peers(cls, peers: dict[str, str]) -> dict[str, str]:
        for address in peers.values():
            parse_host_port(address)
        return peers


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate a node config file; relative paths resolve against its folder."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DevnetError(f"node config {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise DevnetError(f"node config {path}: cannot read JSON: {exc}") from None
    try:
        config = NodeConfig.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise DevnetError(f"invalid node config {path}:\n" + "\n".join(lines)) from None
    base = path.parent
    return config.model_copy(
        update={
            "topology": config.topology
            if config.topology.is_absolute()
            else base / config.topology,
            "data_dir": config.data_dir
            if config.data_dir.is_absolute()
            else base / config.data_dir,
        }
    )


@dataclass(frozen=True)
class NodeSettings:
    """A config resolved against its topology: the node's spec, key and peer addresses."""

    config: NodeConfig
    topology: Topology
    spec: NodeSpec
    keypair: KeyPair
    peers: dict[str, tuple[str, int]]

    @property
    def name(self) -> str:
        return self.config.node

    @property
    def network(self) -> str:
        return self.topology.general.name

    @property
    def is_validator(self) -> bool:
        return self.spec.role == "validator"

    @classmethod
    def resolve(cls, config: NodeConfig, topology: Topology | None = None) -> NodeSettings:
        """Load the topology (unless given) and check the node and its peers are in it."""
        if topology is None:
            try:
                topology = load_topology(config.topology)
            except TopologyError as exc:
                raise DevnetError(f"node {config.node}: {exc}") from None
        if config.node not in topology.nodes:
            raise DevnetError(
                f"node {config.node!r} is not in topology {config.topology} "
                f"(nodes: {', '.join(topology.node_names)})"
            )
        unknown = sorted(set(config.peers) - set(topology.nodes))
        if unknown:
            raise DevnetError(f"node {config.node}: peers {unknown} are not in the topology")
        if config.node in config.peers:
            raise DevnetError(f"node {config.node}: cannot peer with itself")
        return cls(
            config=config,
            topology=topology,
            spec=topology.nodes[config.node],
            keypair=node_keypair(topology.general.name, config.node),
            peers={name: parse_host_port(addr) for name, addr in config.peers.items()},
        )
