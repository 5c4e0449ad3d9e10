"""The Grafana dashboard (JSON) of a devnet's metrics, and the checks it must pass.

``dashboard(topology)`` is an importable Grafana dashboard (schema 38, a ``DS_PROMETHEUS``
input) whose panels query only series the nodes export (``protocol.metrics``) and ``up``.
``dashboard_problems`` checks the structure Grafana needs; ``metric_names`` reads the metric
names out of a PromQL expression, so tests can hold every query to what is exported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from bitcell_sim.monitoring.alerts import NODE_JOB
from bitcell_sim.protocol.metrics import (
    DEVNET_METRICS,
    NODE_METRICS,
    PEER_RTT_METRICS,
    MetricType,
)
from bitcell_sim.topology import Topology

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
GRID_COLUMNS = 24
SCHEMA_VERSION = 38

NODES = f'job="{NODE_JOB}"'
#: (title, unit, PromQL, legend): the seed's panels on metrics that exist, plus the devnet's.
PANELS: tuple[tuple[str, str, str, str], ...] = (
    ("Nodes up by region", "none", f"sum by (region) (up{{{NODES}}})", "{{region}}"),
    ("Chain height", "none", f"bitcell_chain_height{{{NODES}}}", "{{node}}"),
    ("Peers", "none", f"bitcell_peer_count{{{NODES}}}", "{{node}}"),
    ("Confirmed TPS", "none", f"max(rate(bitcell_txs_processed_total{{{NODES}}}[1m]))", "TPS"),
    ("Pending transactions", "none", f"bitcell_pending_txs{{{NODES}}}", "{{node}}"),
    ("Sync progress", "percent", f"bitcell_sync_progress{{{NODES}}}", "{{node}}"),
    (
        "Block propagation p95",
        "s",
        "histogram_quantile(0.95, sum by (le) "
        f"(rate(bitcell_block_propagation_seconds_bucket{{{NODES}}}[5m])))",
        "p95",
    ),
    (
        "RPC latency p99",
        "s",
        "histogram_quantile(0.99, sum by (le) "
        f"(rate(bitcell_rpc_request_duration_seconds_bucket{{{NODES}}}[5m])))",
        "p99",
    ),
    (
        "Peer RTT, cross-region",
        "s",
        f'bitcell_peer_rtt_seconds{{{NODES},peer_region!=""}}',
        "{{node}} -> {{peer}}",
    ),
    ("Bytes sent", "Bps", f"rate(bitcell_bytes_sent_total{{{NODES}}}[5m])", "{{node}}"),
    ("Bytes received", "Bps", f"rate(bitcell_bytes_received_total{{{NODES}}}[5m])", "{{node}}"),
    ("Active miners", "none", f"bitcell_active_miners{{{NODES}}}", "{{node}}"),
    ("Block build time", "s", f"bitcell_proof_generation_seconds{{{NODES}}}", "{{node}}"),
    ("Targets", "none", "up", "{{job}} {{instance}}"),
)
PANEL_WIDTH = 12
PANEL_HEIGHT = 8


def exported_metrics() -> frozenset[str]:
    """Every series name a devnet node exports (histograms with their suffixes), and ``up``."""
    names = {"up"}
    for spec in (*NODE_METRICS, *DEVNET_METRICS, *PEER_RTT_METRICS):
        if spec.type is MetricType.HISTOGRAM:
            names |= {f"{spec.name}_bucket", f"{spec.name}_sum", f"{spec.name}_count"}
        else:
            names.add(spec.name)
    return frozenset(names)


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without"})


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (functions, keywords and labels left out)."""
    text = _STRINGS.sub('""', expr)
    text = _LABEL_LISTS.sub(" ", _RANGES.sub(" ", _MATCHERS.sub(" ", text)))
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def dashboard(topology: Topology) -> dict[str, Any]:
    panels = []
    for index, (title, unit, expr, legend) in enumerate(PANELS):
        panels.append(
            {
                "id": index + 1,
                "type": "timeseries",
                "title": title,
                "datasource": DATASOURCE,
                "gridPos": {
                    "x": (index % 2) * PANEL_WIDTH,
                    "y": (index // 2) * PANEL_HEIGHT,
                    "w": PANEL_WIDTH,
                    "h": PANEL_HEIGHT,
                },
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": [
                    {"refId": "A", "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                ],
            }
        )
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "uid": f"bitcell-{re.sub(r'[^A-Za-z0-9-]', '-', topology.general.name)}"[:40],
        "title": f"BitCell {topology.general.name}",
        "tags": ["bitcell", "bitcell-sim"],
        "timezone": "utc",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def dashboard_problems(data: dict[str, Any]) -> list[str]:
    """What would keep Grafana from importing ``data``, or make a panel query nothing."""
    problems = []
    for key in ("uid", "title", "schemaVersion", "panels"):
        if key not in data:
            problems.append(f"missing {key!r}")
    ids: set[int] = set()
    for i, panel in enumerate(data.get("panels", [])):
        where = f"panels[{i}]"
        if panel.get("id") in ids:
            problems.append(f"{where}: duplicate id {panel.get('id')}")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
            problems.append(f"{where}: gridPos needs integer x, y, w, h")
        elif grid["x"] + grid["w"] > GRID_COLUMNS:
            problems.append(f"{where}: wider than the {GRID_COLUMNS}-column grid")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{where}: no query")
        for target in targets:
            unknown = metric_names(target.get("expr", "")) - exported_metrics()
            if unknown:
                problems.append(f"{where}: queries metrics no node exports: {sorted(unknown)}")
    return problems


def unknown_metrics(exprs: Iterable[str]) -> set[str]:
    """Metric names in ``exprs`` that no devnet node exports."""
    return set().union(*(metric_names(e) for e in exprs)) - exported_metrics()
