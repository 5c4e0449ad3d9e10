"""``promtool test rules`` for every generated alert of rc3: it fires when it should, with the
labels and annotations it should carry, and stays quiet (``exp_alerts: []``) when it should.

One promtool test group per alert (series at the 15 s scrape interval of rc3, the rule file as
rendered); a Python check makes sure no generated alert is left without a test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bitcell_sim.monitoring import alert_rules, render_monitoring
from bitcell_sim.monitoring.tools import promtool_test
from bitcell_sim.topology import Topology, load_topology

ROOT = Path(__file__).resolve().parent.parent


def node_labels(node: str, region: str, metrics_port: int) -> dict[str, str]:
    return {
        "job": "bitcell",
        "instance": f"127.0.0.1:{metrics_port}",
        "node": node,
        "region": region,
        "role": "validator",
    }


def selector(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


class Cases:
    """The promtool tests, written against rc3's nodes and the rules' labels."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.rules = {r.name: r for r in alert_rules(topology)}
        self.tests: list[dict[str, Any]] = []
        self.covered: set[str] = set()

    def node(self, name: str) -> dict[str, str]:
        spec = self.topology.nodes[name]
        return node_labels(name, spec.region, spec.metrics_port)

    def all_up(self, values: dict[str, str] | None = None, default: str = "1x80") -> list[dict]:
        values = values or {}
        return [
            {"series": selector("up", self.node(n)), "values": values.get(n, default)}
            for n in self.topology.node_names
        ]

    def alert(
        self, name: str, labels: dict[str, str], summary: str, description: str
    ) -> dict[str, Any]:
        return {
            "exp_labels": {**labels, **self.rules[name].labels},
            "exp_annotations": {"summary": summary, "description": description},
        }

    def add(self, name: str, series: list[dict], checks: list[tuple[str, list[dict]]]) -> None:
        """A test group for alert ``name``: (eval_time, expected alerts) pairs."""
        fired = any(expected for _, expected in checks)
        quiet = any(not expected for _, expected in checks)
        assert fired and quiet, f"{name}: every alert needs a firing and a quiet check"
        self.covered.add(name)
        self.tests.append(
            {
                "name": name,
                "interval": "15s",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": at, "alertname": name, "exp_alerts": expected}
                    for at, expected in checks
                ],
            }
        )

    def quiet(self, name: str, series: list[dict], at: str) -> None:
        """A test group where alert ``name`` must not fire at ``at``."""
        self.tests.append(
            {
                "name": f"{name} stays quiet",
                "interval": "15s",
                "input_series": series,
                "alert_rule_test": [{"eval_time": at, "alertname": name, "exp_alerts": []}],
            }
        )


def build_cases(topology: Topology) -> Cases:
    c = Cases(topology)
    ue1, ue2 = c.node("us-east-1"), c.node("us-east-2")
    region = {"region": "us-east"}

    # Down from 120 s (the 9th sample), back at 360 s: pending at 180 s, fires at 240 s (2 min).
    node_down = c.alert(
        "NodeDown", ue1, "Node us-east-1 is down", "Prometheus cannot scrape us-east-1 (us-east)."
    )
    c.add(
        "NodeDown",
        c.all_up({"us-east-1": "1x7 0x15 1x20"}),
        [("3m", []), ("4m", [node_down]), ("5m45s", [node_down]), ("6m30s", [])],
    )

    # Three of seven down (43 % > 30 %) from the start; two (29 %) never fire.
    rate = c.alert(
        "HighNodeDownRate",
        {},
        "More than 30% of the nodes are down",
        "42.86% of the nodes cannot be scraped.",
    )
    c.add(
        "HighNodeDownRate",
        c.all_up({n: "0x80" for n in ("us-east-1", "us-east-2", "us-west-1")}),
        [("4m", []), ("6m", [rate])],
    )
    c.quiet("HighNodeDownRate", c.all_up({n: "0x80" for n in ("us-east-1", "us-east-2")}), "10m")

    # A gauge that stops at 300 s: no change within 150 s from 450 s, fires 10 min later.
    stalled = c.alert(
        "ChainNotProgressing",
        ue1,
        "Chain not progressing on us-east-1",
        "The chain height of us-east-1 has not changed for 150s.",
    )
    c.add(
        "ChainNotProgressing",
        [
            {"series": selector("bitcell_chain_height", ue1), "values": "0+1x20 20x80"},
            {"series": selector("bitcell_chain_height", ue2), "values": "0+1x100"},
        ],
        [("17m", []), ("18m", [stalled])],
    )

    behind = c.alert(
        "NodeOutOfSync",
        ue1,
        "Node us-east-1 is out of sync",
        "us-east-1 holds 80.0 % of the best height.",
    )
    c.add(
        "NodeOutOfSync",
        [
            {"series": selector("bitcell_sync_progress", ue1), "values": "100x10 80x200"},
            {"series": selector("bitcell_sync_progress", ue2), "values": "95x210"},
        ],
        [("32m", []), ("33m", [behind])],
    )

    peers = [
        {"series": selector("bitcell_peer_count", ue1), "values": "6x10 1x40"},
        {"series": selector("bitcell_peer_count", ue2), "values": "6x10 2x40"},
    ]
    low = c.alert(
        "LowPeerCount", ue1, "Node us-east-1 has few peers", "us-east-1 is connected to 1 peer(s)."
    )
    c.add("LowPeerCount", peers, [("7m", []), ("8m", [low])])

    alone = c.alert(
        "NoPeers", ue1, "Node us-east-1 has no peers", "us-east-1 is connected to no peer."
    )
    c.add(
        "NoPeers",
        [
            {"series": selector("bitcell_peer_count", ue1), "values": "6x10 0x40"},
            {"series": selector("bitcell_peer_count", ue2), "values": "6x10 1x40"},
        ],
        [("4m", []), ("5m", [alone])],
    )

    slow = c.alert(
        "HighProofGenerationTime",
        ue1,
        "Slow proof generation on us-east-1",
        "The last proof took 45s.",
    )
    c.add(
        "HighProofGenerationTime",
        [
            {
                "series": selector("bitcell_proof_generation_seconds", ue1),
                "values": "0.01x10 45x40",
            },
            {"series": selector("bitcell_proof_generation_seconds", ue2), "values": "30x50"},
        ],
        [("7m", []), ("8m", [slow])],
    )

    pending = c.alert(
        "HighPendingTransactions",
        ue1,
        "Many pending transactions on us-east-1",
        "us-east-1 holds 1500 transactions in its pool.",
    )
    c.add(
        "HighPendingTransactions",
        [
            {"series": selector("bitcell_pending_txs", ue1), "values": "500x10 1500x60"},
            {"series": selector("bitcell_pending_txs", ue2), "values": "1000x70"},
        ],
        [("12m", []), ("13m", [pending])],
    )

    banned = c.alert(
        "HighBannedMinerRate",
        ue1,
        "Many banned miners seen by us-east-1",
        "33.33% of the miners are banned.",
    )
    c.add(
        "HighBannedMinerRate",
        [
            {"series": selector("bitcell_banned_miners", ue1), "values": "0x10 2x80"},
            {"series": selector("bitcell_active_miners", ue1), "values": "4x90"},
            # 1 of 5 is 20 %, not above it.
            {"series": selector("bitcell_banned_miners", ue2), "values": "0x10 1x80"},
            {"series": selector("bitcell_active_miners", ue2), "values": "4x90"},
        ],
        [("17m", []), ("18m", [banned])],
    )

    no_miners = c.alert(
        "NoActiveMiners",
        ue1,
        "No active miners seen by us-east-1",
        "No validator took part in the last round as us-east-1 sees it.",
    )
    c.add(
        "NoActiveMiners",
        [
            {"series": selector("bitcell_active_miners", ue1), "values": "4x10 0x40"},
            {"series": selector("bitcell_active_miners", ue2), "values": "4x10 1x40"},
        ],
        [("7m", []), ("8m", [no_miners])],
    )

    region_down = c.alert(
        "RegionDown", region, "Region us-east is down", "No node of us-east can be scraped."
    )
    both_down = c.all_up({"us-east-1": "1x7 0x40", "us-east-2": "1x7 0x40"})
    c.add("RegionDown", both_down, [("2m30s", []), ("3m", [region_down])])
    one_down = c.all_up({"us-east-1": "1x7 0x40"})
    c.quiet("RegionDown", one_down, "10m")

    degraded = c.alert(
        "RegionDegraded",
        region,
        "Region us-east is degraded",
        "50% of the nodes of us-east are down.",
    )
    c.add("RegionDegraded", one_down, [("6m", []), ("8m", [degraded])])
    c.tests.append(
        {
            "name": "RegionDegraded is not RegionDown",
            "interval": "15s",
            "input_series": both_down,
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "RegionDegraded", "exp_alerts": []},
                {"eval_time": "10m", "alertname": "RegionDown", "exp_alerts": [region_down]},
                {"eval_time": "10m", "alertname": "NodeDown", "exp_alerts": [
                    c.alert("NodeDown", labels, f"Node {labels['node']} is down",
                            f"Prometheus cannot scrape {labels['node']} (us-east).")
                    for labels in (ue1, ue2)
                ]},
            ],
        }
    )  # fmt: skip

    far = {**ue1, "peer": "ap-southeast-1", "peer_region": "ap-southeast"}
    near = {**ue1, "peer": "us-west-1", "peer_region": "us-west"}
    local = {**ue1, "peer": "us-east-2", "peer_region": "us-east"}
    latency = c.alert(
        "HighCrossRegionLatency",
        far,
        "High latency us-east-1 -> ap-southeast-1",
        "Round trip us-east -> ap-southeast is 400ms, more than 50ms above the expected RTT.",
    )
    c.add(
        "HighCrossRegionLatency",
        [
            # 212 ms expected: 213 ms is normal (the seed's 200 ms limit would fire forever).
            {"series": selector("bitcell_peer_rtt_seconds", far), "values": "0.213x10 0.4x60"},
            # 62 ms expected, 100 ms is within the 50 ms margin.
            {"series": selector("bitcell_peer_rtt_seconds", near), "values": "0.1x70"},
            # Inside a region the rule does not look.
            {"series": selector("bitcell_peer_rtt_seconds", local), "values": "0.5x70"},
        ],
        [("12m", []), ("13m", [latency])],
    )

    for name, job, port, fires_at in (
        ("PrometheusDown", "prometheus", 9999, "5m"),
        ("AlertmanagerDown", "alertmanager", 9193, "8m"),
    ):
        labels = {"job": job, "instance": f"127.0.0.1:{port}"}
        rule = c.rules[name]
        expected = c.alert(name, labels, rule.summary, rule.description)
        c.add(
            name,
            [{"series": selector("up", labels), "values": "1x7 0x40"}],
            [("2m45s", []), (fires_at, [expected])],
        )
    return c


def write_test_file(folder: Path, cases: Cases) -> Path:
    document = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "15s",
        "tests": cases.tests,
    }
    path = folder / "alerts_test.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def rc3() -> Topology:
    return load_topology(ROOT / "topologies" / "rc3.yaml")


def test_every_alert_has_a_firing_and_a_quiet_test(rc3: Topology) -> None:
    cases = build_cases(rc3)
    assert cases.covered == set(cases.rules)
    assert len(cases.rules) == 15


def test_promtool_test_rules(rc3: Topology, tmp_path: Path) -> None:
    render_monitoring(rc3, tmp_path)
    result = promtool_test(write_test_file(tmp_path, build_cases(rc3)))
    assert result.ok, result.output
    assert "SUCCESS" in result.output


def test_promtool_catches_a_wrong_expectation(rc3: Topology, tmp_path: Path) -> None:
    """The harness can fail: NodeDown expected a scrape too early is reported."""
    render_monitoring(rc3, tmp_path)
    cases = build_cases(rc3)
    node_down = next(t for t in cases.tests if t["name"] == "NodeDown")
    node_down["alert_rule_test"][0]["exp_alerts"] = node_down["alert_rule_test"][1]["exp_alerts"]
    result = promtool_test(write_test_file(tmp_path, cases))
    assert not result.ok
    assert "NodeDown" in result.output
