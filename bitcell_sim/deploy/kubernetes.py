"""The topology as Kubernetes manifests: a StatefulSet per region, a Service per node.

:func:`kubernetes_manifests` gives, in apply order: the Namespace; the ConfigMap holding the
topology and every node's config; per region a headless Service, a StatefulSet (one pod per node
of the region, scheduled on cloud nodes labelled ``topology.kubernetes.io/region`` = the region's
``label``, spread over hosts) and a PodDisruptionBudget; per node a Service named like the node
with the topology's ports. A region's pods share one template, so each pod finds its node by its
own name (``bitcell-<region>-<i>``, see ``naming.pod_names``) in its command and health probe.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from bitcell_sim.deploy.naming import (
    APP,
    APP_LABEL,
    NETWORK_LABEL,
    POD_NAME_LABEL,
    cloud_region,
    node_labels,
    pod_names,
    region_labels,
    statefulset_name,
)
from bitcell_sim.deploy.program import CONFIG_DIR, DATA_DIR, NodeProgram, P2PKeys, node_config
from bitcell_sim.topology import Topology, dump_topology

CONFIG_MAP = "bitcell-config"
#: The Secret holding every node's P2P key file, projected beside the ConfigMap.
P2P_SECRET = "bitcell-p2p-keys"
REGION_KEY = "topology.kubernetes.io/region"
HOSTNAME_KEY = "kubernetes.io/hostname"
DATA_SIZE = "10Gi"


def kubernetes_manifests(
    topology: Topology,
    program: NodeProgram,
    genesis_time_unix_s: float,
    namespace: str,
    keys: P2PKeys,
    *,
    single_cluster: bool = False,
) -> list[dict[str, Any]]:
    """Every manifest, in apply order. ``single_cluster`` makes the region affinity a preference
    (every region in one cluster, the RTT matrix imposed by Chaos Mesh) instead of a rule."""
    manifests: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        _config_map(topology, program, genesis_time_unix_s, namespace, keys),
    ]
    if program.kind == "devnet":
        manifests.append(_key_secret(topology, namespace, keys))
    pods = pod_names(topology)
    for region in topology.regions:
        nodes = topology.nodes_in_region(region)
        if not nodes:
            continue
        manifests += [
            _headless_service(topology, region, namespace),
            _statefulset(topology, program, region, namespace, pods, single_cluster),
            _disruption_budget(topology, region, namespace),
        ]
        manifests += [_node_service(topology, program, node, namespace, pods) for node in nodes]
    return manifests


def _meta(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": labels}


def _config_map(
    topology: Topology,
    program: NodeProgram,
    genesis_time_unix_s: float,
    namespace: str,
    keys: P2PKeys,
) -> dict[str, Any]:
    data = {"topology.yaml": dump_topology(topology)}
    if program.kind == "devnet":
        for node in topology.node_names:
            config = node_config(topology, node, genesis_time_unix_s, keys)
            data[f"{node}.json"] = json.dumps(config, indent=2) + "\n"
    labels = {APP_LABEL: APP, NETWORK_LABEL: topology.general.name}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(CONFIG_MAP, namespace, labels),
        "data": data,
    }


def _key_secret(topology: Topology, namespace: str, keys: P2PKeys) -> dict[str, Any]:
    labels = {APP_LABEL: APP, NETWORK_LABEL: topology.general.name}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(P2P_SECRET, namespace, labels),
        "type": "Opaque",
        "stringData": {P2PKeys.file_name(node): keys.secrets[node] for node in topology.node_names},
    }


def _config_volume(program: NodeProgram) -> dict[str, Any]:
    """The ConfigMap at CONFIG_DIR, with the devnet node's P2P key files projected beside it."""
    if program.kind != "devnet":
        return {"name": "config", "configMap": {"name": CONFIG_MAP}}
    sources = [{"configMap": {"name": CONFIG_MAP}}, {"secret": {"name": P2P_SECRET}}]
    return {"name": "config", "projected": {"sources": sources, "defaultMode": 0o400}}


def _headless_service(topology: Topology, region: str, namespace: str) -> dict[str, Any]:
    labels = region_labels(topology, region)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(statefulset_name(region), namespace, labels),
        "spec": {"clusterIP": "None", "selector": labels, "publishNotReadyAddresses": True},
    }


def _by_pod(commands: dict[str, list[str]]) -> list[str]:
    """``sh -c`` running the command of the pod it runs in (``$POD_NAME``)."""
    cases = " ".join(f"{pod}) exec {shlex.join(argv)} ;;" for pod, argv in commands.items())
    script = f'case "$POD_NAME" in {cases} *) echo "unknown pod $POD_NAME" >&2; exit 1 ;; esac'
    return ["sh", "-c", script]


def _statefulset(
    topology: Topology,
    program: NodeProgram,
    region: str,
    namespace: str,
    pods: dict[str, str],
    single_cluster: bool,
) -> dict[str, Any]:
    nodes = topology.nodes_in_region(region)
    labels = region_labels(topology, region)
    in_region = {
        "matchExpressions": [
            {"key": REGION_KEY, "operator": "In", "values": [cloud_region(topology, region)]}
        ]
    }
    node_affinity: dict[str, Any] = (
        {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "preference": in_region}
            ]
        }
        if single_cluster
        else {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [in_region]}}
    )
    spread = {
        "weight": 100,
        "podAffinityTerm": {"labelSelector": {"matchLabels": labels}, "topologyKey": HOSTNAME_KEY},
    }
    container_ports = sorted(
        {port for node in nodes for port in vars(program.ports(topology, node)).values()}
    )
    container = {
        "name": "node",
        "image": program.image,
        "command": _by_pod({pods[n]: program.command(topology, n) for n in nodes}),
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": [{"containerPort": port, "protocol": "TCP"} for port in container_ports],
        "readinessProbe": {
            "exec": {
                "command": _by_pod({pods[n]: program.health_command(topology, n) for n in nodes})
            },
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "data", "mountPath": DATA_DIR},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(statefulset_name(region), namespace, labels),
        "spec": {
            "serviceName": statefulset_name(region),
            "replicas": len(nodes),
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "affinity": {
                        "nodeAffinity": node_affinity,
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [spread]
                        },
                    },
                    "containers": [container],
                    "volumes": [_config_volume(program)],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": DATA_SIZE}},
                    },
                }
            ],
        },
    }


def _disruption_budget(topology: Topology, region: str, namespace: str) -> dict[str, Any]:
    labels = region_labels(topology, region)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(statefulset_name(region), namespace, labels),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
    }


def _node_service(
    topology: Topology, program: NodeProgram, node: str, namespace: str, pods: dict[str, str]
) -> dict[str, Any]:
    spec, ports = topology.nodes[node], program.ports(topology, node)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(node, namespace, node_labels(topology, node)),
        "spec": {
            "selector": {POD_NAME_LABEL: pods[node]},
            # Peers must reach a node that is still syncing, which is when it is not ready.
            "publishNotReadyAddresses": True,
            "ports": [
                {"name": "rpc", "port": spec.rpc_port, "targetPort": ports.rpc},
                {"name": "p2p", "port": spec.p2p_port, "targetPort": ports.p2p},
                {"name": "metrics", "port": spec.metrics_port, "targetPort": ports.metrics},
            ],
        },
    }


_BUILD_NOTE = (
    " (build it from a bitcell-sim checkout with the Dockerfile of the compose export, and push"
    " it where the cluster pulls images from)"
)


def kubernetes_readme(topology: Topology, program: NodeProgram, namespace: str) -> str:
    name = topology.general.name
    first = topology.node_names[0]
    rpc = topology.nodes[first].rpc_port
    return f"""# {name} on Kubernetes

`bitcell.yaml` holds, in apply order: the namespace `{namespace}`, the ConfigMap `{CONFIG_MAP}`
(the topology and each node's config), and per region a headless Service, a StatefulSet
`bitcell-<region>` (one pod per node of the region, pod `bitcell-<region>-<i>` is the i-th node
of the region in the topology), a PodDisruptionBudget (one pod of a region down at a time) and
one Service per node, named like the node, with the topology's RPC, P2P and metrics ports. Pods
are scheduled on cluster nodes labelled `{REGION_KEY}` = the region's label.

    kubectl apply -f bitcell.yaml
    kubectl -n {namespace} get pods -w
    kubectl -n {namespace} port-forward svc/{first} {rpc}:{rpc}

The image is `{program.image}`{_BUILD_NOTE if program.kind == "devnet" else ""}.

## Chaos Mesh (`chaos/`, needs Chaos Mesh 2.x in the cluster)

- `chaos/latency.yaml`: when every region runs in one cluster (export with `--single-cluster`,
  which turns the region affinity into a preference), one NetworkChaos per ordered pair of
  regions delays the packets from one region's pods to the other's by the one-way latency
  (RTT / 2) of the topology, with its jitter. Apply it once the pods run; delete it to remove.
- `chaos/faults/`: one experiment per fault of the topology (PodChaos for node and region
  failure, NetworkChaos for partition and added latency, StressChaos for CPU starvation), each
  lasting the fault's duration from when it is applied.
- `chaos/scenario.yaml`: a Workflow that plays every fault at its time, counted from when the
  workflow is applied: apply it at genesis to replay the topology's scenario.

    kubectl apply -f chaos/latency.yaml
    kubectl apply -f chaos/scenario.yaml
"""
