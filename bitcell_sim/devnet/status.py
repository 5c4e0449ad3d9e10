"""A snapshot of a devnet: each node's process, chain and pool, and the emulator's live faults.

``devnet_status(devnet)`` returns a ``DevnetStatus``: one ``NodeStatus`` per node (up/down from
the verified pid, its /health word, height, tip hash, peers, round phase, pool size, sync % from
/metrics) and the emulator's ``LinkFault`` list (links whose parameters differ from the links
file). Failures to reach a node are recorded in its ``error`` field; this module never raises
for a down node.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from bitcell_sim.devnet.cluster import Devnet
from bitcell_sim.devnet.processes import is_running
from bitcell_sim.devnet.state import EMULATOR
from bitcell_sim.errors import BitcellSimError
from bitcell_sim.protocol.metrics import parse_prometheus
from bitcell_sim.protocol.rpc_client import RpcClient


@dataclass(frozen=True)
class NodeStatus:
    """One node now; fields are None where the node did not answer."""

    name: str
    region: str
    role: str
    rpc_url: str
    metrics_url: str
    up: bool
    pid: int | None
    health: str | None = None
    height: int | None = None
    tip_hash: str | None = None
    peers: int | None = None
    phase: str | None = None
    pool_size: int | None = None
    sync_pct: float | None = None
    error: str = ""


@dataclass(frozen=True)
class LinkFault:
    """A link whose live parameters differ from the links file."""

    link: str
    partitioned: bool
    extra_latency_s: float
    bandwidth_bps: float | None
    configured_bandwidth_bps: float | None


@dataclass(frozen=True)
class DevnetStatus:
    name: str
    genesis_time_unix_s: float
    emulator_up: bool
    nodes: tuple[NodeStatus, ...]
    link_faults: tuple[LinkFault, ...]
    emulator_error: str = ""

    @property
    def tips(self) -> dict[str, tuple[int | None, str | None]]:
        return {n.name: (n.height, n.tip_hash) for n in self.nodes}


def node_status(devnet: Devnet, node: str, timeout_s: float = 2.0) -> NodeStatus:
    endpoint = devnet.endpoints[node]
    record = devnet.record(node)
    up = record is not None and is_running(record)
    base = {
        "name": node,
        "region": endpoint.region,
        "role": endpoint.role,
        "rpc_url": endpoint.rpc_url,
        "metrics_url": endpoint.metrics_url,
        "up": up,
        "pid": record.pid if up and record is not None else None,
    }
    if not up:
        return NodeStatus(**base)  # type: ignore[arg-type]
    try:
        with RpcClient(endpoint.rpc_url, timeout_s=timeout_s) as rpc:
            block = rpc.get_block_by_number("latest")
            peers = rpc.get_peer_count()
            tournament = rpc.get_tournament_state()
            pending = rpc.get_pending_block_info()
        health = devnet.health(node, timeout_s).status
        sync_pct = None
        try:
            response = httpx.get(endpoint.metrics_url, timeout=timeout_s, trust_env=False)
            sync_pct = parse_prometheus(response.text).get("bitcell_sync_progress")
        except (httpx.HTTPError, BitcellSimError, ValueError):
            pass
        height = int(block["number"], 16) if block else None
        return NodeStatus(
            **base,  # type: ignore[arg-type]
            health=health,
            height=height,
            tip_hash=str(block["hash"]) if block else None,
            peers=peers,
            phase=str(tournament.get("phase")),
            pool_size=int(pending.get("pendingTransactions", 0)),
            sync_pct=sync_pct,
        )
    except (BitcellSimError, KeyError, ValueError, TypeError) as exc:
        return NodeStatus(**base, error=str(exc))  # type: ignore[arg-type]


def devnet_status(devnet: Devnet, timeout_s: float = 2.0) -> DevnetStatus:
    nodes = tuple(node_status(devnet, node, timeout_s) for node in devnet.node_names)
    emulator_up = devnet.is_running(EMULATOR)
    faults: list[LinkFault] = []
    error = ""
    if emulator_up:
        try:
            with devnet.netem(timeout_s) as client:
                for link in client.links():
                    c, cur = link.configured, link.current
                    if (
                        cur.partitioned
                        or cur.extra_latency_s > 0
                        or cur.bandwidth_bps != c.bandwidth_bps
                    ):
                        faults.append(
                            LinkFault(
                                link.name,
                                cur.partitioned,
                                cur.extra_latency_s,
                                cur.bandwidth_bps,
                                c.bandwidth_bps,
                            )
                        )
        except BitcellSimError as exc:
            error = str(exc)
    return DevnetStatus(
        name=devnet.meta.name,
        genesis_time_unix_s=devnet.meta.genesis_time_unix_s,
        emulator_up=emulator_up,
        nodes=nodes,
        link_faults=tuple(faults),
        emulator_error=error,
    )
