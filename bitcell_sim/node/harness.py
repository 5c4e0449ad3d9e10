"""Small local networks of real node processes, for the node's tests and benchmark.

``LocalNet(root, nodes, ...)`` writes a topology with fast rounds and free loopback ports, one
P2P key and one config per node (peers dialled directly at each other's P2P ports unless told
otherwise), and starts, signals and restarts ``python -m bitcell_sim.node`` processes by pid
(``NodeProcess``). Everything binds 127.0.0.1; ``LocalNet.close`` kills what it started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bitcell_sim.errors import DevnetError
from bitcell_sim.loopback import free_ports
from bitcell_sim.node.config import write_p2p_key
from bitcell_sim.protocol.block import genesis_block
from bitcell_sim.protocol.identity import funded_sender
from bitcell_sim.protocol.keys import KeyPair

HOST = "127.0.0.1"


def topology_document(
    name: str,
    roles: Mapping[str, str],
    ports: Mapping[str, tuple[int, int, int]],
    *,
    phase_s: float = 0.5,
    protocol: Mapping[str, Any] | None = None,
    funded_accounts: int = 8,
    balance: int = 10**12,
    edges: Sequence[tuple[str, str]] | None = None,
    accounts: Mapping[bytes, int] | None = None,
) -> dict[str, Any]:
    """A one-region topology dict: ``roles`` node -> "validator"/"full", ``ports`` node ->
    (rpc, p2p, metrics); ``protocol`` overrides keys of the protocol section; ``edges`` is the
    peer graph (a full mesh if None); ``accounts`` funds more keys at genesis."""
    phase = f"{round(phase_s * 1000)} ms"
    return {
        "general": {"name": name, "seed": 1, "duration": "10 min"},
        "regions": {"local": {"rtt": {"local": "1 ms"}}},
        "nodes": {
            node: {
                "region": "local",
                "role": role,
                "rpc_port": ports[node][0],
                "p2p_port": ports[node][1],
                "metrics_port": ports[node][2],
            }
            for node, role in roles.items()
        },
        "peers": "full_mesh" if edges is None else [list(edge) for edge in edges],
        "protocol": {"commit": phase, "reveal": phase, "battle": phase, **(protocol or {})},
        "genesis": {
            "funded_accounts": funded_accounts,
            "balance": balance,
            "accounts": {"0x" + key.hex(): value for key, value in (accounts or {}).items()},
        },
    }


def wait_for(
    predicate: Callable[[], Any], timeout_s: float = 30.0, what: str = "", interval_s: float = 0.05
) -> Any:
    """The first truthy value of ``predicate()``, polled every ``interval_s``; AssertionError
    naming ``what`` after ``timeout_s`` (these are test waits)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what or predicate}")


@dataclass
class NodeProcess:
    """One node process started from ``config_path``; output goes to ``log_path``."""

    name: str
    config_path: Path
    log_path: Path
    rpc_port: int
    metrics_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def rpc_url(self) -> str:
        return f"http://{HOST}:{self.rpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise DevnetError(f"node {self.name} is not started")
        return self.process.pid

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            raise DevnetError(f"node {self.name} already runs (pid {self.process.pid})")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bitcell_sim.node",
                    "--config",
                    str(self.config_path),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        """Until ``GET /health`` answers (any status); DevnetError if the process dies."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running():
                raise DevnetError(f"node {self.name} exited: {self.log_tail()}")
            try:
                httpx.get(f"{self.rpc_url}/health", timeout=1.0, trust_env=False)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise DevnetError(f"node {self.name} not ready after {timeout_s} s: {self.log_tail()}")

    def signal(self, signum: int) -> None:
        if self.running():
            assert self.process is not None
            os.kill(self.process.pid, signum)

    def wait_exit(self, timeout_s: float = 10.0) -> int:
        if self.process is None:
            raise DevnetError(f"node {self.name} is not started")
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL (by pid) and reap."""
        if self.running():
            self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


@dataclass
class LocalNet:
    """A network of node processes under ``root`` (topology, configs, data dirs, logs)."""

    root: Path
    roles: Mapping[str, str]
    name: str = "nodetest"
    phase_s: float = 0.5
    protocol: Mapping[str, Any] | None = None
    funded_accounts: int = 8
    genesis_delay_s: float = 2.0
    peers: Mapping[str, Mapping[str, str]] | None = None
    edges: Sequence[tuple[str, str]] | None = None
    #: Keys funded at genesis besides the funded senders (e.g. the golden vector's).
    accounts: Mapping[bytes, int] | None = None
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    genesis_time_s: float = 0.0
    #: Each node's P2P key (its secret is in ``p2p_key_path(node)``).
    p2p_keys: dict[str, KeyPair] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        flat = free_ports(3 * len(self.roles))
        self.ports = {
            node: (flat[3 * i], flat[3 * i + 1], flat[3 * i + 2])
            for i, node in enumerate(self.roles)
        }
        self.topology_path = self.root / "topology.yaml"
        document = topology_document(
            self.name,
            self.roles,
            self.ports,
            phase_s=self.phase_s,
            protocol=self.protocol,
            funded_accounts=self.funded_accounts,
            edges=self.edges,
            accounts=self.accounts,
        )
        self.topology_path.write_text(yaml.safe_dump(document, sort_keys=False))
        self.genesis_time_s = time.time() + self.genesis_delay_s
        for node in self.roles:
            self.p2p_keys[node] = KeyPair.generate()
            write_p2p_key(self.p2p_key_path(node), self.p2p_keys[node])
        for node in self.roles:
            self.write_config(node, self.default_peers(node))
            rpc, _, metrics = self.ports[node]
            self.nodes[node] = NodeProcess(
                node, self.config_path(node), self.root / f"{node}.log", rpc, metrics
            )

    def default_peers(self, node: str) -> dict[str, str]:
        """The peers ``node`` dials: ``peers`` if given, else its neighbours in ``edges``
        (everyone if None), at their P2P ports."""
        if self.peers is not None:
            return dict(self.peers.get(node, {}))
        if self.edges is None:
            others = [other for other in self.roles if other != node]
        else:
            others = [b if a == node else a for a, b in self.edges if node in (a, b)]
        return {other: f"{HOST}:{self.ports[other][1]}" for other in others}

    def config_path(self, node: str) -> Path:
        return self.root / f"{node}.json"

    def data_dir(self, node: str) -> Path:
        return self.root / f"data-{node}"

    def p2p_key_path(self, node: str) -> Path:
        return self.root / f"{node}.p2p-key"

    @property
    def genesis_hash(self) -> bytes:
        """The hash of this network's genesis block (what a peer's Hello must name)."""
        allocations = {
            funded_sender(self.name, i).public_key: 10**12 for i in range(self.funded_accounts)
        }
        allocations.update(self.accounts or {})
        return genesis_block(self.name, int(self.genesis_time_s), allocations).hash()

    def write_config(self, node: str, peers: Mapping[str, str], **extra: Any) -> Path:
        config = {
            "node": node,
            "topology": str(self.topology_path),
            "data_dir": str(self.data_dir(node)),
            "host": HOST,
            "genesis_time_unix_s": self.genesis_time_s,
            "peers": dict(peers),
            "p2p_key_file": str(self.p2p_key_path(node)),
            "p2p_keys": {name: key.public_key.hex() for name, key in self.p2p_keys.items()},
            **extra,
        }
        path = self.config_path(node)
        path.write_text(json.dumps(config, indent=2))
        return path

    def start(self, *names: str) -> None:
        """Start the named nodes (all if none) and wait until each answers /health."""
        chosen = names or tuple(self.nodes)
        for name in chosen:
            self.nodes[name].start()
        for name in chosen:
            self.nodes[name].wait_ready()

    def close(self) -> None:
        for node in self.nodes.values():
            node.kill()

    def __enter__(self) -> LocalNet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
