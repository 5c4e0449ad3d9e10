"""HAProxy's check of nodes without ``/health`` (the real BitCell node): a JSON-RPC call.

A real node process answers ``eth_blockNumber`` on ``POST /rpc``; a real HTTP server that is no
RPC node (Python's ``http.server``, 501 to a POST) stands for a node that is up but not
serving. Real HAProxy, with the configuration a ``--program bitcell`` export writes, must mark
the first UP and the second DOWN, and pass a front-door request to the first. Every process is
stopped by its pid.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from bitcell_sim.loopback import free_ports
from bitcell_sim.monitoring.configs import Addresses, haproxy_config
from bitcell_sim.monitoring.tools import find_binary
from bitcell_sim.node.harness import HOST, LocalNet
from bitcell_sim.topology import parse_topology

pytestmark = [pytest.mark.real, pytest.mark.timeout(120)]


@pytest.fixture
def net(tmp_path: Path) -> Iterator[LocalNet]:
    local = LocalNet(tmp_path / "net", {"v": "validator"}, name="rpccheck")
    try:
        local.start()
        yield local
    finally:
        local.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _servers(stats_port: int) -> dict[str, str]:
    response = httpx.get(f"http://{HOST}:{stats_port}/;csv;norefresh", trust_env=False)
    rows = csv.DictReader(io.StringIO(response.text.lstrip("# ")))
    return {r["svname"]: r["status"] for r in rows if r["pxname"] == "rpc"}


def test_json_rpc_check_marks_a_serving_node_up_and_a_silent_one_down(
    net: LocalNet, tmp_path: Path
) -> None:
    silent_rpc, silent_p2p, silent_metrics, front, stats = free_ports(5)
    document = yaml.safe_load(net.topology_path.read_text())
    document["nodes"]["silent"] = {
        "region": "local",
        "role": "full",
        "rpc_port": silent_rpc,
        "p2p_port": silent_p2p,
        "metrics_port": silent_metrics,
    }
    document["monitoring"] = {
        "haproxy_port": front,
        "haproxy_stats_port": stats,
        "health_check": {"inter": "200 ms", "fall": 2, "rise": 1},
    }
    topology = parse_topology(yaml.safe_dump(document))
    config = haproxy_config(topology, Addresses(HOST, HOST, nodes_serve_health=False))
    assert "/health" not in config
    (tmp_path / "haproxy.cfg").write_text(config)
    silent = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(silent_rpc), "--bind", HOST],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    haproxy = subprocess.Popen(
        [find_binary("haproxy"), "-f", str(tmp_path / "haproxy.cfg"), "-db"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, servers = time.monotonic() + 30, {}
        while time.monotonic() < deadline:
            try:
                servers = _servers(stats)
            except httpx.HTTPError:
                servers = {}
            if servers.get("v") == "UP" and servers.get("silent", "").startswith("DOWN"):
                break
            time.sleep(0.2)
        assert servers.get("v") == "UP", servers
        assert servers.get("silent", "").startswith("DOWN"), servers
        body = {"jsonrpc": "2.0", "method": "eth_blockNumber", "params": [], "id": 7}
        answer = httpx.post(f"http://{HOST}:{front}/rpc", json=body, trust_env=False).json()
        assert answer["id"] == 7 and answer["result"].startswith("0x")
    finally:
        _stop(haproxy)
        _stop(silent)
