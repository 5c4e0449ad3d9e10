"""Writing a deployment: the files of one format for a topology, into a new folder.

:func:`deployment_files` renders the files of ``compose``, ``kubernetes`` or ``shadow`` by path;
:func:`export_deployment` checks the names, writes them into ``outdir`` (refusing a non-empty
folder unless ``overwrite``; secret key files readable by their owner only) and returns an
:class:`Export`. :func:`parse_genesis_time` reads the
shared genesis every node of a deployment needs (Unix seconds or ISO 8601).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bitcell_sim.deploy.chaos import fault_chaos, fault_name, latency_chaos, scenario_workflow
from bitcell_sim.deploy.compose import compose_files
from bitcell_sim.deploy.kubernetes import kubernetes_manifests, kubernetes_readme
from bitcell_sim.deploy.monitoring import monitoring_manifests
from bitcell_sim.deploy.naming import check_names, default_namespace, pod_names
from bitcell_sim.deploy.program import KEY_FILE_SUFFIX, NodeProgram, P2PKeys, check_program
from bitcell_sim.deploy.shadow import shadow_export
from bitcell_sim.errors import DeployError
from bitcell_sim.topology import Topology
from bitcell_sim.topology.endpoints import endpoints_document

FORMATS = ("compose", "kubernetes", "shadow")
#: The Kubernetes manifests; they hold the P2P key Secret, so like the key files only their owner
#: may read them.
MANIFESTS_FILE = "bitcell.yaml"
#: The template of ``measure --endpoints`` / ``load --endpoints`` each export writes.
ENDPOINTS_FILE = "endpoints.yaml"
#: The default genesis is this far after the export, on a whole minute.
DEFAULT_GENESIS_LEAD_S = 300.0


@dataclass(frozen=True)
class Export:
    format: str
    outdir: Path
    files: tuple[Path, ...]
    #: What the format could not carry over (e.g. faults Shadow cannot express).
    left_out: tuple[str, ...] = ()


def parse_genesis_time(text: str | None, now_unix_s: float) -> float:
    """Unix seconds or an ISO 8601 time (UTC unless it has an offset); ``None``: the first whole
    minute at least five minutes after ``now_unix_s``."""
    if text is None:
        return math.ceil((now_unix_s + DEFAULT_GENESIS_LEAD_S) / 60.0) * 60.0
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DeployError(
            f"bad genesis time {text!r}: give Unix seconds or an ISO 8601 time "
            "such as 2030-01-01T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def endpoints_template(topology: Topology, genesis_time_unix_s: float, host: str) -> str:
    """The endpoints file of a deployment whose node ``{node}`` answers at ``host`` (a format
    string) on the topology's RPC and metrics ports."""
    urls = {}
    for name, node in topology.nodes.items():
        at = host.format(node=name)
        urls[name] = (f"http://{at}:{node.rpc_port}", f"http://{at}:{node.metrics_port}/metrics")
    return endpoints_document(topology, urls, genesis_time_unix_s)


def _documents(manifests: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(manifests, sort_keys=False)


def _kubernetes_files(
    topology: Topology,
    program: NodeProgram,
    genesis_time_unix_s: float,
    namespace: str,
    single_cluster: bool,
    keys: P2PKeys,
) -> dict[str, str]:
    pods = pod_names(topology)
    manifests = kubernetes_manifests(
        topology, program, genesis_time_unix_s, namespace, keys, single_cluster=single_cluster
    )
    files = {
        MANIFESTS_FILE: _documents(manifests),
        "monitoring.yaml": _documents(monitoring_manifests(topology, program, namespace)),
        ENDPOINTS_FILE: endpoints_template(
            topology, genesis_time_unix_s, f"{{node}}.{namespace}.svc"
        ),
        "chaos/latency.yaml": _documents(latency_chaos(topology, namespace)),
        "README.md": kubernetes_readme(topology, program, namespace),
    }
    for index, fault in enumerate(topology.faults):
        objects = fault_chaos(topology, index, fault, namespace, pods)
        if objects:
            files[f"chaos/faults/{fault_name(index, fault)}.yaml"] = _documents(objects)
    workflow = scenario_workflow(topology, namespace, pods)
    if workflow is not None:
        files["chaos/scenario.yaml"] = _documents([workflow])
    return files


def deployment_files(
    topology: Topology,
    fmt: str,
    program: NodeProgram,
    genesis_time_unix_s: float,
    *,
    namespace: str | None = None,
    single_cluster: bool = False,
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The files of ``fmt`` by relative path, and what the format left out."""
    if fmt not in FORMATS:
        raise DeployError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    check_names(topology, namespace)
    check_program(topology, program)
    keys = P2PKeys.generate(topology)
    if fmt == "compose":
        files = compose_files(topology, program, genesis_time_unix_s, keys)
        # The ports are published on the Docker host: this is its loopback.
        files[ENDPOINTS_FILE] = endpoints_template(topology, genesis_time_unix_s, "127.0.0.1")
        return files, ()
    if fmt == "kubernetes":
        ns = namespace or default_namespace(topology)
        files = _kubernetes_files(topology, program, genesis_time_unix_s, ns, single_cluster, keys)
        return files, ()
    shadow = shadow_export(topology, program, keys)
    return shadow.files, shadow.left_out


def export_deployment(
    topology: Topology,
    fmt: str,
    outdir: Path,
    program: NodeProgram,
    genesis_time_unix_s: float,
    *,
    namespace: str | None = None,
    single_cluster: bool = False,
    overwrite: bool = False,
) -> Export:
    files, left_out = deployment_files(
        topology,
        fmt,
        program,
        genesis_time_unix_s,
        namespace=namespace,
        single_cluster=single_cluster,
    )
    if outdir.exists() and not outdir.is_dir():
        raise DeployError(f"{outdir} exists and is not a folder")
    if outdir.is_dir() and any(outdir.iterdir()) and not overwrite:
        raise DeployError(f"{outdir} is not empty; choose another folder or pass --force")
    written = []
    for relative, text in files.items():
        path = outdir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = relative.endswith(KEY_FILE_SUFFIX) or relative == MANIFESTS_FILE
        mode = 0o600 if secret else 0o644
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        os.fchmod(fd, mode)  # also when --force rewrites a file that had another mode
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        written.append(path)
    return Export(fmt, outdir, tuple(written), left_out)
