"""The alert rules, generated from a topology: every alert the seed names, its defects fixed.

``alert_rules(topology)`` gives one ``AlertRule`` per alert (expression, ``for``, the seed's
``severity`` and ``component`` labels, a ``priority`` P0/P1/P2 for routing, annotations);
``rules_document`` is the Prometheus rule file. Each fix of the seed's rules is said where the
rule is made; docs/monitoring.md has the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bitcell_sim.topology import Topology

#: The scrape job of the nodes, and of Prometheus and Alertmanager themselves.
NODE_JOB = "bitcell"
PROMETHEUS_JOB = "prometheus"
ALERTMANAGER_JOB = "alertmanager"
NODES = f'job="{NODE_JOB}"'

#: Seed thresholds (FACTS §5.3).
NODE_DOWN_RATE = 0.3
OUT_OF_SYNC_PCT = 95
BANNED_RATE = 0.2
DEGRADED_SHARE = 0.5
#: HighPendingTransactions at this share of the pool (the seed's 1000 of BitCell's 10,000).
PENDING_SHARE = 0.1
#: ChainNotProgressing looks this many rounds back (at least four scrapes) by default.
STALL_ROUNDS = 10
STALL_SCRAPES = 4


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule: ``expr`` true for ``for_s`` seconds fires it."""

    name: str
    expr: str
    for_s: float
    severity: str
    priority: str
    component: str
    summary: str
    description: str

    @property
    def labels(self) -> dict[str, str]:
        return {"severity": self.severity, "priority": self.priority, "component": self.component}

    def to_rule(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": prom_duration(self.for_s),
            "labels": self.labels,
            "annotations": {"summary": self.summary, "description": self.description},
        }


def prom_duration(seconds: float) -> str:
    """A duration as Prometheus, Alertmanager and HAProxy write it: ``90 -> "90s"``."""
    millis = round(seconds * 1000)
    for unit, scale in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis and millis % scale == 0:
            return f"{millis // scale}{unit}"
    return f"{millis}ms"


def _number(value: float) -> str:
    return f"{value:.6g}"


def _node_regex(names: list[str]) -> str:
    """A PromQL raw string (backticks: no escapes of its own) matching exactly ``names``."""
    return "`" + "|".join(re.escape(name) for name in names) + "`"


def chain_stall_window_s(topology: Topology) -> float:
    """ChainNotProgressing's look-back: the topology's, else ten rounds (four scrapes at least)."""
    spec = topology.monitoring
    if spec.chain_stall_window_s is not None:
        return spec.chain_stall_window_s
    return max(STALL_ROUNDS * topology.protocol.round_s, STALL_SCRAPES * spec.scrape_interval_s)


def pending_threshold(topology: Topology) -> int:
    return max(1, round(PENDING_SHARE * topology.protocol.tx_pool_capacity))


def low_peer_thresholds(topology: Topology) -> dict[int, list[str]]:
    """Nodes by their LowPeerCount threshold: ``low_peer_count``, but never more than the peers
    a node has in the peer graph (a node with one configured peer is not short of peers with
    one). Nodes without peers (a one-node network) are left out."""
    groups: dict[int, list[str]] = {}
    for node in topology.node_names:
        degree = len(topology.peer_map[node])
        if degree:
            groups.setdefault(min(topology.monitoring.low_peer_count, degree), []).append(node)
    return groups


def _low_peer_expr(topology: Topology) -> str:
    terms = [
        f"bitcell_peer_count{{{NODES},node=~{_node_regex(nodes)}}} < {threshold}"
        for threshold, nodes in sorted(low_peer_thresholds(topology).items())
    ]
    return " or ".join(f"({term})" for term in terms) if len(terms) > 1 else terms[0]


def cross_region_thresholds(topology: Topology) -> dict[tuple[str, str], float]:
    """Per ordered pair of regions joined by a peer link: the topology's RTT + the margin."""
    pairs: dict[tuple[str, str], float] = {}
    for a, b in topology.peer_edges:
        ra, rb = topology.nodes[a].region, topology.nodes[b].region
        if ra != rb:
            limit_s = topology.rtt_matrix_s[(ra, rb)] + topology.monitoring.latency_margin_s
            pairs[(ra, rb)] = pairs[(rb, ra)] = limit_s
    return dict(sorted(pairs.items()))


def _latency_expr(topology: Topology) -> str | None:
    terms = [
        f'bitcell_peer_rtt_seconds{{{NODES},region="{a}",peer_region="{b}"}} > {_number(limit)}'
        for (a, b), limit in cross_region_thresholds(topology).items()
    ]
    if not terms:
        return None
    return " or ".join(f"({term})" for term in terms) if len(terms) > 1 else terms[0]


def alert_rules(topology: Topology) -> tuple[AlertRule, ...]:
    """Every alert of the seed for ``topology``, in the seed's order.

    LowPeerCount and NoPeers are left out of a network whose nodes have no peers, and
    HighCrossRegionLatency out of one without cross-region links: they could never be true.
    """
    spec = topology.monitoring
    window = prom_duration(chain_stall_window_s(topology))
    has_peers = bool(low_peer_thresholds(topology))
    latency = _latency_expr(topology)

    def rule(
        name: str,
        expr: str,
        severity: str,
        priority: str,
        component: str,
        summary: str,
        description: str,
    ) -> AlertRule:
        return AlertRule(
            name, expr, spec.for_s(name), severity, priority, component, summary, description
        )

    rules = [
        rule(
            "NodeDown",
            f"up{{{NODES}}} == 0",
            "critical",
            "P1",
            "node",
            "Node {{ $labels.node }} is down",
            "Prometheus cannot scrape {{ $labels.node }} ({{ $labels.region }}).",
        ),
        # (1 - avg(up)) is the share of nodes down; the seed's count(up == 0) / count(up)
        # means the same but returns nothing at all when no node is down.
        rule(
            "HighNodeDownRate",
            f"1 - avg(up{{{NODES}}}) > {NODE_DOWN_RATE}",
            "critical",
            "P0",
            "cluster",
            f"More than {NODE_DOWN_RATE:.0%} of the nodes are down",
            "{{ $value | humanizePercentage }} of the nodes cannot be scraped.",
        ),
        # A height is a gauge: the seed's rate() of it is meaningless. changes() counts its
        # steps; none within the window means no new block.
        rule(
            "ChainNotProgressing",
            f"changes(bitcell_chain_height{{{NODES}}}[{window}]) == 0",
            "warning",
            "P2",
            "consensus",
            "Chain not progressing on {{ $labels.node }}",
            f"The chain height of {{{{ $labels.node }}}} has not changed for {window}.",
        ),
        rule(
            "NodeOutOfSync",
            f"bitcell_sync_progress{{{NODES}}} < {OUT_OF_SYNC_PCT}",
            "warning",
            "P2",
            "sync",
            "Node {{ $labels.node }} is out of sync",
            '{{ $labels.node }} holds {{ $value | printf "%.1f" }} % of the best height.',
        ),
    ]
    if has_peers:
        rules += [
            rule(
                "LowPeerCount",
                _low_peer_expr(topology),
                "warning",
                "P2",
                "network",
                "Node {{ $labels.node }} has few peers",
                "{{ $labels.node }} is connected to {{ $value }} peer(s).",
            ),
            rule(
                "NoPeers",
                f"bitcell_peer_count{{{NODES}}} == 0",
                "critical",
                "P1",
                "network",
                "Node {{ $labels.node }} has no peers",
                "{{ $labels.node }} is connected to no peer.",
            ),
        ]
    rules += [
        # The seed's bitcell_proof_gen_time_ms is not exported by any node.
        rule(
            "HighProofGenerationTime",
            f"bitcell_proof_generation_seconds{{{NODES}}} > 30",
            "warning",
            "P2",
            "zkp",
            "Slow proof generation on {{ $labels.node }}",
            "The last proof took {{ $value | humanizeDuration }}.",
        ),
        rule(
            "HighPendingTransactions",
            f"bitcell_pending_txs{{{NODES}}} > {pending_threshold(topology)}",
            "warning",
            "P2",
            "mempool",
            "Many pending transactions on {{ $labels.node }}",
            "{{ $labels.node }} holds {{ $value }} transactions in its pool.",
        ),
        rule(
            "HighBannedMinerRate",
            f"bitcell_banned_miners{{{NODES}}} / (bitcell_active_miners{{{NODES}}} + "
            f"bitcell_banned_miners{{{NODES}}}) > {BANNED_RATE}",
            "warning",
            "P2",
            "ebsl",
            "Many banned miners seen by {{ $labels.node }}",
            "{{ $value | humanizePercentage }} of the miners are banned.",
        ),
        rule(
            "NoActiveMiners",
            f"bitcell_active_miners{{{NODES}}} == 0",
            "critical",
            "P0",
            "ebsl",
            "No active miners seen by {{ $labels.node }}",
            "No validator took part in the last round as {{ $labels.node }} sees it.",
        ),
        # The seed's count(up == 1) by (region) == 0 returns no series when no node of the
        # region is up, so it never fires: sum(up) by (region) is 0 then.
        rule(
            "RegionDown",
            f"sum by (region) (up{{{NODES}}}) == 0",
            "critical",
            "P0",
            "region",
            "Region {{ $labels.region }} is down",
            "No node of {{ $labels.region }} can be scraped.",
        ),
        # At least half of a region down, but not all of it (that is RegionDown). The seed's
        # "> 0.5" never fires for a two-node region short of the whole region.
        rule(
            "RegionDegraded",
            f"(count by (region) (up{{{NODES}}} == 0) / count by (region) (up{{{NODES}}})) "
            f">= {DEGRADED_SHARE} and on (region) sum by (region) (up{{{NODES}}}) > 0",
            "warning",
            "P2",
            "region",
            "Region {{ $labels.region }} is degraded",
            "{{ $value | humanizePercentage }} of the nodes of {{ $labels.region }} are down.",
        ),
    ]
    if latency is not None:
        # The seed's scrape_duration_seconds > 0.2 fires forever from a far region; this
        # compares each node's measured RTT to a peer of another region with that pair's RTT.
        rules.append(
            rule(
                "HighCrossRegionLatency",
                latency,
                "warning",
                "P2",
                "network",
                "High latency {{ $labels.node }} -> {{ $labels.peer }}",
                "Round trip {{ $labels.region }} -> {{ $labels.peer_region }} is "
                "{{ $value | humanizeDuration }}, more than "
                f"{prom_duration(spec.latency_margin_s)} above the expected RTT.",
            )
        )
    rules += [
        # Prometheus cannot page about its own death: this catches its self-scrape failing.
        rule(
            "PrometheusDown",
            f'up{{job="{PROMETHEUS_JOB}"}} == 0',
            "critical",
            "P1",
            "monitoring",
            "Prometheus cannot scrape itself",
            "The self-scrape of Prometheus fails.",
        ),
        # The seed had no alertmanager scrape job, so this could never fire.
        rule(
            "AlertmanagerDown",
            f'up{{job="{ALERTMANAGER_JOB}"}} == 0',
            "warning",
            "P2",
            "monitoring",
            "Alertmanager is down",
            "Prometheus cannot scrape Alertmanager; notifications stop.",
        ),
    ]
    return tuple(rules)


#: Rule groups by component, as the seed groups them (node, regional, system).
GROUPS = {
    "bitcell_node_alerts": ("node", "cluster", "consensus", "sync", "network", "zkp", "mempool",
                            "ebsl"),
    "bitcell_regional_alerts": ("region",),
    "bitcell_system_alerts": ("monitoring",),
}  # fmt: skip


def rules_document(topology: Topology) -> dict[str, Any]:
    """The Prometheus rule file: the seed's three groups, all at the evaluation interval (one
    interval keeps every alert's timing a function of the same two numbers)."""
    rules = alert_rules(topology)
    groups = []
    for name, components in GROUPS.items():
        members = [r.to_rule() for r in rules if r.component in components]
        groups.append(
            {
                "name": name,
                "interval": prom_duration(topology.monitoring.evaluation_interval_s),
                "rules": members,
            }
        )
    return {"groups": groups}
