"""The monitoring stack of a devnet: Prometheus, Alertmanager, the webhook receiver and HAProxy.

``prepare_monitoring`` renders and checks the configs and finds the binaries before anything
starts; ``start_monitoring`` starts the four processes (pid files, so ``down`` stops them by pid);
``monitoring_status`` (``prometheus_alerts``, ``alertmanager_alerts``, ``haproxy_servers``) reads
them; ``measure_node_failover`` times one node kill through all of them.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bitcell_sim.devnet.cluster import MONITORING_NAMES, Devnet
from bitcell_sim.devnet.processes import ProcessRecord, is_running, spawn
from bitcell_sim.errors import BitcellSimError, DevnetError, MonitoringError
from bitcell_sim.monitoring import MonitoringFiles, check_monitoring, find_binary, render_monitoring
from bitcell_sim.monitoring.webhook import read_notifications
from bitcell_sim.topology import Topology

#: Process names of the stack in pids/ and logs/, in start order.
MONITORING_PROCESSES = MONITORING_NAMES
WEBHOOK, ALERTMANAGER, PROMETHEUS, HAPROXY = MONITORING_PROCESSES
READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class MonitoringUrls:
    """Where the stack answers (all on the devnet host)."""

    prometheus: str
    alertmanager: str
    webhook: str
    haproxy: str
    haproxy_stats: str

    @property
    def rpc(self) -> str:
        """The HAProxy front door's JSON-RPC base URL (``/rpc`` is appended by clients)."""
        return self.haproxy


def monitoring_urls(topology: Topology, host: str | None = None) -> MonitoringUrls:
    spec, host = topology.monitoring, host or topology.devnet.host
    return MonitoringUrls(
        prometheus=f"http://{host}:{spec.prometheus_port}",
        alertmanager=f"http://{host}:{spec.alertmanager_port}",
        webhook=f"http://{host}:{spec.webhook_port}",
        haproxy=f"http://{host}:{spec.haproxy_port}",
        haproxy_stats=f"http://{host}:{spec.haproxy_stats_port}",
    )


def monitoring_port_owners(topology: Topology) -> list[tuple[str, int]]:
    """(owner, port) of every port the stack listens on, for the devnet's port plan."""
    return [(f"monitoring {name}", port) for name, port in topology.monitoring.ports().items()]


def prepare_monitoring(devnet: Devnet) -> MonitoringFiles:
    """Render and check the stack's files and find its binaries; nothing is started."""
    for tool in ("prometheus", "alertmanager", "haproxy"):
        find_binary(tool)
    files = render_monitoring(devnet.topology, devnet.state.monitoring_dir)
    check_monitoring(files)
    return files


def _argv(devnet: Devnet, name: str, files: MonitoringFiles) -> list[str]:
    spec, host = devnet.topology.monitoring, devnet.meta.host
    folder = devnet.state.monitoring_dir
    urls = monitoring_urls(devnet.topology, host)
    if name == PROMETHEUS:
        return [
            find_binary("prometheus"),
            f"--config.file={files.prometheus}",
            f"--storage.tsdb.path={folder / 'prometheus-data'}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address={host}:{spec.prometheus_port}",
            f"--web.external-url={urls.prometheus}/",
        ]
    if name == ALERTMANAGER:
        return [
            find_binary("alertmanager"),
            f"--config.file={files.alertmanager}",
            f"--storage.path={folder / 'alertmanager-data'}",
            f"--web.listen-address={host}:{spec.alertmanager_port}",
            f"--web.external-url={urls.alertmanager}/",
            "--cluster.listen-address=",  # no gossip mesh: one Alertmanager, loopback only
        ]
    if name == WEBHOOK:
        return [
            devnet.meta.python,
            "-m",
            "bitcell_sim.monitoring.webhook",
            "--host",
            host,
            "--port",
            str(spec.webhook_port),
            "--out",
            str(devnet.state.alerts_path),
        ]
    return [find_binary("haproxy"), "-f", str(files.haproxy), "-db"]  # -db: stay in foreground


def _ready_url(devnet: Devnet, name: str) -> str:
    urls = monitoring_urls(devnet.topology, devnet.meta.host)
    return {
        PROMETHEUS: f"{urls.prometheus}/-/ready",
        ALERTMANAGER: f"{urls.alertmanager}/-/ready",
        WEBHOOK: f"{urls.webhook}/health",
        HAPROXY: f"{urls.haproxy_stats}/",
    }[name]


def _wait_ready(devnet: Devnet, record: ProcessRecord, timeout_s: float) -> None:
    url = _ready_url(devnet, record.name)
    deadline = time.monotonic() + timeout_s
    while True:
        if not is_running(record):
            raise DevnetError(devnet.describe_failure(record.name, f"{record.name} exited"))
        try:
            if httpx.get(url, timeout=1.0, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            raise DevnetError(
                devnet.describe_failure(
                    record.name, f"{record.name} not ready after {timeout_s:g} s ({url})"
                )
            )
        time.sleep(0.1)


def start_monitoring(
    devnet: Devnet,
    files: MonitoringFiles,
    timeout_s: float = READY_TIMEOUT_S,
    on_ready: Callable[[int, str], None] | None = None,
) -> list[ProcessRecord]:
    """Start the stack (webhook, Alertmanager, Prometheus, HAProxy) and wait until each answers
    (``on_ready(count, name)`` after each) and Prometheus has scraped every target up; each pid
    file is saved before its wait, so a failure leaves nothing unrecorded."""
    started = []
    for name in MONITORING_PROCESSES:
        record = spawn(name, _argv(devnet, name, files), devnet.state.log_path(name))
        devnet.state.save_record(record)
        started.append(record)
        _wait_ready(devnet, record, timeout_s)
        if on_ready is not None:
            on_ready(len(started), name)
    _wait_scraped(devnet, timeout_s)
    return started


def _wait_scraped(devnet: Devnet, timeout_s: float) -> None:
    """Wait until Prometheus has scraped every target and found it up: until then it has no
    series to alert on (measured: its first scrapes come seconds after it answers /-/ready)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            targets = prometheus_targets(devnet, timeout_s=2.0)
        except MonitoringError:
            targets = []
        waiting = [t.node or t.instance for t in targets if t.health != "up"]
        if targets and not waiting:
            return
        if time.monotonic() >= deadline:
            raise DevnetError(
                devnet.describe_failure(
                    PROMETHEUS,
                    f"Prometheus has not scraped every target up after {timeout_s:g} s "
                    f"(waiting for {', '.join(waiting) or 'its target list'})",
                )
            )
        time.sleep(0.2)


def has_monitoring(devnet: Devnet) -> bool:
    """True if ``up`` started the stack for this devnet (its pid files are there)."""
    return any(devnet.record(name) is not None for name in MONITORING_PROCESSES)


# ---- reading the stack ----------------------------------------------------------------------


@dataclass(frozen=True)
class TargetHealth:
    """One Prometheus scrape target."""

    job: str
    instance: str
    node: str | None
    health: str
    last_error: str


@dataclass(frozen=True)
class PrometheusAlert:
    """One alert as Prometheus evaluates it: ``state`` pending or firing."""

    name: str
    state: str
    labels: dict[str, str]
    active_at: str


@dataclass(frozen=True)
class MonitoringStatus:
    urls: MonitoringUrls
    processes: dict[str, bool]
    targets: tuple[TargetHealth, ...]
    alerts: tuple[PrometheusAlert, ...]
    servers: dict[tuple[str, str], str]
    notifications: int
    errors: tuple[str, ...]


def _get_json(url: str, timeout_s: float) -> Any:
    try:
        response = httpx.get(url, timeout=timeout_s, trust_env=False)
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise MonitoringError(f"{url}: {exc}") from None


def prometheus_targets(devnet: Devnet, timeout_s: float = 2.0) -> list[TargetHealth]:
    url = monitoring_urls(devnet.topology, devnet.meta.host).prometheus + "/api/v1/targets"
    active = _get_json(url, timeout_s)["data"]["activeTargets"]
    return [
        TargetHealth(
            job=t["labels"].get("job", ""),
            instance=t["labels"].get("instance", ""),
            node=t["labels"].get("node"),
            health=t.get("health", "unknown"),
            last_error=t.get("lastError", ""),
        )
        for t in active
    ]


def prometheus_alerts(devnet: Devnet, timeout_s: float = 2.0) -> list[PrometheusAlert]:
    """Alerts Prometheus holds now (pending and firing)."""
    url = monitoring_urls(devnet.topology, devnet.meta.host).prometheus + "/api/v1/alerts"
    return [
        PrometheusAlert(
            name=a["labels"].get("alertname", ""),
            state=a.get("state", ""),
            labels=dict(a["labels"]),
            active_at=a.get("activeAt", ""),
        )
        for a in _get_json(url, timeout_s)["data"]["alerts"]
    ]


def alertmanager_alerts(devnet: Devnet, timeout_s: float = 2.0) -> list[dict[str, Any]]:
    """Alertmanager's alerts (API v2): ``status.state`` active or suppressed, ``inhibitedBy``."""
    url = monitoring_urls(devnet.topology, devnet.meta.host).alertmanager + "/api/v2/alerts"
    alerts: list[dict[str, Any]] = _get_json(url, timeout_s)
    return alerts


def haproxy_servers(devnet: Devnet, timeout_s: float = 2.0) -> dict[tuple[str, str], str]:
    """(backend, server) -> HAProxy's status (UP, DOWN, "UP 1/2", ...), from the stats CSV."""
    url = monitoring_urls(devnet.topology, devnet.meta.host).haproxy_stats + "/;csv;norefresh"
    try:
        response = httpx.get(url, timeout=timeout_s, trust_env=False)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise MonitoringError(f"{url}: {exc}") from None
    rows = csv.DictReader(io.StringIO(response.text.lstrip("# ")))
    return {
        (row["pxname"], row["svname"]): row["status"]
        for row in rows
        if row["svname"] not in ("FRONTEND", "BACKEND")
    }


def monitoring_status(devnet: Devnet, timeout_s: float = 2.0) -> MonitoringStatus:
    """A snapshot of the stack; what cannot be read is named in ``errors`` (never raises)."""
    processes = {name: devnet.is_running(name) for name in MONITORING_PROCESSES}
    errors: list[str] = []
    targets: list[TargetHealth] = []
    alerts: list[PrometheusAlert] = []
    servers: dict[tuple[str, str], str] = {}
    if processes[PROMETHEUS]:
        try:
            targets = prometheus_targets(devnet, timeout_s)
            alerts = prometheus_alerts(devnet, timeout_s)
        except BitcellSimError as exc:
            errors.append(str(exc))
    if processes[HAPROXY]:
        try:
            servers = haproxy_servers(devnet, timeout_s)
        except BitcellSimError as exc:
            errors.append(str(exc))
    try:
        notifications = len(read_notifications(devnet.state.alerts_path))
    except BitcellSimError as exc:
        notifications = 0
        errors.append(str(exc))
    return MonitoringStatus(
        urls=monitoring_urls(devnet.topology, devnet.meta.host),
        processes=processes,
        targets=tuple(targets),
        alerts=tuple(alerts),
        servers=servers,
        notifications=notifications,
        errors=tuple(errors),
    )


# ---- measuring a node failure through the stack -----------------------------------------------


class FrontDoorProbe:
    """JSON-RPC calls (``eth_blockNumber``) through the HAProxy front door from ``clients``
    threads, each one call at a time ``interval_s`` apart, until ``stop``: ``results`` holds
    (Unix send time, seconds taken, ok). Several clients, because a call HAProxy routes to a
    dead server waits for its retries, and one client would then send nothing else."""

    def __init__(self, url: str, clients: int = 4, interval_s: float = 0.02) -> None:
        self.url = url
        self.interval_s = interval_s
        self.results: list[tuple[float, float, bool]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def start(self) -> FrontDoorProbe:
        for thread in self._threads:
            thread.start()
        return self

    def _run(self) -> None:
        body = {"jsonrpc": "2.0", "method": "eth_blockNumber", "params": [], "id": 1}
        with httpx.Client(timeout=10.0, trust_env=False) as client:
            while not self._stop.is_set():
                sent = time.time()
                try:
                    ok = client.post(self.url + "/rpc", json=body).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.results.append((sent, time.time() - sent, ok))
                self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15.0)

    @property
    def errors(self) -> list[float]:
        """Send times of the calls that failed."""
        return [sent for sent, _, ok in self.results if not ok]

    def slowest_s(self, sent_from: float, sent_until: float) -> float:
        """The longest call sent in that interval (0 if none)."""
        return max((s for t, s, _ in self.results if sent_from <= t <= sent_until), default=0.0)


@dataclass(frozen=True)
class NodeFailover:
    """What one node kill did to the stack, as Unix times (see ``measure_node_failover``)."""

    node: str
    killed: float
    marked_down: float
    fired: float
    paged: float
    restarted: float
    healthy: float
    marked_up: float
    resolved: float
    resolved_paged: float
    errors: tuple[float, ...]
    requests: int
    slowest_s: float

    def relative(self) -> dict[str, float]:
        """The figures docs/monitoring.md reports: seconds after the kill or after /health."""
        return {
            "kill -> HAProxy DOWN": self.marked_down - self.killed,
            "kill -> last failed call sent": max(self.errors, default=self.killed) - self.killed,
            "longest call sent before DOWN": self.slowest_s,
            "kill -> NodeDown firing": self.fired - self.killed,
            "kill -> NodeDown at the webhook": self.paged - self.killed,
            "restart -> /health 200": self.healthy - self.restarted,
            "/health 200 -> HAProxy UP": self.marked_up - self.healthy,
            "/health 200 -> NodeDown resolved": self.resolved - self.healthy,
            "/health 200 -> resolved at the webhook": self.resolved_paged - self.healthy,
        }


def _first_time(what: str, check: Callable[[], object], timeout_s: float, poll_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return time.time()
        time.sleep(poll_s)
    raise DevnetError(f"{what}: not within {timeout_s:g} s")


def _alert_firing(devnet: Devnet, alert: str, node: str) -> bool:
    return any(
        a.name == alert and a.state == "firing" and a.labels.get("node") == node
        for a in prometheus_alerts(devnet)
    )


def _notified(devnet: Devnet, alert: str, status: str, node: str, after_unix_s: float) -> float:
    for note in read_notifications(devnet.state.alerts_path):
        if note.received_unix_s > after_unix_s and note.has(alert, status, node=node):
            return note.received_unix_s
    return 0.0


def measure_node_failover(
    devnet: Devnet,
    node: str,
    kill: Callable[[str], object],
    restart: Callable[[str], object],
    *,
    down_for_s: float = 1.0,
    timeout_s: float = 60.0,
    poll_s: float = 0.05,
) -> NodeFailover:
    """Kill ``node`` (with ``kill``, e.g. ``DevnetFaults.kill``) while a probe calls the front
    door; time HAProxy marking it DOWN, NodeDown firing in Prometheus and reaching the webhook;
    ``down_for_s`` after the page restart it and time /health 200, HAProxy UP, NodeDown resolved
    and its resolution at the webhook. The probe's failed calls are in ``errors``."""
    urls = monitoring_urls(devnet.topology, devnet.meta.host)
    probe = FrontDoorProbe(urls.rpc).start()
    try:
        time.sleep(1.0)  # the probe is sending before the kill
        killed = time.time()
        kill(node)

        def server() -> str:
            return haproxy_servers(devnet).get(("rpc", node), "")

        marked_down = _first_time(
            "HAProxy marks it DOWN", lambda: server().startswith("DOWN"), timeout_s, poll_s
        )
        fired = _first_time(
            "NodeDown fires", lambda: _alert_firing(devnet, "NodeDown", node), timeout_s, poll_s
        )
        _first_time(
            "NodeDown reaches the webhook",
            lambda: _notified(devnet, "NodeDown", "firing", node, killed),
            timeout_s,
            poll_s,
        )
        paged = _notified(devnet, "NodeDown", "firing", node, killed)
        time.sleep(down_for_s)
        restarted = time.time()
        restart(node)
        healthy = _first_time(
            "the node answers /health", lambda: devnet.health(node).ok, timeout_s, poll_s
        )
        marked_up = _first_time(
            "HAProxy takes it back", lambda: server() == "UP", timeout_s, poll_s
        )
        resolved = _first_time(
            "NodeDown resolves",
            lambda: not _alert_firing(devnet, "NodeDown", node),
            timeout_s,
            poll_s,
        )
        _first_time(
            "the resolution reaches the webhook",
            lambda: _notified(devnet, "NodeDown", "resolved", node, killed),
            timeout_s,
            poll_s,
        )
        resolved_paged = _notified(devnet, "NodeDown", "resolved", node, killed)
        time.sleep(0.5)
    finally:
        probe.stop()
    return NodeFailover(
        node=node,
        killed=killed,
        marked_down=marked_down,
        fired=fired,
        paged=paged,
        restarted=restarted,
        healthy=healthy,
        marked_up=marked_up,
        resolved=resolved,
        resolved_paged=resolved_paged,
        errors=tuple(probe.errors),
        requests=len(probe.results),
        slowest_s=probe.slowest_s(killed, marked_down),
    )
