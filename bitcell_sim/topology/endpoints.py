"""The endpoints file: where each node of a deployed topology answers, its RPC and metrics URL.

YAML or JSON (``deploy export`` writes a template; ``measure`` and ``load --endpoints`` read it)::

    genesis_time_unix_s: 1893499200.0   # optional: the network's genesis, Unix seconds
    nodes:
      us-east-1a: {rpc: "http://10.0.1.5:8545", metrics: "http://10.0.1.5:9100/metrics"}

:func:`load_endpoints` reads one against a topology (every node and no other, http(s) URLs) and
raises ``DeployError`` listing each problem with its field path; :func:`endpoints_document`
writes one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bitcell_sim.errors import DeployError
from bitcell_sim.topology.schema import Topology

#: Largest endpoints file read (it names a few URLs per node).
MAX_FILE_BYTES = 1 << 20
_NODE_KEYS = ("rpc", "metrics")


@dataclass(frozen=True)
class NodeUrls:
    """One node's JSON-RPC base URL (``/rpc`` is appended by the client) and metrics URL
    (None: the node's metrics are not reachable; RPC answers stand in for them)."""

    node: str
    rpc_url: str
    metrics_url: str | None


@dataclass(frozen=True)
class Endpoints:
    """Every node's URLs, in topology order, and the genesis time if the file gives it."""

    nodes: Mapping[str, NodeUrls]
    genesis_time_unix_s: float | None = None
    source: str = ""


def _url_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"must be a URL string, not {type(value).__name__}"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{value!r} is not an http:// or https:// URL with a host"
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        return f"{value!r} has a bad port"
    return None


def parse_endpoints(data: Any, topology: Topology, source: str = "") -> Endpoints:
    """The endpoints of ``data`` (the file's parsed content) for ``topology``."""
    problems: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        raise _error(source, [("", "expected a mapping with a 'nodes' key")])
    for key in sorted(set(data) - {"nodes", "genesis_time_unix_s"}):
        problems.append((str(key), "unknown key (expected nodes, genesis_time_unix_s)"))
    genesis = data.get("genesis_time_unix_s")
    if genesis is not None and (
        isinstance(genesis, bool)
        or not isinstance(genesis, int | float)
        or not math.isfinite(genesis)
        or genesis <= 0
    ):
        problems.append(("genesis_time_unix_s", f"must be Unix seconds > 0, not {genesis!r}"))
    nodes = data.get("nodes")
    found: dict[str, NodeUrls] = {}
    if not isinstance(nodes, dict):
        problems.append(("nodes", "must map each node name to its rpc and metrics URLs"))
    else:
        for name in nodes:
            if name not in topology.nodes:
                problems.append(
                    (f"nodes.{name}", f"not a node of topology {topology.general.name!r}")
                )
        for name in topology.node_names:
            entry = nodes.get(name)
            path = f"nodes.{name}"
            if entry is None:
                problems.append((path, "missing: every node of the topology needs its URLs"))
                continue
            if not isinstance(entry, dict):
                problems.append((path, "must be a mapping with rpc (and metrics) URLs"))
                continue
            for key in sorted(set(entry) - set(_NODE_KEYS)):
                problems.append((f"{path}.{key}", "unknown key (expected rpc, metrics)"))
            if "rpc" not in entry:
                problems.append((f"{path}.rpc", "missing"))
            for key in _NODE_KEYS:
                if entry.get(key) is not None and (problem := _url_problem(entry[key])):
                    problems.append((f"{path}.{key}", problem))
            found[name] = NodeUrls(name, str(entry.get("rpc", "")), entry.get("metrics"))
    if problems:
        raise _error(source, problems)
    return Endpoints(
        nodes={n: found[n] for n in topology.node_names},
        genesis_time_unix_s=None if genesis is None else float(genesis),
        source=source,
    )


def load_endpoints(path: Path, topology: Topology) -> Endpoints:
    """Read the endpoints file ``path`` (YAML or JSON) for ``topology``."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise _error(str(path), [("", f"larger than {MAX_FILE_BYTES} bytes")])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeployError(f"endpoints file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeployError(f"endpoints file {path}: cannot read it: {exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise DeployError(f"endpoints file {path}: not valid YAML/JSON: {exc}") from None
    return parse_endpoints(data, topology, str(path))


def endpoints_document(
    topology: Topology,
    urls: Mapping[str, tuple[str, str | None]],
    genesis_time_unix_s: float | None = None,
) -> str:
    """The YAML of an endpoints file: ``urls`` maps each node to its (rpc, metrics) URL."""
    nodes = {}
    for name in topology.node_names:
        rpc, metrics = urls[name]
        nodes[name] = {"rpc": rpc, "metrics": metrics}
    data: dict[str, Any] = {}
    if genesis_time_unix_s is not None:
        data["genesis_time_unix_s"] = genesis_time_unix_s
    data["nodes"] = nodes
    head = (
        f"# Where each node of {topology.general.name} answers, for 'bitcell-sim measure' and\n"
        "# 'bitcell-sim load --endpoints': replace the hosts with the addresses that reach them.\n"
    )
    return head + yaml.safe_dump(data, sort_keys=False)


def _error(source: str, problems: list[tuple[str, str]]) -> DeployError:
    lines = [f"invalid endpoints file {source}:" if source else "invalid endpoints file:"]
    lines += [f"  {path}: {message}" if path else f"  {message}" for path, message in problems]
    return DeployError("\n".join(lines))
