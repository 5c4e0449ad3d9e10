"""Prometheus, Alertmanager and HAProxy configurations, generated from a topology.

``prometheus_config`` scrapes every node (``region``, ``node``, ``role`` labels; each peer's
region added to the peer-RTT series), Prometheus itself, Alertmanager and HAProxy's exporter.
``alertmanager_config`` has the seed's receivers, routes and inhibitions (0.25 matcher syntax),
every receiver a webhook of ours. ``haproxy_config`` is the health-checked RPC front door.
:class:`Addresses` says where the parts are: on the devnet's host (loopback) by default, or each
by its service name in a deployment (the compose services, the Kubernetes Services).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bitcell_sim.monitoring.alerts import (
    ALERTMANAGER_JOB,
    NODE_JOB,
    PROMETHEUS_JOB,
    prom_duration,
)
from bitcell_sim.topology import Topology

RULES_FILE = "alerts.yml"
HAPROXY_JOB = "haproxy"
#: Where the HAProxy front door routes one region's nodes: ``/region/<region>/rpc``.
REGION_PREFIX = "/region/"
#: HAProxy's connection retries to the same server (its default, written out): a call routed to
#: a dead server is retried this often, min(timeout connect, 1 s) apart, before it fails.
RETRIES = 3
CONNECT_TIMEOUT_S = 5.0
#: Receivers of the seed (Slack and PagerDuty there; our webhook receiver here, one path each).
RECEIVERS = ("team-oncall", "pagerduty-critical", "pagerduty-oncall", "slack-warnings",
             "slack-regional")  # fmt: skip


#: The stack's own parts: their service names in a deployment, their process names on the devnet.
PROMETHEUS, ALERTMANAGER, WEBHOOK, HAPROXY = "prometheus", "alertmanager", "webhook", "haproxy"
STACK = (PROMETHEUS, ALERTMANAGER, WEBHOOK, HAPROXY)


@dataclass(frozen=True)
class Addresses:
    """Where the stack reaches the nodes and its own parts, and the address it listens on.

    ``host`` None: each node by its own name and each part by its name in :data:`STACK`, as a
    deployment's service names; HAProxy then finds the servers by DNS, at start and (with
    ``resolve_at_runtime``, for containers whose address may change) again while it runs.
    """

    host: str | None
    listen: str
    resolve_at_runtime: bool = False
    #: Metrics ports the scrapes use instead of the topology's, by node (a compose project's
    #: services reach each other on the container ports, not the published ones).
    metrics_ports: Mapping[str, int] = field(default_factory=dict)
    #: Whether the nodes serve ``GET /health`` on the RPC port (the devnet's do; the real
    #: BitCell node answers 404 there, so HAProxy checks it with a JSON-RPC call instead).
    nodes_serve_health: bool = True

    @classmethod
    def on_host(cls, topology: Topology) -> Addresses:
        """The devnet's: every part and node on its host (loopback)."""
        return cls(topology.devnet.host, topology.devnet.host)

    @classmethod
    def by_name(
        cls,
        resolve_at_runtime: bool = False,
        metrics_ports: Mapping[str, int] | None = None,
        nodes_serve_health: bool = True,
    ) -> Addresses:
        """A deployment's: everything by service name, listening on every interface."""
        return cls(
            None, "0.0.0.0", resolve_at_runtime, dict(metrics_ports or {}), nodes_serve_health
        )

    def of(self, name: str, port: int) -> str:
        return f"{self.host or name}:{port}"


def prometheus_config(topology: Topology, addresses: Addresses | None = None) -> dict[str, Any]:
    """``prometheus.yml``: the nodes, Prometheus, Alertmanager and HAProxy."""
    spec, at = topology.monitoring, addresses or Addresses.on_host(topology)
    node_targets = [
        {
            "targets": [at.of(name, at.metrics_ports.get(name, node.metrics_port))],
            "labels": {"region": node.region, "node": name, "role": node.role},
        }
        for name, node in topology.nodes.items()
    ]
    # The RTT series are labelled by the peer's name; the peer's region makes the
    # cross-region latency rule a plain label match.
    peer_regions = [
        {
            "source_labels": ["__name__", "peer"],
            "regex": f"bitcell_peer_rtt_.+;{re.escape(name)}",
            "target_label": "peer_region",
            "replacement": node.region,
        }
        for name, node in topology.nodes.items()
    ]
    return {
        "global": {
            "scrape_interval": prom_duration(spec.scrape_interval_s),
            "scrape_timeout": prom_duration(spec.scrape_timeout_s),
            "evaluation_interval": prom_duration(spec.evaluation_interval_s),
            "external_labels": {"cluster": topology.general.name, "monitor": "bitcell-monitor"},
        },
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [at.of(ALERTMANAGER, spec.alertmanager_port)]}]}
            ]
        },
        "rule_files": [RULES_FILE],
        "scrape_configs": [
            {
                "job_name": PROMETHEUS_JOB,
                "static_configs": [{"targets": [at.of(PROMETHEUS, spec.prometheus_port)]}],
            },
            {
                "job_name": ALERTMANAGER_JOB,
                "static_configs": [{"targets": [at.of(ALERTMANAGER, spec.alertmanager_port)]}],
            },
            {
                "job_name": NODE_JOB,
                "static_configs": node_targets,
                "metric_relabel_configs": peer_regions,
            },
            {
                "job_name": HAPROXY_JOB,
                "static_configs": [{"targets": [at.of(HAPROXY, spec.haproxy_stats_port)]}],
            },
        ],
    }


def webhook_url(topology: Topology, receiver: str, addresses: Addresses | None = None) -> str:
    at = addresses or Addresses.on_host(topology)
    return f"http://{at.of(WEBHOOK, topology.monitoring.webhook_port)}/{receiver}"


def alertmanager_config(topology: Topology, addresses: Addresses | None = None) -> dict[str, Any]:
    """``alertmanager.yml``: the seed's routes by priority and component and its inhibitions,
    with two fixes: the regional route continues (the seed's warning route swallowed
    RegionDegraded before it reached the regional receiver), and NoPeers mutes LowPeerCount
    of the same node (one page for one cause)."""
    spec = topology.monitoring
    receivers = [
        {
            "name": name,
            "webhook_configs": [
                {
                    "url": webhook_url(topology, name, addresses),
                    "send_resolved": True,
                    "max_alerts": 0,
                }
            ],
        }
        for name in RECEIVERS
    ]
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "team-oncall",
            "group_by": ["alertname", "region", "severity"],
            "group_wait": prom_duration(spec.group_wait_s),
            "group_interval": prom_duration(spec.group_interval_s),
            "repeat_interval": prom_duration(spec.repeat_interval_s),
            "routes": [
                {"matchers": ['priority="P0"'], "receiver": "pagerduty-critical", "continue": True},
                {"matchers": ['priority="P1"'], "receiver": "pagerduty-oncall", "continue": True},
                {
                    "matchers": ['component="region"'],
                    "receiver": "slack-regional",
                    "group_by": ["region"],
                    "continue": True,
                },
                {"matchers": ['priority="P2"'], "receiver": "slack-warnings"},
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": ['alertname="RegionDown"'],
                "target_matchers": ['alertname="NodeDown"'],
                "equal": ["region"],
            },
            {
                "source_matchers": ['alertname="NoActiveMiners"'],
                "target_matchers": ['alertname="ChainNotProgressing"'],
                "equal": ["node"],
            },
            {
                "source_matchers": ['alertname="NoPeers"'],
                "target_matchers": ['alertname="LowPeerCount"'],
                "equal": ["node"],
            },
        ],
        "receivers": receivers,
    }


#: The JSON-RPC call that checks a node without ``/health`` (the real BitCell node).
HEALTH_RPC_BODY = '{"jsonrpc":"2.0","method":"eth_blockNumber","params":[],"id":1}'


def _ident(name: str) -> str:
    """``name`` as an HAProxy identifier (letters, digits, ``-_.:``; anything else ``_``)."""
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", name)


def region_backend(region: str) -> str:
    return f"rpc_{_ident(region)}"


def _backend(
    name: str, servers: list[tuple[str, str]], topology: Topology, at: Addresses, *extra: str
) -> list[str]:
    check = topology.monitoring.health_check
    # By name: a server whose name does not resolve yet (a node still starting) waits for
    # DNS instead of failing HAProxy's start.
    dns = "" if at.host else " init-addr last,libc,none"
    dns += " resolvers dns" if at.resolve_at_runtime else ""
    if at.nodes_serve_health:
        probe = ["    option httpchk GET /health", "    http-check expect status 200"]
    else:  # a node up and serving RPC answers with a result
        probe = [
            "    option httpchk",
            f"    http-check send meth POST uri /rpc hdr Content-Type application/json "
            f"body '{HEALTH_RPC_BODY}'",
            "    http-check expect status 200",
            "    http-check expect rstring '\"result\":'",
        ]
    lines = [
        f"backend {name}",
        "    balance roundrobin",
        *probe,
        f"    default-server inter {prom_duration(check.inter_s)} fall {check.fall} "
        f"rise {check.rise}{dns}",
        *extra,
    ]
    lines += [f"    server {_ident(server)} {address} check" for server, address in servers]
    return lines


def haproxy_config(topology: Topology, addresses: Addresses | None = None) -> str:
    """``haproxy.cfg``: ``/rpc`` over every node, ``/region/<region>/rpc`` over one region's,
    each server health-checked with ``GET /health``, or a JSON-RPC ``eth_blockNumber`` for
    nodes without it (inter/fall/rise from the topology); the
    stats page at ``/`` and HAProxy's Prometheus exporter at ``/metrics`` on the stats port."""
    spec, at = topology.monitoring, addresses or Addresses.on_host(topology)
    check_timeout = prom_duration(min(2.0, spec.health_check.inter_s))
    servers = {name: (name, at.of(name, node.rpc_port)) for name, node in topology.nodes.items()}
    lines = [
        "# Generated by bitcell-sim from the topology: do not edit.",
        "global",
        "    log stdout format raw local0",
        "    maxconn 4096",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlognull",
        "    option dontlog-normal",
        f"    retries {RETRIES}",
        f"    timeout connect {prom_duration(CONNECT_TIMEOUT_S)}",
        "    timeout client 50s",
        "    timeout server 50s",
        f"    timeout check {check_timeout}",
        "",
        *(
            ["resolvers dns", "    parse-resolv-conf", "    hold valid 10s", ""]
            if at.resolve_at_runtime
            else []
        ),
        "frontend stats",
        f"    bind {at.listen}:{spec.haproxy_stats_port}",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    stats enable",
        "    stats uri /",
        "    stats refresh 10s",
        "",
        "frontend rpc",
        f"    bind {at.listen}:{spec.haproxy_port}",
    ]
    regions = [r for r in topology.regions if topology.nodes_in_region(r)]
    for region in regions:
        backend = region_backend(region)
        lines.append(f"    use_backend {backend} if {{ path_beg {REGION_PREFIX}{region}/ }}")
    lines += ["    default_backend rpc", ""]
    lines += _backend("rpc", list(servers.values()), topology, at)
    # The prefix is dropped in the backend: ACLs are evaluated when used, so a rewrite in the
    # frontend would change what use_backend sees.
    strip = f"    http-request replace-path ^{REGION_PREFIX}[^/]+(/.*)$ \\1"
    for region in regions:
        members = [servers[n] for n in topology.nodes_in_region(region)]
        lines += ["", *_backend(region_backend(region), members, topology, at, strip)]
    return "\n".join(lines) + "\n"
