"""The node process's configuration file: which node of which topology, where, and its peers.

``NodeConfig`` is the JSON the orchestrator writes (``node``, ``topology``, ``data_dir``,
``host``, ``genesis_time_unix_s``, ``peers`` as name -> "host:port" to dial, ``p2p_key_file``
and ``p2p_keys``: this node's secret P2P key and every node's public one); ``load_config``
reads and validates it, raising ``DevnetError`` with ``field: message`` lines on mistakes.
``NodeSettings`` is the resolved view: the loaded ``Topology`` plus this node's entry and keys.
``write_p2p_key``/``read_p2p_key`` are the key file (64 hex digits, mode 0600).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bitcell_sim.errors import DevnetError, TopologyError
from bitcell_sim.protocol.errors import ProtocolError
from bitcell_sim.protocol.identity import node_keypair
from bitcell_sim.protocol.keys import KeyPair, is_valid_public_key
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
    p2p_key_file: Path
    p2p_keys: dict[str, str]
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("peers")
    @classmethod
    def _check_peers(cls, peers: dict[str, str]) -> dict[str, str]:
        for address in peers.values():
            parse_host_port(address)
        return peers

    @field_validator("p2p_keys")
    @classmethod
    def _check_keys(cls, keys: dict[str, str]) -> dict[str, str]:
        for name, text in keys.items():
            try:
                key = bytes.fromhex(text)
            except ValueError:
                key = b""
            if not is_valid_public_key(key):
                raise ValueError(f"{name}: {text!r} is not a compressed secp256k1 key in hex")
        return keys


def write_p2p_key(path: Path, keypair: KeyPair) -> str:
    """Write ``keypair``'s secret to ``path`` (mode 0600); return its public key in hex."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(keypair.secret.hex() + "\n")
    return keypair.public_key.hex()


def read_p2p_key(path: Path) -> KeyPair:
    """The key pair whose secret ``path`` holds; ``DevnetError`` naming the file otherwise."""
    try:
        return KeyPair.from_secret(bytes.fromhex(path.read_text(encoding="ascii").strip()))
    except OSError as exc:
        raise DevnetError(f"p2p_key_file {path}: {exc.strerror or exc}") from None
    except (ValueError, ProtocolError):
        raise DevnetError(f"p2p_key_file {path}: not a secret key (64 hex digits)") from None


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
            "p2p_key_file": config.p2p_key_file
            if config.p2p_key_file.is_absolute()
            else base / config.p2p_key_file,
        }
    )


@dataclass(frozen=True)
class NodeSettings:
    """A config resolved against its topology: the node's spec, keys and peer addresses.

    ``keypair`` is the validator key (derived from the network, public knowledge: see
    ``protocol.identity``); ``p2p_keypair`` the secret key this node proves in the P2P
    handshake, and ``p2p_keys`` every topology node's public P2P key, the only ones accepted.
    """

    config: NodeConfig
    topology: Topology
    spec: NodeSpec
    keypair: KeyPair
    peers: dict[str, tuple[str, int]]
    p2p_keypair: KeyPair
    p2p_keys: dict[str, bytes]

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
        missing = [n for n in topology.node_names if n not in config.p2p_keys]
        strangers = sorted(set(config.p2p_keys) - set(topology.nodes))
        if missing or strangers:
            raise DevnetError(
                f"node {config.node}: p2p_keys must name every node of the topology"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; not in the topology: {', '.join(strangers)}" if strangers else "")
            )
        p2p_keys = {name: bytes.fromhex(text) for name, text in config.p2p_keys.items()}
        if len(set(p2p_keys.values())) != len(p2p_keys):
            raise DevnetError(f"node {config.node}: two nodes have the same key in p2p_keys")
        p2p_keypair = read_p2p_key(config.p2p_key_file)
        if p2p_keypair.public_key != p2p_keys[config.node]:
            raise DevnetError(
                f"node {config.node}: p2p_key_file {config.p2p_key_file} does not hold the key "
                f"p2p_keys gives for {config.node}"
            )
        return cls(
            config=config,
            topology=topology,
            spec=topology.nodes[config.node],
            keypair=node_keypair(topology.general.name, config.node),
            peers={name: parse_host_port(addr) for name, addr in config.peers.items()},
            p2p_keypair=p2p_keypair,
            p2p_keys=p2p_keys,
        )
