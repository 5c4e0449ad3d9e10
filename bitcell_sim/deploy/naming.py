"""The names and labels a deployment gives a topology's nodes and regions, in every format alike.

A node keeps its own name as compose service, Kubernetes Service and Shadow host; a region's
StatefulSet is ``bitcell-<region>`` and its pods ``bitcell-<region>-<i>``, the i-th node of the
region in topology order (:func:`pod_names`). Names must be DNS labels; :func:`check_names`
raises ``DeployError`` naming each that is not, since a silent rename would cut the link between
a deployment and the topology it was validated as.
"""

from __future__ import annotations

import re

from bitcell_sim.errors import DeployError
from bitcell_sim.topology import Topology

APP = "bitcell-node"
APP_LABEL = "app.kubernetes.io/name"
NETWORK_LABEL = "bitcell-sim/network"
REGION_LABEL = "bitcell-sim/region"
NODE_LABEL = "bitcell-sim/node"
ROLE_LABEL = "bitcell-sim/role"
#: The label Kubernetes puts on every StatefulSet pod, naming it.
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# A StatefulSet's pods carry "<name>-<revision hash>" as a label value (63 characters at most),
# which leaves 52 for the StatefulSet's name, and so 44 for the region in "bitcell-<region>".
_MAX_REGION = 44
_MAX_NAME = 63


def statefulset_name(region: str) -> str:
    return f"bitcell-{region}"


def pod_names(topology: Topology) -> dict[str, str]:
    """Each node's pod: ``bitcell-<region>-<index of the node within its region>``."""
    pods: dict[str, str] = {}
    for region in topology.regions:
        for index, node in enumerate(topology.nodes_in_region(region)):
            pods[node] = f"{statefulset_name(region)}-{index}"
    return pods


def default_namespace(topology: Topology) -> str:
    return f"bitcell-{topology.general.name}"


def check_names(topology: Topology, namespace: str | None = None) -> None:
    """DeployError listing every node, region, network or namespace name that is not a DNS
    label (lower-case letters, digits and '-', starting with a letter)."""
    problems = [f"node {node!r}" for node in topology.nodes if not _label(node, _MAX_NAME)] + [
        f"region {region!r} (at most {_MAX_REGION} characters)"
        for region in topology.regions
        if topology.nodes_in_region(region) and not _label(region, _MAX_REGION)
    ]
    if not _label(default_namespace(topology), _MAX_NAME):
        problems.append(f"network name {topology.general.name!r}")
    if namespace is not None and not _label(namespace, _MAX_NAME):
        problems.append(f"namespace {namespace!r}")
    if problems:
        raise DeployError(
            "these names cannot be deployed, they must be DNS labels (lower-case letters, "
            "digits and '-', starting with a letter): " + ", ".join(problems)
        )


def _label(name: str, max_length: int) -> bool:
    return len(name) <= max_length and bool(_DNS_LABEL.match(name))


def region_labels(topology: Topology, region: str) -> dict[str, str]:
    return {APP_LABEL: APP, NETWORK_LABEL: topology.general.name, REGION_LABEL: region}


def node_labels(topology: Topology, node: str) -> dict[str, str]:
    spec = topology.nodes[node]
    return {**region_labels(topology, spec.region), NODE_LABEL: node, ROLE_LABEL: spec.role}


def cloud_region(topology: Topology, region: str) -> str:
    """The cloud region a region runs in (its ``label``, e.g. ``us-east-1``), else its name."""
    return topology.regions[region].label or region
