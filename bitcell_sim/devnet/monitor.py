"""The monitoring stack of a devnet: Prometheus, Alertmanager, the webhook receiver and HAProxy.

``prepare_monitoring(devnet)`` renders the configs into ``monitoring/`` of the state folder,
checks them with the real tools and finds every binary (MonitoringError naming the Debian
package), before anything starts; ``start_monitoring`` starts the four processes (pid files like
every devnet process, so ``down`` stops them by pid) and waits until each answers.
``monitoring_status`` reads their URLs, Prometheus's target health and alerts, and HAProxy's
server states; ``prometheus_alerts``, ``alertmanager_alerts`` and ``haproxy_servers`` read one each.
"""

from __future__ import annotations

import csv
import io
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
    (``on_ready(count, name)`` after each); each pid file is saved before its wait, so a failure
    leaves nothing unrecorded."""
    started = []
    for name in MONITORING_PROCESSES:
        record = spawn(name, _argv(devnet, name, files), devnet.state.log_path(name))
        devnet.state.save_record(record)
        started.append(record)
        _wait_ready(devnet, record, timeout_s)
        if on_ready is not None:
            on_ready(len(started), name)
    return started


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
