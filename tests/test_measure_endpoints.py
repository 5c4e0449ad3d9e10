"""The endpoints file: read against a topology with every problem named by its field path, written
as a template by ``deploy export``, and used by the load plan; the watch's pure parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bitcell_sim.errors import DeployError
from bitcell_sim.load.plan import plan_from_options
from bitcell_sim.measure.watch import Arrival, Histogram, SeenBlock
from bitcell_sim.topology import load_topology
from bitcell_sim.topology.endpoints import endpoints_document, load_endpoints, parse_endpoints
from tests.test_load_summary import locust_options


def urls(topology_path: Path) -> dict[str, dict[str, str]]:
    topology = load_topology(topology_path)
    return {
        n: {"rpc": f"http://{n}.example:8545/", "metrics": f"http://{n}.example:9100/metrics"}
        for n in topology.node_names
    }


def test_a_good_file_reads_in_topology_order_yaml_or_json(tmp_path: Path, rc3_path: Path) -> None:
    topology = load_topology(rc3_path)
    nodes = dict(reversed(list(urls(rc3_path).items())))
    (tmp_path / "e.json").write_text(json.dumps({"nodes": nodes, "genesis_time_unix_s": 1e9}))
    endpoints = load_endpoints(tmp_path / "e.json", topology)
    assert tuple(endpoints.nodes) == topology.node_names
    assert endpoints.genesis_time_unix_s == 1e9
    first = topology.node_names[0]
    assert endpoints.nodes[first].metrics_url == f"http://{first}.example:9100/metrics"
    # metrics may be left out (RPC answers stand in); the template reads back as written.
    nodes[first] = {"rpc": "https://10.0.0.1:8545"}
    assert parse_endpoints({"nodes": nodes}, topology).nodes[first].metrics_url is None
    text = endpoints_document(
        topology, {n: (u["rpc"], u["metrics"]) for n, u in urls(rc3_path).items()}, 1e9
    )
    (tmp_path / "t.yaml").write_text(text)
    assert (
        load_endpoints(tmp_path / "t.yaml", topology).nodes
        == load_endpoints(tmp_path / "e.json", topology).nodes
    )


def test_every_problem_is_named_by_its_field_path(tmp_path: Path, rc3_path: Path) -> None:
    topology = load_topology(rc3_path)
    nodes: dict[str, object] = dict(urls(rc3_path))
    first, second, third, fourth = topology.node_names[:4]
    nodes["nobody"] = {"rpc": "http://x:1"}
    del nodes[first]
    nodes[second] = {"rpc": "ftp://x/", "metrics": "http://x:99999/metrics", "extra": 1}
    nodes[third] = "http://x:1"
    nodes[fourth] = {"metrics": None}
    data = {"nodes": nodes, "genesis_time_unix_s": "soon", "hosts": []}
    with pytest.raises(DeployError) as caught:
        parse_endpoints(data, topology, "e.yaml")
    message = str(caught.value)
    for expected in (
        "invalid endpoints file e.yaml:",
        "hosts: unknown key",
        "genesis_time_unix_s: must be Unix seconds > 0, not 'soon'",
        "nodes.nobody: not a node of topology 'rc3'",
        f"nodes.{first}: missing",
        f"nodes.{second}.rpc: 'ftp://x/' is not an http:// or https:// URL",
        f"nodes.{second}.metrics: 'http://x:99999/metrics' has a bad port",
        f"nodes.{second}.extra: unknown key",
        f"nodes.{third}: must be a mapping",
        f"nodes.{fourth}.rpc: missing",
    ):
        assert expected in message, (expected, message)
    with pytest.raises(DeployError, match="expected a mapping with a 'nodes' key"):
        parse_endpoints(["a"], topology)
    with pytest.raises(DeployError, match="no such file"):
        load_endpoints(tmp_path / "missing.yaml", topology)
    (tmp_path / "bad.yaml").write_text("nodes: [unclosed")
    with pytest.raises(DeployError, match="not valid YAML/JSON"):
        load_endpoints(tmp_path / "bad.yaml", topology)


def test_the_load_plan_sends_to_the_files_rpc_urls(tmp_path: Path, rc3_fast_path: Path) -> None:
    nodes = urls(rc3_fast_path)
    (tmp_path / "e.yaml").write_text(yaml.safe_dump({"nodes": nodes}))
    options = locust_options(topology=str(rc3_fast_path), endpoints=str(tmp_path / "e.yaml"))
    plan, _ = plan_from_options(options, None)
    assert {e.node: e.url for e in plan.endpoints} == {
        n: u["rpc"].rstrip("/") for n, u in nodes.items()
    }
    assert not plan.is_host


def test_arrival_brackets_blocks_and_histogram_deltas() -> None:
    arrival = Arrival("ab", "n", earliest_unix_s=10.0, latest_unix_s=10.3)
    assert arrival.estimate_unix_s == pytest.approx(10.15)
    assert arrival.half_width_s == pytest.approx(0.15)
    block = SeenBlock.of_rpc(
        {"hash": "0xAB", "number": "0x2", "parentHash": "0x01", "miner": "0x02ff",
         "timestamp": "0x10", "size": "0xc8", "transactions": ["0x0a", "0x0b"]}
    )  # fmt: skip
    assert (block.block_hash, block.height, block.timestamp, block.tx_ids) == (
        "ab",
        2,
        16,
        ("0a", "0b"),
    )
    with pytest.raises(DeployError, match="not a block object"):
        SeenBlock.of_rpc({"hash": "ab"})
    histogram = Histogram()
    assert histogram.delta() is None
    name = "bitcell_block_propagation_seconds"
    histogram.add({f"{name}_count": 4.0, f"{name}_sum": 1.0})
    histogram.add({f"{name}_count": 6.0, f"{name}_sum": 1.5})
    assert histogram.delta() == {"blocks": 2.0, "mean_s": 0.25}
