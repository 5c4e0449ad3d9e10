"""The rendered monitoring files: checked by the real tools (promtool, amtool, haproxy -c) for
every shipped topology, loopback only, queries only of exported metrics, the topology's
``monitoring`` section validated, and ``bitcell-sim monitoring render`` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bitcell_sim.errors import MonitoringError, TopologyError
from bitcell_sim.monitoring import (
    alert_rules,
    alertmanager_config,
    check_monitoring,
    haproxy_config,
    metric_names,
    prometheus_config,
    render_monitoring,
)
from bitcell_sim.monitoring import tools as monitoring_tools
from bitcell_sim.monitoring.alerts import cross_region_thresholds, low_peer_thresholds
from bitcell_sim.monitoring.dashboard import dashboard_problems, unknown_metrics
from bitcell_sim.topology import load_topology, parse_topology

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = sorted((ROOT / "topologies").glob("*.yaml"))

LINE = """
general: {name: line}
regions:
  a: {rtt: {a: 2 ms, b: 80 ms}}
  b: {rtt: {b: 2 ms}}
nodes:
  n1: {region: a}
  n2: {region: a}
  n3: {region: b}
peers: [[n1, n2], [n2, n3]]
"""


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_shipped_topologies_pass_the_real_checkers(path: Path, tmp_path: Path) -> None:
    files = render_monitoring(load_topology(path), tmp_path)
    checks = check_monitoring(files)
    assert [c.argv[1:3] for c in checks][:2] == [("check", "config"), ("check", "rules")]
    assert all(c.ok for c in checks)
    assert "SUCCESS: 15 rules found" in checks[1].output


def test_a_broken_file_is_refused_by_the_tools(tmp_path: Path) -> None:
    files = render_monitoring(load_topology(ROOT / "topologies/rc3.yaml"), tmp_path)
    files.haproxy.write_text(files.haproxy.read_text().replace("balance roundrobin", "balance x"))
    files.rules.write_text(files.rules.read_text().replace("== 0", "=== 0", 1))
    with pytest.raises(MonitoringError) as caught:
        check_monitoring(files)
    message = str(caught.value)
    assert "haproxy -c -f" in message
    assert "promtool check rules" in message


def test_everything_stays_on_loopback() -> None:
    topology = load_topology(ROOT / "topologies/rc3.yaml")
    config = prometheus_config(topology)
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    targets += config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets and all(t.startswith("127.0.0.1:") for t in targets)
    assert "remote_write" not in config
    receivers = alertmanager_config(topology)["receivers"]
    urls = [hook["url"] for r in receivers for hook in r["webhook_configs"]]
    assert all(u.startswith("http://127.0.0.1:9194/") for u in urls)
    lines = [line.split() for line in haproxy_config(topology).splitlines()]
    binds = [words[1] for words in lines if words[:1] == ["bind"]]
    servers = [words[2] for words in lines if words[:1] == ["server"]]
    assert len(binds) == 2 and len(servers) == 2 * len(topology.nodes)
    assert all(address.startswith("127.0.0.1:") for address in binds + servers)


def test_a_host_off_loopback_is_refused(tmp_path: Path) -> None:
    for host in ("10.0.0.5", "example.org"):
        topology = parse_topology(LINE + f"devnet: {{host: {host}}}\n")
        with pytest.raises(MonitoringError, match="not a loopback address"):
            render_monitoring(topology, tmp_path)
    render_monitoring(parse_topology(LINE + "devnet: {host: 127.0.0.2}\n"), tmp_path)


def test_nodes_are_scraped_with_region_node_and_role() -> None:
    topology = load_topology(ROOT / "topologies/rc3.yaml")
    job = next(
        j for j in prometheus_config(topology)["scrape_configs"] if j["job_name"] == "bitcell"
    )
    by_node = {s["labels"]["node"]: s for s in job["static_configs"]}
    assert set(by_node) == set(topology.node_names)
    assert by_node["eu-central-2"] == {
        "targets": ["127.0.0.1:9095"],
        "labels": {"region": "eu-central", "node": "eu-central-2", "role": "validator"},
    }
    relabel = {r["regex"]: r["replacement"] for r in job["metric_relabel_configs"]}
    assert relabel["bitcell_peer_rtt_.+;ap\\-southeast\\-1"] == "ap-southeast"


def test_queries_use_only_exported_metrics(tmp_path: Path) -> None:
    topology = load_topology(ROOT / "topologies/rc3.yaml")
    assert unknown_metrics(r.expr for r in alert_rules(topology)) == set()
    files = render_monitoring(topology, tmp_path)
    board = json.loads(files.dashboard.read_text())
    assert dashboard_problems(board) == []
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    assert unknown_metrics(exprs) == set()
    # The checker itself: the seed's panel on a metric that does not exist is caught.
    board["panels"][0]["targets"][0]["expr"] = "bitcell_proof_gen_time_ms / 1000"
    assert "bitcell_proof_gen_time_ms" in dashboard_problems(board)[0]


def test_metric_names_skips_functions_labels_and_keywords() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, region) (rate(x_bucket{a="up"}[5m]))) > 1 '
        "and on (node) y offset 5m or vector(1)"
    )
    assert metric_names(expr) == {"x_bucket", "y"}


def test_rules_follow_the_peer_graph() -> None:
    topology = parse_topology(LINE)
    # n1 and n3 have one peer each: one peer is all they can have.
    assert low_peer_thresholds(topology) == {1: ["n1", "n3"], 2: ["n2"]}
    assert cross_region_thresholds(topology) == {("a", "b"): 0.13, ("b", "a"): 0.13}
    rules = {r.name: r for r in alert_rules(topology)}
    assert rules["LowPeerCount"].expr == (
        '(bitcell_peer_count{job="bitcell",node=~`n1|n3`} < 1) or '
        '(bitcell_peer_count{job="bitcell",node=~`n2`} < 2)'
    )
    single = parse_topology("regions: {a: {rtt: {a: 1 ms}}}\nnodes: {n: {region: a}}\n")
    names = [r.name for r in alert_rules(single)]
    assert "NoPeers" not in names and "HighCrossRegionLatency" not in names


def test_haproxy_front_door_and_regional_backends() -> None:
    text = haproxy_config(
        parse_topology(LINE + "monitoring: {health_check: {inter: 500 ms, fall: 2, rise: 4}}\n")
    )
    assert "option httpchk GET /health" in text
    assert "http-check expect status 200" in text
    assert "default-server inter 500ms fall 2 rise 4" in text
    assert "use_backend rpc_a if { path_beg /region/a/ }" in text
    backend_b = text.split("backend rpc_b\n")[1]
    assert "server n3 127.0.0.1:20002 check" in backend_b
    assert "n1" not in backend_b


def test_topology_monitoring_section_is_validated() -> None:
    with pytest.raises(TopologyError) as caught:
        parse_topology(
            LINE
            + "monitoring:\n"
            + "  alert_for: {RegionDown: 5 min, NodeUp: 1 s}\n"
            + "  haproxy_port: 20000\n"
        )
    problems = {path.split(" (line")[0]: message for path, message in caught.value.problems}
    assert "pages before RegionDown exists" in problems["monitoring.alert_for.RegionDown"]
    assert problems["monitoring.alert_for.NodeUp"].startswith("unknown alert")
    assert "nodes.n1.rpc_port" in problems["monitoring.haproxy_port"]
    with pytest.raises(TopologyError, match="scrape_interval"):
        parse_topology(LINE + "monitoring: {scrape_interval: 0 s}\n")


def test_a_missing_binary_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(monitoring_tools, "EXTRA_DIRS", ())
    with pytest.raises(MonitoringError, match="apt-get install prometheus-alertmanager"):
        monitoring_tools.find_binary("amtool")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bitcell_sim", "monitoring", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_cli_render_writes_and_checks(tmp_path: Path) -> None:
    done = cli("render", str(ROOT / "topologies/rc3-fast.yaml"), str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("ok ") == 4
    assert "15 alert rules" in done.stdout
    rules = yaml.safe_load((tmp_path / "out" / "alerts.yml").read_text())
    assert sum(len(g["rules"]) for g in rules["groups"]) == 15


def test_cli_render_bad_topology_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(LINE + "monitoring: {alert_for: {NodeDown: soon}}\n")
    done = cli("render", str(bad), str(tmp_path / "out"))
    assert done.returncode == 1
    assert "monitoring.alert_for.NodeDown" in done.stderr
    assert "Traceback" not in done.stderr
