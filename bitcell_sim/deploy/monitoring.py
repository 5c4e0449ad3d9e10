"""The monitoring stack in a deployment: Prometheus, Alertmanager, HAProxy and the alert receiver.

The files are the devnet's own (:func:`~bitcell_sim.monitoring.monitoring_texts`) addressed by
service name: each node by its own name, each part of the stack by its name in ``STACK``, on
the ports of the topology's ``monitoring`` section. :func:`compose_services` gives the compose
services (files under ``monitoring/``), :func:`monitoring_manifests` the Kubernetes ConfigMaps,
Deployments and Services. The receiver runs from the devnet node image only.
"""

from __future__ import annotations

from typing import Any

from bitcell_sim.deploy.naming import stack_labels
from bitcell_sim.deploy.program import NodeProgram
from bitcell_sim.monitoring.configs import (
    ALERTMANAGER,
    HAPROXY,
    PROMETHEUS,
    RULES_FILE,
    STACK,
    WEBHOOK,
    Addresses,
)
from bitcell_sim.monitoring.render import monitoring_texts
from bitcell_sim.topology import Topology

#: Images of the stack: the versions the exports are checked with (Debian bookworm's tools).
IMAGES = {
    PROMETHEUS: "prom/prometheus:v2.42.0",
    ALERTMANAGER: "prom/alertmanager:v0.25.0",
    HAPROXY: "haproxy:2.6",
}
#: Where each part reads its configuration inside its container.
CONFIG_DIRS = {
    PROMETHEUS: "/etc/prometheus",
    ALERTMANAGER: "/etc/alertmanager",
    HAPROXY: "/usr/local/etc/haproxy",
}
#: Which monitoring files each part reads.
CONFIG_FILES = {
    PROMETHEUS: ("prometheus.yml", RULES_FILE),
    ALERTMANAGER: ("alertmanager.yml",),
    HAPROXY: ("haproxy.cfg",),
}
DATA_DIRS = {PROMETHEUS: "/prometheus", ALERTMANAGER: "/alertmanager", WEBHOOK: "/var/lib/alerts"}
COMPOSE_DIR = "monitoring"


def stack_parts(program: NodeProgram) -> tuple[str, ...]:
    """The parts deployed: the alert receiver is bitcell-sim's, in the devnet node image only."""
    return STACK if program.kind == "devnet" else tuple(p for p in STACK if p != WEBHOOK)


def stack_ports(topology: Topology, part: str) -> list[tuple[str, int]]:
    """(name, port) of each port a part listens on, the topology's in every format."""
    spec = topology.monitoring
    return {
        PROMETHEUS: [("web", spec.prometheus_port)],
        ALERTMANAGER: [("web", spec.alertmanager_port)],
        WEBHOOK: [("http", spec.webhook_port)],
        HAPROXY: [("rpc", spec.haproxy_port), ("stats", spec.haproxy_stats_port)],
    }[part]


def stack_files(topology: Topology, program: NodeProgram, *, compose: bool) -> dict[str, str]:
    """The monitoring files by name. In compose the services reach a node on its container
    ports and their addresses may change on a restart (HAProxy re-resolves); Kubernetes
    Services have the topology's ports and fixed addresses."""
    metrics = (
        {n: program.ports(topology, n).metrics for n in topology.node_names} if compose else {}
    )
    addresses = Addresses.by_name(
        resolve_at_runtime=compose,
        metrics_ports=metrics,
        nodes_serve_health=program.kind == "devnet",
    )
    return monitoring_texts(topology, addresses)


def _image(program: NodeProgram, part: str) -> str:
    return program.image if part == WEBHOOK else IMAGES[part]


def _argv(topology: Topology, part: str) -> list[str]:
    """The container's arguments: to the image's entrypoint, or the whole command of an image
    without one (HAProxy's is a script that runs them; the node image has none)."""
    spec = topology.monitoring
    if part == PROMETHEUS:
        return [
            f"--config.file={CONFIG_DIRS[part]}/prometheus.yml",
            f"--storage.tsdb.path={DATA_DIRS[part]}",
            f"--web.listen-address=0.0.0.0:{spec.prometheus_port}",
        ]
    if part == ALERTMANAGER:
        return [
            f"--config.file={CONFIG_DIRS[part]}/alertmanager.yml",
            f"--storage.path={DATA_DIRS[part]}",
            f"--web.listen-address=0.0.0.0:{spec.alertmanager_port}",
            "--cluster.listen-address=",  # one Alertmanager: no gossip mesh
        ]
    if part == WEBHOOK:
        return [
            "python", "-m", "bitcell_sim.monitoring.webhook", "--host", "0.0.0.0",
            "--port", str(spec.webhook_port), "--out", f"{DATA_DIRS[part]}/alerts.jsonl",
        ]  # fmt: skip
    return ["haproxy", "-f", f"{CONFIG_DIRS[part]}/haproxy.cfg", "-db"]


def compose_services(
    topology: Topology, program: NodeProgram, network: str
) -> tuple[dict[str, Any], list[str]]:
    """The stack's compose services, and the named volumes they keep their data in."""
    services: dict[str, Any] = {}
    volumes = []
    for part in stack_parts(program):
        mounts = [
            f"./{COMPOSE_DIR}/{name}:{CONFIG_DIRS[part]}/{name}:ro"
            for name in CONFIG_FILES.get(part, ())
        ]
        if part in DATA_DIRS:
            mounts.append(f"{part}-data:{DATA_DIRS[part]}")
            volumes.append(f"{part}-data")
        service: dict[str, Any] = {
            "image": _image(program, part),
            "hostname": part,
            "restart": "unless-stopped",
            "command": _argv(topology, part),
            "ports": [f"{port}:{port}" for _, port in stack_ports(topology, part)],
            "volumes": mounts,
            "labels": stack_labels(topology, part),
            "networks": [network],
        }
        if part in (PROMETHEUS, HAPROXY):
            service["depends_on"] = list(topology.node_names)
        services[part] = service
    return services, volumes


def _meta(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": labels}


def config_map_name(part: str) -> str:
    return f"bitcell-{part}"


def monitoring_manifests(
    topology: Topology, program: NodeProgram, namespace: str
) -> list[dict[str, Any]]:
    """ConfigMaps (Prometheus config and rules, Alertmanager config, HAProxy config), then a
    Deployment and a Service per part of the stack, named like the part."""
    files = stack_files(topology, program, compose=False)
    manifests: list[dict[str, Any]] = []
    for part, names in CONFIG_FILES.items():
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(config_map_name(part), namespace, stack_labels(topology, part)),
                "data": {name: files[name] for name in names},
            }
        )
    for part in stack_parts(program):
        labels = stack_labels(topology, part)
        volumes: list[dict[str, Any]] = []
        mounts: list[dict[str, Any]] = []
        if part in CONFIG_FILES:
            volumes.append({"name": "config", "configMap": {"name": config_map_name(part)}})
            mounts.append({"name": "config", "mountPath": CONFIG_DIRS[part], "readOnly": True})
        if part in DATA_DIRS:
            volumes.append({"name": "data", "emptyDir": {}})
            mounts.append({"name": "data", "mountPath": DATA_DIRS[part]})
        container: dict[str, Any] = {
            "name": part,
            "image": _image(program, part),
            "args": _argv(topology, part),
            "ports": [
                {"name": name, "containerPort": port, "protocol": "TCP"}
                for name, port in stack_ports(topology, part)
            ],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            "volumeMounts": mounts,
        }
        manifests += [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": _meta(part, namespace, labels),
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [container], "volumes": volumes},
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": _meta(part, namespace, labels),
                "spec": {
                    "selector": labels,
                    "ports": [
                        {"name": name, "port": port, "targetPort": port}
                        for name, port in stack_ports(topology, part)
                    ],
                },
            },
        ]
    return manifests
