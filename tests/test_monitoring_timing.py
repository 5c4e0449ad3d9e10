"""The alert-timing prediction: windows from for + scrape + evaluation, pages from Alertmanager's
group timings, inhibitions, HAProxy's fall/rise windows; the same function on a hand-made
timeline, on the model's records of rc3-chaos, and on pages read back from a webhook file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from bitcell_sim.model import simulate
from bitcell_sim.monitoring.timing import (
    Window,
    measured_pages,
    measured_pages_of_run,
    pages_side_by_side,
    predict_alerts,
    predict_front_door,
    predict_run,
)
from bitcell_sim.monitoring.webhook import read_notifications
from bitcell_sim.results import RunFolder, to_table
from bitcell_sim.topology import Topology, parse_topology
from tests.monitoring_short import MONITORING

ROOT = Path(__file__).resolve().parent.parent

SMALL = f"""
general: {{name: small}}
regions:
  a: {{rtt: {{a: 2 ms, b: 80 ms}}}}
  b: {{rtt: {{b: 2 ms}}}}
nodes:
  a1: {{region: a}}
  a2: {{region: a}}
  b1: {{region: b}}
  b2: {{region: b}}
protocol: {{commit: 1 s, reveal: 1 s, battle: 1 s}}
monitoring: {json.dumps(MONITORING)}
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bitcell_sim", "monitoring", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def timeline(
    topology: Topology, seconds: int, down: dict[str, tuple[int, int]] | None = None, **peers: int
) -> pa.Table:
    """Samples every second: each node up (but inside its ``down`` window), height one per
    3 s, full peers unless ``peers`` names a count."""
    rows: dict[str, list] = {k: [] for k in ("time_s", "node", "up", "height", "tip_hash",
                                             "pool_size", "peers", "sync_progress")}  # fmt: skip
    for t in range(seconds + 1):
        for node in topology.node_names:
            start, end = (down or {}).get(node, (-1, -1))
            up = not start <= t < end
            rows["time_s"].append(float(t))
            rows["node"].append(node)
            rows["up"].append(up)
            rows["height"].append(t // 3)
            rows["tip_hash"].append(f"{t // 3:064x}")
            rows["pool_size"].append(0)
            rows["peers"].append(peers.get(node, len(topology.peer_map[node])) if up else 0)
            rows["sync_progress"].append(100.0)
    return to_table("node_timeline", rows)


@pytest.fixture
def small() -> Topology:
    return parse_topology(SMALL)


def only(predictions, alert: str, **labels: str):  # type: ignore[no-untyped-def]
    found = [
        p
        for p in predictions
        if p.alert == alert and all(p.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, found
    return found[0]


def test_node_down_fires_within_for_plus_scrape_plus_evaluation(small: Topology) -> None:
    predictions = predict_alerts(small, timeline(small, 60, {"a1": (20, 40)}))
    node_down = only(predictions, "NodeDown", node="a1")
    assert node_down.condition == Window(19.0, 20.0)
    assert node_down.fires == "yes"
    # for 5 s: fires 5 s after the first evaluation that sees it, that one up to 1 + 1 s late.
    assert node_down.firing == Window(24.0, 27.0)
    assert node_down.page == Window(25.0, 28.0)  # + group_wait 1 s
    assert node_down.resolved == Window(39.0, 42.0)
    assert node_down.resolved_page == Window(39.0, 44.0)  # + up to group_interval 2 s
    assert node_down.inhibited == "no"
    # One node of four down: no region alert, no down rate (25 % < 30 %), RegionDegraded only
    # after its default 5 min, which the 20 s outage never reaches.
    assert {p.alert for p in predictions} == {"NodeDown", "RegionDegraded"}
    assert only(predictions, "RegionDegraded", region="a").fires == "no"


def test_short_outages_do_not_fire_and_borderline_ones_may(small: Topology) -> None:
    short = predict_alerts(small, timeline(small, 60, {"a1": (20, 22)}))
    assert only(short, "NodeDown").fires == "no"
    assert only(short, "NodeDown").page is None
    borderline = predict_alerts(small, timeline(small, 60, {"a1": (20, 26)}))
    assert only(borderline, "NodeDown").fires == "maybe"
    # Down at the end of the records: it fires if the records go on for long enough after.
    assert (
        only(predict_alerts(small, timeline(small, 60, {"a1": (50, 99)})), "NodeDown").fires
        == "yes"
    )
    assert (
        only(predict_alerts(small, timeline(small, 60, {"a1": (57, 99)})), "NodeDown").fires
        == "maybe"
    )


def test_region_down_fires_first_and_mutes_node_down(small: Topology) -> None:
    predictions = predict_alerts(small, timeline(small, 60, {"a1": (20, 40), "a2": (20, 40)}))
    region = only(predictions, "RegionDown", region="a")
    assert region.firing == Window(21.0, 24.0)
    for node in ("a1", "a2"):
        node_down = only(predictions, "NodeDown", node=node)
        assert (node_down.inhibited, node_down.inhibited_by) == ("yes", "RegionDown")
        assert not node_down.pages
    # Half the network down, but for 20 s of HighNodeDownRate's default 5 min.
    assert only(predictions, "HighNodeDownRate").fires == "no"


def test_partition_no_peers_and_low_peer_count(small: Topology) -> None:
    predictions = predict_alerts(small, timeline(small, 60, b1=0, b2=1))
    assert only(predictions, "NoPeers", node="b1").fires == "yes"
    assert only(predictions, "LowPeerCount", node="b2").fires == "yes"
    # b1's LowPeerCount has the same cause as its NoPeers: muted.
    low_b1 = only(predictions, "LowPeerCount", node="b1")
    assert (low_b1.inhibited, low_b1.inhibited_by) == ("yes", "NoPeers")
    assert not [p for p in predictions if p.labels.get("node") in ("a1", "a2")]


def test_front_door_errors_until_fall_checks_and_rejoin_after_rise(small: Topology) -> None:
    (outage,) = predict_front_door(small, timeline(small, 60, {"a1": (20, 40)}))
    assert outage.node == "a1"
    assert outage.starts_s == 20.0
    assert outage.ends == Window(19.0 + 1.0, 20.0 + 1.5)  # fall 3 x inter 0.5 s
    assert outage.error_share == pytest.approx(1 / 4)
    # Healthy again between the samples at 39 s and 40 s, then rise 2 x inter 0.5 s.
    assert outage.rejoins == Window(39.0 + 0.5, 40.0 + 1.0)
    # With the seed's inter 5 s, a 5 s outage is over before fall x inter: errors for all of
    # it, and the server is never taken out.
    seed_checks = parse_topology(SMALL.replace('"inter": "500 ms"', '"inter": "5 s"'))
    (blip,) = predict_front_door(seed_checks, timeline(seed_checks, 60, {"a1": (20, 25)}))
    assert blip.ends == Window(24.0, 25.0)
    assert blip.rejoins is None


def test_a_model_run_is_predicted_the_same_way(tmp_path: Path) -> None:
    """rc3-chaos through the model, with the test intervals: the 10 s node failure pages,
    the 15 s regional failure pages RegionDown and mutes its NodeDowns, the partition cuts
    the two far regions' peers."""
    data = yaml.safe_load((ROOT / "topologies/rc3-chaos.yaml").read_text())
    data["monitoring"] = MONITORING
    data["general"]["duration"] = "4 min"
    # The first three faults (a fault must start before the run ends).
    data["faults"] = data["faults"][:3]
    topology = parse_topology(yaml.safe_dump(data))
    result = simulate(topology)
    run = RunFolder.create(tmp_path, "chaos-model", topology)
    run.write_records("node_timeline", result.tables["node_timeline"])
    prediction = predict_run(run.path)
    node_down = next(p for p in prediction.alerts if p.alert == "NodeDown")
    assert node_down.labels["node"] == "us-east-1"
    assert node_down.condition.latest_s == pytest.approx(60.0, abs=1.0)
    assert node_down.fires == "yes" and node_down.pages
    region = only(prediction.alerts, "RegionDown", region="us-east")
    assert region.condition.latest_s == pytest.approx(120.0, abs=1.0)
    muted = [p for p in prediction.alerts if p.alert == "NodeDown" and p.inhibited == "yes"]
    assert {p.labels["node"] for p in muted} == {"us-east-1", "us-east-2"}
    # The partition [[eu-central, ap-southeast]] leaves each of those three nodes two peers:
    # not "low"; nobody has none.
    assert not [p for p in prediction.alerts if p.alert == "NoPeers"]
    kills = [o for o in prediction.front_door if o.starts_s == pytest.approx(60.0, abs=1.0)]
    assert [o.node for o in kills] == ["us-east-1"]
    shown = cli("predict", str(run.path))
    assert shown.returncode == 0, shown.stderr
    assert "RegionDown" in shown.stdout and "yes (RegionDown)" in shown.stdout
    assert "front door: us-east-1 down at 60.0 s" in shown.stdout


def test_pages_side_by_side_with_what_a_webhook_received(small: Topology, tmp_path: Path) -> None:
    genesis = 1_000_000.0

    def line(at_s: float, status: str, **labels: str) -> str:
        alert = {"status": status, "labels": {"alertname": "NodeDown", **labels},
                 "startsAt": "2026-12-01T10:00:00.123456789Z", "endsAt": "0001-01-01T00:00:00Z",
                 "fingerprint": "f"}  # fmt: skip
        payload = {"version": "4", "receiver": "pagerduty-oncall", "status": status,
                   "alerts": [alert], "groupKey": "{}", "truncatedAlerts": 0}  # fmt: skip
        return json.dumps(
            {"received_unix_s": genesis + at_s, "receiver_path": "x", "payload": payload}
        )

    path = tmp_path / "alerts.jsonl"
    # Two episodes of a1 (a repeat while the first fires is folded in), one page of a2 that
    # the prediction does not have.
    events = [(26.0, "firing", "a1"), (30.0, "firing", "a1"), (41.5, "resolved", "a1"),
              (70.0, "firing", "a1"), (80.0, "resolved", "a1"), (90.0, "firing", "a2")]  # fmt: skip
    path.write_text("".join(line(t, s, node=n, region="a") + "\n" for t, s, n in events))
    notes = read_notifications(path)
    assert notes[0].alerts[0].starts_at_unix_s is not None
    assert notes[0].alerts[0].ends_at_unix_s is None
    measured = measured_pages(notes, genesis)
    assert [(m.labels["node"], m.paged_s, m.resolved_s) for m in measured] == [
        ("a1", 26.0, 41.5), ("a1", 70.0, 80.0), ("a2", 90.0, None),
    ]  # fmt: skip
    predicted = predict_alerts(small, timeline(small, 60, {"a1": (20, 40)}))
    rows = [r for r in pages_side_by_side(predicted, measured) if r.alert == "NodeDown"]
    assert [(r.labels["node"], r.page_within_prediction) for r in rows] == [
        ("a1", True), ("a1", None), ("a2", None),
    ]  # fmt: skip
    assert rows[1].predicted is None and rows[1].measured == measured[1]
    # A run folder with the file copied in gives the same pages.
    run = RunFolder.create(tmp_path / "runs", "measured", small)
    refused = cli("predict", str(run.path))
    assert refused.returncode == 1 and "has no node_timeline records" in refused.stderr
    run.write_records("node_timeline", timeline(small, 60, {"a1": (20, 40)}))
    run.write_json("meta.json", {"genesis_time_unix_s": genesis})
    (run.path / "alerts.jsonl").write_text(path.read_text())
    assert measured_pages_of_run(run.path) == measured
    shown = cli("predict", str(run.path))
    assert shown.returncode == 0, shown.stderr
    assert "measured page" in shown.stdout and "26.0" in shown.stdout
