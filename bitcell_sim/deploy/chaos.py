"""Chaos Mesh experiments from a topology: its RTT matrix, and each of its faults.

:func:`latency_chaos` is one ``NetworkChaos`` delay per ordered pair of regions (the packets from
one region's pods to the other's wait the one-way latency, RTT / 2, with the topology's jitter as
netem jitter of equal standard deviation, :func:`netem_jitter_s`). :func:`fault_chaos` turns one
fault into its experiments: ``node_down``/``region_down`` a ``PodChaos`` pod-failure (the process
stops, the pod and its chain stay), ``partition`` a ``NetworkChaos`` partition per pair of
sides, ``added_latency`` a ``NetworkChaos`` delay on the links with one end in the target,
``cpu_throttle`` a ``StressChaos`` CPU load. :func:`scenario_workflow` plays every fault at its
time from when it is applied.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from bitcell_sim.deploy.naming import NETWORK_LABEL, REGION_LABEL
from bitcell_sim.topology import (
    AddedLatency,
    CpuThrottle,
    Fault,
    NodeDown,
    Partition,
    RegionDown,
    Topology,
    fault_scope,
)
from bitcell_sim.topology.units import format_integer_duration

API_VERSION = "chaos-mesh.org/v1alpha1"
#: The spec field that embeds each kind in a Workflow template.
EMBED_FIELD = {"NetworkChaos": "networkChaos", "PodChaos": "podChaos", "StressChaos": "stressChaos"}


def go_duration(seconds: float) -> str:
    """A Go duration string with a whole magnitude (``0.04575 -> "45750us"``)."""
    return format_integer_duration(seconds, sep="")


def netem_jitter_s(topology: Topology) -> float:
    """netem's jitter J delays uniformly within ±J (standard deviation J/√3); J is chosen to
    match the standard deviation of the topology's jitter: normal σ → √3·σ, uniform ±s → s,
    pareto 2·s·Lomax(3) (σ = √3·s) → 3·s. Its mean offset (pareto) is not carried over."""
    jitter = topology.links.jitter
    factor = {"none": 0.0, "normal": math.sqrt(3.0), "uniform": 1.0, "pareto": 3.0}
    return round(jitter.scale_s * factor[jitter.distribution], 6)


def _object(kind: str, name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _region_selector(topology: Topology, region: str, namespace: str) -> dict[str, Any]:
    return {
        "namespaces": [namespace],
        "labelSelectors": {NETWORK_LABEL: topology.general.name, REGION_LABEL: region},
    }


def _pods_selector(nodes: Any, namespace: str, pods: dict[str, str]) -> dict[str, Any]:
    return {"namespaces": [namespace], "pods": {namespace: sorted(pods[n] for n in nodes)}}


def latency_chaos(topology: Topology, namespace: str) -> list[dict[str, Any]]:
    regions = [r for r in topology.regions if topology.nodes_in_region(r)]
    jitter = netem_jitter_s(topology)
    out = []
    for source, target in itertools.product(regions, repeat=2):
        delay = {"latency": go_duration(topology.rtt_matrix_s[(source, target)] / 2)}
        if jitter > 0:
            delay["jitter"] = go_duration(jitter)
        out.append(
            _object(
                "NetworkChaos",
                f"latency-{source}-to-{target}",
                namespace,
                {
                    "action": "delay",
                    "mode": "all",
                    "selector": _region_selector(topology, source, namespace),
                    "direction": "to",
                    "target": {
                        "mode": "all",
                        "selector": _region_selector(topology, target, namespace),
                    },
                    "delay": delay,
                },
            )
        )
    return out


def fault_name(index: int, fault: Fault) -> str:
    return f"fault-{index + 1:02d}-{fault.kind.replace('_', '-')}"


def fault_chaos(
    topology: Topology, index: int, fault: Fault, namespace: str, pods: dict[str, str]
) -> list[dict[str, Any]]:
    """The Chaos Mesh objects of one fault, each lasting the fault's duration once applied."""
    name, duration = fault_name(index, fault), go_duration(fault.duration_s)
    every = set(topology.node_names)
    if isinstance(fault, NodeDown | RegionDown):
        selector = (
            _pods_selector([fault.target], namespace, pods)
            if isinstance(fault, NodeDown)
            else _region_selector(topology, fault.target, namespace)
        )
        spec = {"action": "pod-failure", "mode": "all", "selector": selector}
        return [_object("PodChaos", name, namespace, {**spec, "duration": duration})]
    if isinstance(fault, Partition):
        sides = fault_scope(topology, fault).sides
        return [
            _object(
                "NetworkChaos",
                f"{name}-{i}-{j}" if len(sides) > 2 else name,
                namespace,
                {
                    "action": "partition",
                    "mode": "all",
                    "selector": _pods_selector(sides[i], namespace, pods),
                    "direction": "both",
                    "target": {
                        "mode": "all",
                        "selector": _pods_selector(sides[j], namespace, pods),
                    },
                    "duration": duration,
                },
            )
            for i, j in itertools.combinations(range(len(sides)), 2)
        ]
    if isinstance(fault, AddedLatency):
        inside = set(fault_scope(topology, fault).nodes)
        outside = every - inside
        if not outside:  # no link has exactly one end in the target: nothing to delay
            return []
        spec = {
            "action": "delay",
            "mode": "all",
            "selector": _pods_selector(inside, namespace, pods),
            "direction": "both",
            "target": {"mode": "all", "selector": _pods_selector(outside, namespace, pods)},
            "delay": {"latency": go_duration(fault.latency_s)},
            "duration": duration,
        }
        return [_object("NetworkChaos", name, namespace, spec)]
    assert isinstance(fault, CpuThrottle)
    # StressChaos cannot cap a process; a CPU worker loading (1 - share) of a core beside the
    # node leaves it about `share` of that core.
    spec = {
        "mode": "all",
        "selector": _pods_selector([fault.target], namespace, pods),
        "stressors": {"cpu": {"workers": 1, "load": round((1.0 - fault.share) * 100)}},
        "duration": duration,
    }
    return [_object("StressChaos", name, namespace, spec)]


def scenario_workflow(
    topology: Topology, namespace: str, pods: dict[str, str]
) -> dict[str, Any] | None:
    """A Workflow playing every fault at its start (seconds after it is applied) for its
    duration; ``None`` without faults."""
    templates: list[dict[str, Any]] = []
    branches = []
    for index, fault in enumerate(topology.faults):
        objects = fault_chaos(topology, index, fault, namespace, pods)
        if not objects:
            continue
        name, deadline = fault_name(index, fault), go_duration(fault.duration_s)
        chaos_steps = []
        for obj in objects:
            spec = {k: v for k, v in obj["spec"].items() if k != "duration"}
            step = obj["metadata"]["name"] + "-run"
            templates.append(
                {
                    "name": step,
                    "templateType": obj["kind"],
                    "deadline": deadline,
                    EMBED_FIELD[obj["kind"]]: spec,
                }
            )
            chaos_steps.append(step)
        steps = []
        if fault.start_s > 0:
            templates.append(
                {
                    "name": f"{name}-wait",
                    "templateType": "Suspend",
                    "deadline": go_duration(fault.start_s),
                }
            )
            steps.append(f"{name}-wait")
        if len(chaos_steps) > 1:
            templates.append(
                {"name": f"{name}-all", "templateType": "Parallel", "children": chaos_steps}
            )
            steps.append(f"{name}-all")
        else:
            steps += chaos_steps
        templates.append({"name": name, "templateType": "Serial", "children": steps})
        branches.append(name)
    if not branches:
        return None
    entry = {"name": "scenario", "templateType": "Parallel", "children": branches}
    return _object(
        "Workflow",
        f"{topology.general.name}-scenario",
        namespace,
        {"entry": "scenario", "templates": [entry, *templates]},
    )
