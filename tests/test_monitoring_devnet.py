"""The monitoring stack on a real devnet: real Prometheus, Alertmanager, HAProxy and our webhook.

One five-node rc3-fast devnet (ports shifted, 1 s scrape and evaluation, NodeDown for 5 s,
RegionDown 2 s, NoPeers and LowPeerCount 3 s, group_wait 1 s, HAProxy checks every 500 ms with
fall 3 and rise 2) serves the tests in file order: a clean run under load through the front
door is quiet; a killed node pages within for + scrape + evaluation, inside the predicted
window, and resolves; the front door errors only until fall x inter and takes the node back
after rise x inter; a stopped region pages RegionDown once and its NodeDowns are muted; a
partition raises NoPeers and LowPeerCount; ``down`` stops the stack by pid.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from bitcell_sim.devnet import Devnet, down, is_running, up
from bitcell_sim.devnet.monitor import (
    MONITORING_PROCESSES,
    alertmanager_alerts,
    haproxy_servers,
    measure_node_failover,
    monitoring_urls,
    prometheus_alerts,
    prometheus_targets,
)
from bitcell_sim.devnet.ports import relocated_copy
from bitcell_sim.errors import DevnetError, MonitoringError
from bitcell_sim.faults import DevnetFaults
from bitcell_sim.load.output import read_outputs
from bitcell_sim.monitoring import alert_rules, dashboard, metric_names
from bitcell_sim.monitoring import tools as monitoring_tools
from bitcell_sim.monitoring.timing import predict_alerts, predict_front_door
from bitcell_sim.monitoring.webhook import Notification, read_notifications
from bitcell_sim.results import to_table
from tests.monitoring_short import MONITORING

pytestmark = [pytest.mark.real]

ROOT = Path(__file__).resolve().parent.parent
RC3_FAST = ROOT / "topologies" / "rc3-fast.yaml"
KEEP = ("us-east-1", "us-east-2", "us-west-1", "eu-central-1", "ap-southeast-1")
#: How often the tests look at Prometheus, HAProxy and the webhook file.
POLL_S = 0.1
#: Slack for the polling and for a busy 2-core machine on top of a predicted bound.
SLACK_S = 0.5


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    folder = tmp_path_factory.mktemp("monitoring")
    topology = relocated_copy(
        RC3_FAST,
        folder / "topology.yaml",
        keep=KEEP,
        devnet={"genesis_delay": "2 s"},
        monitoring=MONITORING,
    )
    state = folder / "state"
    started = up(topology, state, monitoring=True, timeout_s=90)
    try:
        yield started
    finally:
        down(state, grace_s=2.0)


def since_genesis(devnet: Devnet, unix_s: float) -> float:
    return unix_s - devnet.meta.genesis_time_unix_s


def notifications(devnet: Devnet) -> list[Notification]:
    return read_notifications(devnet.state.alerts_path)


def wait_until(what: str, check: Callable[[], object], timeout_s: float) -> float:
    """Poll ``check`` until it is truthy; return the Unix time it first was."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return time.time()
        time.sleep(POLL_S)
    raise AssertionError(f"{what}: not within {timeout_s:g} s")


def firing(devnet: Devnet, alert: str, **labels: str) -> bool:
    return any(
        a.name == alert
        and a.state == "firing"
        and all(a.labels.get(k) == v for k, v in labels.items())
        for a in prometheus_alerts(devnet)
    )


def paged(devnet: Devnet, alert: str, status: str, after_unix_s: float, **labels: str) -> float:
    """Unix time of the first notification after ``after_unix_s`` carrying the alert, or 0."""
    for note in notifications(devnet):
        if note.received_unix_s > after_unix_s and note.has(alert, status, **labels):
            return note.received_unix_s
    return 0.0


def quiet_start(devnet: Devnet) -> float:
    """Wait until Prometheus holds no alert (a previous test's have resolved); return now."""
    wait_until("no alert left", lambda: not prometheus_alerts(devnet), 30.0)
    return time.time()


def timeline(devnet: Devnet, down: dict[str, tuple[float, float]], end_unix_s: float) -> pa.Table:
    """The node timeline of what the test did (10 samples a second): every node up with all
    its peers, but each node of ``down`` from its kill to its /health 200 (Unix times)."""
    topology = devnet.topology
    fields = ("time_s", "node", "up", "height", "tip_hash", "pool_size", "peers", "sync_progress")
    rows: dict[str, list[object]] = {k: [] for k in fields}
    start = min(t for t, _ in down.values()) - 5.0
    steps = int((end_unix_s - start) * 10) + 1
    for i in range(steps):
        t = start + i / 10
        for node in topology.node_names:
            kill, back = down.get(node, (0.0, 0.0))
            alive = not kill <= t < back
            rows["time_s"].append(since_genesis(devnet, t))
            rows["node"].append(node)
            rows["up"].append(alive)
            rows["height"].append(100 + i)
            rows["tip_hash"].append("0" * 64)
            rows["pool_size"].append(0)
            rows["peers"].append(len(topology.peer_map[node]) if alive else 0)
            rows["sync_progress"].append(100.0)
    return to_table("node_timeline", rows)


def load_via_lb(devnet: Devnet, results_dir: Path, duration_s: float) -> subprocess.Popen[str]:
    source = Path(devnet.meta.topology_source)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bitcell_sim",
            "load",
            str(source),
            "--via-lb",
            "--tps",
            "20",
            "--duration",
            f"{duration_s:g}",
            "--drain",
            "6",
            "--state-dir",
            str(devnet.state.root),
            "--results-dir",
            str(results_dir),
            "--run-id",
            "lb",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_clean_run_under_load_through_the_front_door_is_quiet(
    devnet: Devnet, tmp_path: Path
) -> None:
    load = load_via_lb(devnet, tmp_path, 15)
    out, _ = load.communicate(timeout=180)
    assert load.returncode == 0, out
    assert "through HAProxy" in out
    records, summary, _ = read_outputs(tmp_path / "lb")
    accepted = records.column("accepted").to_pylist()
    assert len(accepted) > 200 and all(accepted), summary
    targets = prometheus_targets(devnet)
    assert {t.node for t in targets if t.job == "bitcell"} == set(KEEP)
    assert {t.job for t in targets} == {"bitcell", "prometheus", "alertmanager", "haproxy"}
    assert all(t.health == "up" for t in targets), targets
    assert prometheus_alerts(devnet) == []
    assert notifications(devnet) == []
    assert set(haproxy_servers(devnet).values()) == {"UP"}
    # Every metric a rule or the dashboard asks for is one Prometheus has from the nodes.
    url = monitoring_urls(devnet.topology).prometheus + "/api/v1/label/__name__/values"
    scraped = set(httpx.get(url, trust_env=False).json()["data"])
    wanted = {m for r in alert_rules(devnet.topology) for m in metric_names(r.expr)}
    wanted |= {
        m for p in dashboard(devnet.topology)["panels"] for t in p["targets"]
        for m in metric_names(t["expr"])
    }  # fmt: skip
    assert wanted - scraped == set()


def test_node_kill_pages_resolves_and_the_front_door_fails_over(
    devnet: Devnet, tmp_path: Path
) -> None:
    spec = devnet.topology.monitoring
    check = spec.health_check
    node = "us-east-1"
    quiet_start(devnet)
    load = load_via_lb(devnet, tmp_path, 24)
    time.sleep(6)  # Locust is up and sending
    faults = DevnetFaults(devnet)
    run = measure_node_failover(devnet, node, faults.kill, faults.restart)
    out, _ = load.communicate(timeout=180)
    assert load.returncode == 0, out
    print(json.dumps(run.relative(), indent=2))

    # The bound: for + one scrape + one evaluation.
    bound_s = spec.for_s("NodeDown") + spec.scrape_interval_s + spec.evaluation_interval_s
    assert run.fired - run.killed <= bound_s + SLACK_S
    # The prediction from the same events, as for a model run.
    events = timeline(devnet, {node: (run.killed, run.healthy)}, run.resolved_paged + 5)
    (predicted,) = [p for p in predict_alerts(devnet.topology, events) if p.alert == "NodeDown"]
    assert predicted.labels == {"node": node, "region": "us-east"}
    for window, measured in (
        (predicted.firing, run.fired),
        (predicted.page, run.paged),
        (predicted.resolved, run.resolved),
        (predicted.resolved_page, run.resolved_paged),
    ):
        at_s = since_genesis(devnet, measured)
        assert window is not None and window.contains(at_s, SLACK_S), (at_s, window)

    # Behind HAProxy: errors only until the server is marked DOWN (fall x inter), then none.
    (outage,) = predict_front_door(devnet.topology, events)
    assert run.errors, "no call hit the dead server before HAProxy marked it down"
    assert min(run.errors) >= run.killed - 0.05
    assert max(run.errors) <= run.killed + check.fall * check.inter_s + SLACK_S
    assert run.marked_down - run.killed <= check.fall * check.inter_s + SLACK_S
    assert outage.ends.contains(since_genesis(devnet, run.marked_down), SLACK_S)
    assert since_genesis(devnet, max(run.errors)) <= outage.ends.latest_s + SLACK_S
    # Such a call waits for HAProxy's retries of the dead server before its 503.
    assert run.slowest_s <= outage.failed_call_s + SLACK_S
    # The node is taken back rise x inter after its /health answers 200.
    assert run.marked_up - run.healthy <= check.rise * check.inter_s + SLACK_S
    assert outage.rejoins is not None
    assert outage.rejoins.contains(since_genesis(devnet, run.marked_up), SLACK_S)
    # The load went on: its only failures fall inside the detection window.
    records, _, _ = read_outputs(tmp_path / "lb")
    genesis = devnet.meta.genesis_time_unix_s
    submitted = records.column("submit_s").to_pylist()
    accepted = records.column("accepted").to_pylist()
    failed = [s + genesis for s, ok in zip(submitted, accepted, strict=True) if not ok]
    assert all(run.killed - 0.1 <= t <= run.marked_down + SLACK_S for t in failed), failed
    assert len(failed) < len(accepted) / 10


def test_region_down_pages_once_and_mutes_its_node_down(devnet: Devnet) -> None:
    spec = devnet.topology.monitoring
    quiet_start(devnet)
    faults = DevnetFaults(devnet)
    stopped = time.time()
    faults.region_down("us-east")
    fired = wait_until(
        "RegionDown fires", lambda: firing(devnet, "RegionDown", region="us-east"), 20
    )
    assert fired - stopped <= spec.for_s("RegionDown") + spec.scrape_interval_s + (
        spec.evaluation_interval_s + SLACK_S
    )
    wait_until("RegionDown pages", lambda: paged(devnet, "RegionDown", "firing", stopped), 10)
    wait_until("both NodeDown fire", lambda: sum(
        a.name == "NodeDown" and a.state == "firing" for a in prometheus_alerts(devnet)
    ) == 2, 20)  # fmt: skip
    time.sleep(spec.group_wait_s + spec.group_interval_s + 1)
    # Alertmanager holds the NodeDowns, muted by RegionDown; none reached the webhook.
    node_downs = [a for a in alertmanager_alerts(devnet) if a["labels"]["alertname"] == "NodeDown"]
    assert len(node_downs) == 2
    assert all(a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]
               for a in node_downs)  # fmt: skip
    assert not any(n.has("NodeDown") for n in notifications(devnet) if n.received_unix_s > stopped)
    receivers = {
        n.receiver for n in notifications(devnet)
        if n.received_unix_s > stopped and n.has("RegionDown", "firing")
    }  # fmt: skip
    assert receivers == {"pagerduty-critical", "slack-regional"}
    returned = time.time()
    faults.region_up("us-east")
    # (RegionDown resolves with the region's first node back: a slower node's NodeDown is then
    # no longer muted and may page until that node is up too, as it would in production.)
    wait_until(
        "RegionDown resolves at the webhook",
        lambda: paged(devnet, "RegionDown", "resolved", returned, region="us-east"),
        40,
    )


def test_partition_raises_no_peers_and_low_peer_count(devnet: Devnet) -> None:
    quiet_start(devnet)
    faults = DevnetFaults(devnet)
    cut = time.time()
    # Three sides: ap-southeast-1 alone, eu-central-1 + us-west-1, the two us-east nodes.
    fault = faults.partition([["ap-southeast-1"], ["eu-central-1", "us-west-1"]])
    try:
        wait_until(
            "NoPeers pages ap-southeast-1",
            lambda: paged(devnet, "NoPeers", "firing", cut, node="ap-southeast-1"),
            20,
        )
        low = {"eu-central-1", "us-west-1", "us-east-1", "us-east-2"}
        wait_until(
            "LowPeerCount pages the two-node sides",
            lambda: all(paged(devnet, "LowPeerCount", "firing", cut, node=n) for n in low),
            20,
        )
        time.sleep(2)
        no_peers = {a.labels["node"] for a in prometheus_alerts(devnet) if a.name == "NoPeers"}
        assert no_peers == {"ap-southeast-1"}
        # ap-southeast-1's LowPeerCount fires in Prometheus but NoPeers mutes it.
        assert firing(devnet, "LowPeerCount", node="ap-southeast-1")
        assert not paged(devnet, "LowPeerCount", "firing", cut, node="ap-southeast-1")
    finally:
        faults.revert(fault.id)
    healed = time.time()
    wait_until("NoPeers resolves", lambda: paged(devnet, "NoPeers", "resolved", healed), 30)


def test_down_stops_the_stack_by_pid(devnet: Devnet) -> None:
    records = {name: devnet.record(name) for name in MONITORING_PROCESSES}
    assert all(r is not None and is_running(r) for r in records.values())
    result = down(devnet.state.root, grace_s=2.0)
    assert set(MONITORING_PROCESSES) <= set(result.stopped)
    assert not any(is_running(r) for r in records.values() if r is not None)
    with pytest.raises(httpx.HTTPError):
        httpx.get(monitoring_urls(devnet.topology).prometheus + "/-/ready", trust_env=False)


# ---- refusals before anything starts ----------------------------------------------------------


def small_topology(folder: Path) -> Path:
    return relocated_copy(
        RC3_FAST, folder / "t.yaml", keep=("us-east-1", "us-west-1"), monitoring=MONITORING
    )


def test_a_missing_binary_is_refused_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topology = small_topology(tmp_path)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    monkeypatch.setattr(monitoring_tools, "EXTRA_DIRS", ())
    with pytest.raises(MonitoringError, match=r"apt-get install prometheus$"):
        up(topology, tmp_path / "state", monitoring=True)
    assert not list((tmp_path / "state" / "pids").glob("*.json"))


def test_a_taken_monitoring_port_is_refused(tmp_path: Path) -> None:
    topology = small_topology(tmp_path)
    from bitcell_sim.topology import load_topology

    port = load_topology(topology).monitoring.haproxy_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        with pytest.raises(DevnetError, match=f"monitoring haproxy_port: 127.0.0.1:{port}"):
            up(topology, tmp_path / "state", monitoring=True)
    assert not (tmp_path / "state" / "pids").exists() or not list(
        (tmp_path / "state" / "pids").glob("*.json")
    )
