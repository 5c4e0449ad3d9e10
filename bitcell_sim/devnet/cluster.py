"""A devnet as found through its state folder: endpoints, processes, readiness and teardown.

``Devnet.open(state_dir)`` reads what ``devnet up`` wrote; the object names every node's
endpoints (``NodeEndpoint``), starts and kills node processes (``start_node``, ``kill_node``),
reads ``/health`` (``health``), waits for readiness (``wait_ready``) and stops everything it
started (``stop_all``). ``down(state_dir)`` is the idempotent teardown behind ``devnet down``.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx

from bitcell_sim.devnet.plan import DevnetPlan, node_peers, plan_devnet
from bitcell_sim.devnet.processes import (
    ProcessRecord,
    is_running,
    signal_process,
    spawn,
    stop_processes,
    tail_lines,
    wait_gone,
)
from bitcell_sim.devnet.state import EMULATOR, SAMPLER, DevnetMeta, StateDir, write_json
from bitcell_sim.errors import DevnetError
from bitcell_sim.netem import NetemClient
from bitcell_sim.topology import Topology, load_topology

# Process names other than nodes' in pids/ and logs/ (a node may not be called like these).
THROTTLE_PREFIX = "throttle-"
CHAOS = "chaos"
#: The monitoring stack's processes (bitcell_sim.devnet.monitor), stopped before the nodes so
#: that tearing the devnet down pages nobody.
MONITORING_NAMES = ("webhook", "alertmanager", "prometheus", "haproxy")
LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class NodeEndpoint:
    """Where one node answers: its JSON-RPC base URL, metrics URL and health URL."""

    name: str
    region: str
    role: str
    rpc_url: str
    metrics_url: str
    health_url: str
    degree: int


@dataclass(frozen=True)
class Health:
    """One ``GET /health`` answer (``status_code`` None: no answer at all); ``status`` is the
    node's word for it (ok, starting, syncing, isolated)."""

    status_code: int | None
    chain_height: int | None = None
    peer_count: int | None = None
    error: str = ""
    status: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code == 200


@dataclass(frozen=True)
class ReadyProgress:
    """How far start-up is: ``ready`` of ``total`` nodes healthy and peered."""

    ready: int
    total: int
    waiting_for: tuple[str, ...]


class Devnet:
    """A devnet described by its state folder (running or not)."""

    def __init__(self, state: StateDir, topology: Topology, meta: DevnetMeta) -> None:
        self.state = state
        self.topology = topology
        self.meta = meta

    @classmethod
    def open(cls, state_dir: str | Path) -> Devnet:
        """The devnet whose state folder is ``state_dir``; DevnetError if there is none."""
        state = StateDir(state_dir)
        meta = state.read_meta()
        return cls(state, load_topology(state.topology_path), meta)

    # ---- what it is ---------------------------------------------------------------------------
    @cached_property
    def plan(self) -> DevnetPlan:
        return plan_devnet(self.topology, self.meta.host)

    @cached_property
    def endpoints(self) -> dict[str, NodeEndpoint]:
        host = self.meta.host
        out = {}
        for name, node in self.topology.nodes.items():
            out[name] = NodeEndpoint(
                name=name,
                region=node.region,
                role=node.role,
                rpc_url=f"http://{host}:{node.rpc_port}",
                metrics_url=f"http://{host}:{node.metrics_port}/metrics",
                health_url=f"http://{host}:{node.rpc_port}/health",
                degree=len(self.topology.peer_map[name]),
            )
        return out

    @property
    def node_names(self) -> tuple[str, ...]:
        return self.topology.node_names

    def check_node(self, node: str) -> str:
        if node not in self.topology.nodes:
            raise DevnetError(
                f"unknown node {node!r} (nodes: {', '.join(self.topology.node_names)})"
            )
        return node

    def netem(self, timeout_s: float = 5.0) -> NetemClient:
        """A client of the emulator's control API (the token stays in the state folder)."""
        return NetemClient(self.meta.control_url, self.state.read_token(), timeout_s=timeout_s)

    def node_argv(self, node: str) -> list[str]:
        return [*self.meta.node_command, "--config", str(self.state.node_config_path(node))]

    # ---- processes ----------------------------------------------------------------------------
    def record(self, name: str) -> ProcessRecord | None:
        return self.state.load_record(name)

    def is_running(self, name: str) -> bool:
        record = self.record(name)
        return record is not None and is_running(record)

    def running(self) -> dict[str, ProcessRecord]:
        """Every recorded process that still runs (verified by start time), by name."""
        return {n: r for n, r in self.state.records().items() if is_running(r)}

    def write_node_config(self, node: str) -> Path:
        config = {
            "node": node,
            "topology": str(self.state.topology_path),
            "data_dir": str(self.state.node_data_dir(node)),
            "host": self.meta.host,
            "genesis_time_unix_s": self.meta.genesis_time_unix_s,
            "peers": node_peers(self.plan, node),
            "p2p_key_file": str(self.state.p2p_key_path(node)),
            "p2p_keys": self.state.read_p2p_keys(),
        }
        self.state.node_data_dir(node).mkdir(parents=True, exist_ok=True)
        path = self.state.node_config_path(node)
        write_json(path, config)
        return path

    def start_node(self, node: str) -> ProcessRecord:
        """Start ``node`` with its node.json and data dir (DevnetError if it already runs)."""
        self.check_node(node)
        with self.state.lock():
            current = self.record(node)
            if current is not None and is_running(current):
                raise DevnetError(f"node {node} is already running (pid {current.pid})")
            record = spawn(node, self.node_argv(node), self.state.log_path(node))
            self.state.save_record(record)
            return record

    def kill_node(self, node: str, signum: int = signal.SIGKILL, timeout_s: float = 10.0) -> bool:
        """Signal ``node``'s process and wait until it is gone; False if it was not running."""
        self.check_node(node)
        with self.state.lock():
            record = self.record(node)
            if record is None or not signal_process(record, signum):
                return False
            if wait_gone([record], timeout_s):
                raise DevnetError(f"node {node} (pid {record.pid}) survived signal {signum}")
            return True

    def health(self, node: str, timeout_s: float = 2.0) -> Health:
        """``GET /health`` of ``node`` (never raises: a failure is a Health with an error)."""
        url = self.endpoints[node].health_url
        try:
            response = httpx.get(url, timeout=timeout_s, trust_env=False)
        except httpx.HTTPError as exc:
            return Health(None, error=f"{type(exc).__name__}: {exc}")
        try:
            body: Any = response.json()
        except (ValueError, json.JSONDecodeError):
            body = None
        if not isinstance(body, dict):
            return Health(response.status_code, error=f"unexpected body {response.text[:80]!r}")
        height, peers, word = body.get("chain_height"), body.get("peer_count"), body.get("status")
        return Health(
            response.status_code,
            chain_height=height if isinstance(height, int) else None,
            peer_count=peers if isinstance(peers, int) else None,
            status=word if isinstance(word, str) else None,
        )

    def is_ready(self, node: str, require_peers: bool = True) -> bool:
        health = self.health(node)
        if not health.ok:
            return False
        return not require_peers or (health.peer_count or 0) >= self.endpoints[node].degree

    def describe_failure(self, name: str, what: str) -> str:
        """``what`` with the log path and its last lines, for an error message."""
        log_path = self.state.log_path(name)
        lines = tail_lines(log_path, LOG_TAIL_LINES)
        tail = "\n".join(f"    {line}" for line in lines) if lines else "    (log is empty)"
        return f"{what}; log: {log_path}\n  last lines:\n{tail}"

    def wait_ready(
        self,
        nodes: Iterable[str] | None = None,
        *,
        timeout_s: float = 60.0,
        require_peers: bool = True,
        on_progress: Callable[[ReadyProgress], None] | None = None,
        poll_s: float = 0.2,
    ) -> float:
        """Wait until every node answers /health 200 (and, if ``require_peers``, has as many
        peers as its degree); return the seconds waited. DevnetError names a node that died or
        is still not ready at the deadline, with its log's last lines."""
        waiting = list(self.node_names if nodes is None else nodes)
        total = len(waiting)
        start = time.monotonic()
        deadline = start + timeout_s
        while True:
            for node in list(waiting):
                record = self.record(node)
                if record is None or not is_running(record):
                    raise DevnetError(self.describe_failure(node, f"node {node} is not running"))
                if self.is_ready(node, require_peers):
                    waiting.remove(node)
            if on_progress is not None:
                on_progress(ReadyProgress(total - len(waiting), total, tuple(waiting)))
            if not waiting:
                return time.monotonic() - start
            if time.monotonic() >= deadline:
                node = waiting[0]
                health = self.health(node)
                seen = (
                    f"HTTP {health.status_code}, peers {health.peer_count} of "
                    f"{self.endpoints[node].degree}"
                    if health.status_code is not None
                    else health.error
                )
                others = f" (also not ready: {', '.join(waiting[1:])})" if waiting[1:] else ""
                raise DevnetError(
                    self.describe_failure(
                        node,
                        f"node {node} not ready after {timeout_s:g} s (last /health: {seen})"
                        + others,
                    )
                )
            time.sleep(poll_s)

    def stop_all(self, grace_s: float = 5.0) -> list[str]:
        """Stop every recorded process (sampler and controllers, then nodes, then the emulator)
        and remove the pid files; return the names of those that were running."""
        with self.state.lock():
            return stop_recorded(self.state, grace_s)


def _stop_order(name: str) -> int:
    # The sampler goes first, so a stopping devnet does not show up as nodes going down.
    if name in (CHAOS, SAMPLER):
        return 0
    if name.startswith(THROTTLE_PREFIX) or name in MONITORING_NAMES:
        return 1
    if name == EMULATOR:
        return 3
    return 2


def stop_recorded(state: StateDir, grace_s: float = 5.0) -> list[str]:
    """Stop every process with a pid file in ``state`` (verified by start time), in order, and
    remove the pid files. Dead or reused pids are only forgotten, never signalled."""
    records = sorted(state.records().values(), key=lambda r: (_stop_order(r.name), r.name))
    stopped: list[str] = []
    for order in sorted({_stop_order(r.name) for r in records}):
        group = [r for r in records if _stop_order(r.name) == order]
        stopped += [r.name for r in stop_processes(group, grace_s)]
    for record in records:
        state.remove_record(record.name)
    return stopped


@dataclass(frozen=True)
class DownResult:
    """What ``down`` did: the processes it stopped, and whether the folder was deleted."""

    state_dir: Path
    stopped: tuple[str, ...]
    found: bool
    purged: bool


def down(state_dir: str | Path, *, grace_s: float = 5.0, purge: bool = False) -> DownResult:
    """Stop every process the devnet in ``state_dir`` started; with ``purge`` delete the folder.

    Idempotent: with nothing running (or no folder at all) it stops nothing and succeeds.
    """
    state = StateDir(state_dir)
    if not state.root.exists():
        return DownResult(state.root, (), found=False, purged=False)
    if not state.exists() and any(state.root.iterdir()) and not state.pids_dir.is_dir():
        raise DevnetError(f"{state.root} is not a devnet state folder (no devnet.json, no pids/)")
    with state.lock():
        stopped = stop_recorded(state, grace_s)
    found = state.exists()
    if purge:
        shutil.rmtree(state.root)
    return DownResult(state.root, tuple(stopped), found=found, purged=purge)


def reserved_name_problems(names: Sequence[str]) -> list[str]:
    """Node names that would collide with the devnet's own process names."""
    reserved = (EMULATOR, CHAOS, SAMPLER, *MONITORING_NAMES)
    return [n for n in names if n in reserved or n.startswith(THROTTLE_PREFIX) or "/" in n]
