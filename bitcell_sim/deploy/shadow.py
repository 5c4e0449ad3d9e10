"""The topology as a Shadow simulation: ``shadow.yaml``, the GML graph and the node configs.

Every node is a Shadow host (named like the node, on the GML vertex of its region:
``network_node_id``) running the devnet node program. Shadow's clock starts at 2000-01-01
00:00:00 UTC; the nodes start at :data:`START_S` and genesis is ``devnet.genesis_delay`` later,
so a fault at ``t`` since genesis happens at ``GENESIS_OFFSET + t``. ``node_down`` and
``region_down`` become process stop (SIGKILL) and restart times; Shadow's graph is static, so
partitions, added latency and CPU throttling cannot be expressed and are listed as left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from bitcell_sim.deploy.program import NodeProgram, P2PKeys, node_config
from bitcell_sim.errors import DeployError
from bitcell_sim.topology import NodeDown, RegionDown, Topology, dump_topology, to_gml
from bitcell_sim.topology.gml import host_vertices
from bitcell_sim.topology.units import format_integer_duration

#: Shadow's simulated clock starts here (2000-01-01 00:00:00 UTC).
SHADOW_EPOCH_UNIX_S = 946_684_800.0
START_S = 1.0
#: A process's working directory is shadow.data/hosts/<host>/, three levels below this folder.
HOST_TO_EXPORT = "../../.."


@dataclass(frozen=True)
class ShadowExport:
    files: dict[str, str]
    left_out: tuple[str, ...]  # faults Shadow cannot express, as "label (kind)"


def genesis_offset_s(topology: Topology) -> float:
    return START_S + topology.devnet.genesis_delay_s


def _time(seconds: float) -> str:
    return format_integer_duration(seconds)


def down_windows(topology: Topology) -> dict[str, list[tuple[float, float]]]:
    """Each node's merged down intervals (seconds since genesis) from node and region faults."""
    windows: dict[str, list[tuple[float, float]]] = {n: [] for n in topology.node_names}
    for fault in topology.faults:
        if isinstance(fault, NodeDown | RegionDown):
            for node in topology.resolve(fault.target):
                windows[node].append((fault.start_s, fault.end_s))
    merged: dict[str, list[tuple[float, float]]] = {}
    for node, spans in windows.items():
        out: list[tuple[float, float]] = []
        for start, end in sorted(spans):
            if out and start <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], end))
            else:
                out.append((start, end))
        merged[node] = out
    return merged


def _processes(
    topology: Topology, program: NodeProgram, node: str, windows: list[tuple[float, float]]
) -> list[dict[str, Any]]:
    argv = program.command(topology, node, config_dir=f"{HOST_TO_EXPORT}/config")
    offset, stop = (
        genesis_offset_s(topology),
        genesis_offset_s(topology) + topology.general.duration_s,
    )
    starts = [START_S] + [offset + end for _, end in windows]
    ends: list[float | None] = [offset + start for start, _ in windows] + [None]
    processes = []
    for start, end in zip(starts, ends, strict=True):
        if start >= stop:
            break
        process: dict[str, Any] = {"path": "python3", "args": argv[1:], "start_time": _time(start)}
        if end is not None and end < stop:
            process |= {
                "shutdown_time": _time(end),
                "shutdown_signal": "SIGKILL",
                "expected_final_state": {"signaled": "SIGKILL"},
            }
        else:
            process["expected_final_state"] = "running"
        processes.append(process)
    return processes


def shadow_export(topology: Topology, program: NodeProgram, keys: P2PKeys) -> ShadowExport:
    if program.kind != "devnet" or program.command_template is not None:
        raise DeployError(
            "the Shadow export runs the devnet node program only (--program devnet, no --command)"
        )
    vertices, windows = host_vertices(topology), down_windows(topology)
    offset = genesis_offset_s(topology)
    document = {
        "general": {
            "stop_time": _time(offset + topology.general.duration_s),
            "seed": topology.general.seed,
            "model_unblocked_syscall_latency": True,
        },
        "network": {"graph": {"type": "gml", "file": {"path": "topology.gml"}}},
        "hosts": {
            node: {
                "network_node_id": vertices[node],
                "processes": _processes(topology, program, node, windows[node]),
            }
            for node in topology.node_names
        },
    }
    genesis = SHADOW_EPOCH_UNIX_S + offset
    files = {
        "shadow.yaml": yaml.safe_dump(document, sort_keys=False),
        "topology.gml": to_gml(topology),
        "config/topology.yaml": dump_topology(topology),
    }
    for node in topology.node_names:
        config = node_config(
            topology,
            node,
            genesis,
            keys,
            topology_path="topology.yaml",
            data_dir=f"../data/{node}",
            key_dir=".",
        )
        files[f"config/{node}.json"] = json.dumps(config, indent=2) + "\n"
        files[f"config/{P2PKeys.file_name(node)}"] = keys.secrets[node]
    left_out = tuple(
        f"{fault.label or fault.kind} ({fault.kind} at {_time(fault.start_s)})"
        for fault in topology.faults
        if not isinstance(fault, NodeDown | RegionDown)
    )
    files["README.md"] = _readme(topology, offset, left_out)
    return ShadowExport(files, left_out)


def _readme(topology: Topology, offset_s: float, left_out: tuple[str, ...]) -> str:
    omitted = (
        "Shadow's network graph is static, so these faults are not in `shadow.yaml`:\n\n"
        + "".join(f"- {item}\n" for item in left_out)
        if left_out
        else "Every fault of the topology is in `shadow.yaml`.\n"
    )
    return f"""# {topology.general.name} under Shadow

`shadow.yaml` runs one host per node (named like the node) on the vertex of its region in
`topology.gml` (one-way latency RTT / 2 per edge, the region's RTT / 2 on its self-loop), each
host running the devnet node with its config from `config/`. The nodes start at
{_time(START_S)} of simulated time and genesis is at {_time(offset_s)}, so a fault at `t` since
genesis happens at {_time(offset_s)} + `t`; a node or region outage stops the node's process
(SIGKILL) and starts it again at the end of the outage, on the same chain in `data/<node>`.

Run it from this folder with a Python that has bitcell-sim installed on the PATH as `python3`:

    shadow shadow.yaml > shadow.log

Each host's log is then in `shadow.data/hosts/<node>/`.

{omitted}"""
