"""The topology as a docker-compose project: one service per node, on one bridge network.

:func:`compose_document` gives ``docker-compose.yml``: each node's service (named like the
node) runs the node program's image and command, publishes the topology's RPC, P2P and metrics
ports on the host, keeps its chain in a named volume, reads its config from ``./config`` and is
health-checked on ``/health`` (``/metrics`` for the real node). :func:`compose_files` adds the
node configs, a Dockerfile for the devnet image and the README.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from bitcell_sim.deploy.naming import node_labels
from bitcell_sim.deploy.program import CONFIG_DIR, DATA_DIR, NodeProgram, P2PKeys, node_config
from bitcell_sim.topology import Topology, dump_topology

NETWORK = "bitcell"
HEALTH = {"interval": "10s", "timeout": "5s", "retries": 3, "start_period": "30s"}

DOCKERFILE = f"""\
# The devnet node image: build it from a bitcell-sim checkout (see README.md).
FROM python:3.11-slim
COPY . /src
RUN pip install --no-cache-dir /src && rm -rf /src
VOLUME {DATA_DIR}
CMD ["python", "-m", "bitcell_sim.node", "--help"]
"""


def compose_document(topology: Topology, program: NodeProgram) -> dict[str, Any]:
    services: dict[str, Any] = {}
    for node in topology.node_names:
        spec, ports = topology.nodes[node], program.ports(topology, node)
        services[node] = {
            "image": program.image,
            "command": program.command(topology, node),
            "hostname": node,
            "restart": "unless-stopped",
            "ports": [
                f"{spec.rpc_port}:{ports.rpc}",
                f"{spec.p2p_port}:{ports.p2p}",
                f"{spec.metrics_port}:{ports.metrics}",
            ],
            "volumes": [f"./config:{CONFIG_DIR}:ro", f"{node}-data:{DATA_DIR}"],
            "healthcheck": {"test": ["CMD", *program.health_command(topology, node)], **HEALTH},
            "labels": node_labels(topology, node),
            "networks": [NETWORK],
        }
    return {
        "services": services,
        "networks": {NETWORK: {"driver": "bridge"}},
        "volumes": {f"{node}-data": {} for node in topology.node_names},
    }


def compose_files(
    topology: Topology, program: NodeProgram, genesis_time_unix_s: float, keys: P2PKeys
) -> dict[str, str]:
    """Every file of the compose export, by path relative to the output folder."""
    files = {
        "docker-compose.yml": _yaml(compose_document(topology, program)),
        "config/topology.yaml": dump_topology(topology),
        "README.md": _readme(topology, program),
    }
    if program.kind == "devnet":
        files["Dockerfile"] = DOCKERFILE
        for node in topology.node_names:
            config = node_config(topology, node, genesis_time_unix_s, keys)
            files[f"config/{node}.json"] = _json(config)
            files[f"config/{P2PKeys.file_name(node)}"] = keys.secrets[node]
    return files


def _yaml(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def _json(document: Any) -> str:
    return json.dumps(document, indent=2) + "\n"


def _readme(topology: Topology, program: NodeProgram) -> str:
    name = topology.general.name
    first = topology.node_names[0]
    rpc = topology.nodes[first].rpc_port
    build = (
        "Build the node image once, from a bitcell-sim checkout:\n\n"
        f"    docker build -t {program.image} -f {{this folder}}/Dockerfile .\n\n"
        if program.kind == "devnet"
        else f"The services run the real BitCell node from the image `{program.image}`.\n\n"
    )
    return f"""# {name} as a docker-compose project

One service per node of the topology `{name}` ({len(topology.nodes)} nodes), named like the node,
each publishing its RPC, P2P and metrics ports on the host as the topology gives them, its chain
in the volume `<node>-data`, its configuration in `config/`.

{build}Start, watch, stop:

    docker-compose -p {name} up -d
    docker-compose -p {name} ps          # every service healthy after ~30 s
    curl -s -X POST -H 'Content-Type: application/json' \\
      -d '{{"jsonrpc":"2.0","method":"eth_blockNumber","id":1}}' http://127.0.0.1:{rpc}/rpc
    docker-compose -p {name} down        # add -v to delete the chains too

Compose puts every node on one bridge network: there is no inter-region latency here (use the
devnet, or Kubernetes with the Chaos Mesh manifests, for that). The health check asks
`{program.health_path}` on each node's metrics port.
"""
