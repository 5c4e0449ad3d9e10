"""Prometheus, Alertmanager and HAProxy configurations, generated from a topology.

``prometheus_config`` scrapes every node (``region``, ``node``, ``role`` labels; each peer's
region added to the peer-RTT series), Prometheus itself, Alertmanager and HAProxy's exporter.
``alertmanager_config`` has the seed's receivers, routes and inhibitions (0.25 matcher syntax),
every receiver a webhook of ours. ``haproxy_config`` is the health-checked RPC front door.
Everything listens on and talks to the devnet's host (loopback) only.
"""

from __future__ import annotations

import re
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


def _target(host: str, port: int) -> str:
    return f"{host}:{port}"


def prometheus_config(topology: Topology) -> dict[str, Any]:
    """``prometheus.yml``: the nodes, Prometheus, Alertmanager and HAProxy, on the devnet host."""
    spec, host = topology.monitoring, topology.devnet.host
    node_targets = [
        {
            "targets": [_target(host, node.metrics_port)],
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
                {"static_configs": [{"targets": [_target(host, spec.alertmanager_port)]}]}
            ]
        },
        "rule_files": [RULES_FILE],
        "scrape_configs": [
            {
                "job_name": PROMETHEUS_JOB,
                "static_configs": [{"targets": [_target(host, spec.prometheus_port)]}],
            },
            {
                "job_name": ALERTMANAGER_JOB,
                "static_configs": [{"targets": [_target(host, spec.alertmanager_port)]}],
            },
            {
                "job_name": NODE_JOB,
                "static_configs": node_targets,
                "metric_relabel_configs": peer_regions,
            },
            {
                "job_name": HAPROXY_JOB,
                "static_configs": [{"targets": [_target(host, spec.haproxy_stats_port)]}],
            },
        ],
    }


def webhook_url(topology: Topology, receiver: str) -> str:
    return f"http://{_target(topology.devnet.host, topology.monitoring.webhook_port)}/{receiver}"


def alertmanager_config(topology: Topology) -> dict[str, Any]:
    """``alertmanager.yml``: the seed's routes by priority and component and its inhibitions,
    with two fixes: the regional route continues (the seed's warning route swallowed
    RegionDegraded before it reached the regional receiver), and NoPeers mutes LowPeerCount
    of the same node (one page for one cause)."""
    spec = topology.monitoring
    receivers = [
        {
            "name": name,
            "webhook_configs": [
                {"url": webhook_url(topology, name), "send_resolved": True, "max_alerts": 0}
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


def _ident(name: str) -> str:
    """``name`` as an HAProxy identifier (letters, digits, ``-_.:``; anything else ``_``)."""
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", name)


def region_backend(region: str) -> str:
    return f"rpc_{_ident(region)}"


def _backend(
    name: str, servers: list[tuple[str, str]], topology: Topology, *extra: str
) -> list[str]:
    check = topology.monitoring.health_check
    lines = [
        f"backend {name}",
        "    balance roundrobin",
        "    option httpchk GET /health",
        "    http-check expect status 200",
        f"    default-server inter {prom_duration(check.inter_s)} fall {check.fall} "
        f"rise {check.rise}",
        *extra,
    ]
    lines += [f"    server {_ident(server)} {address} check" for server, address in servers]
    return lines


def haproxy_config(topology: Topology) -> str:
    """``haproxy.cfg``: ``/rpc`` over every node, ``/region/<region>/rpc`` over one region's,
    each server health-checked with ``GET /health`` (inter/fall/rise from the topology); the
    stats page at ``/`` and HAProxy's Prometheus exporter at ``/metrics`` on the stats port."""
    spec, host = topology.monitoring, topology.devnet.host
    check_timeout = prom_duration(min(2.0, spec.health_check.inter_s))
    servers = {name: (name, _target(host, node.rpc_port)) for name, node in topology.nodes.items()}
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
        "frontend stats",
        f"    bind {_target(host, spec.haproxy_stats_port)}",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    stats enable",
        "    stats uri /",
        "    stats refresh 10s",
        "",
        "frontend rpc",
        f"    bind {_target(host, spec.haproxy_port)}",
    ]
    regions = [r for r in topology.regions if topology.nodes_in_region(r)]
    for region in regions:
        backend = region_backend(region)
        lines.append(f"    use_backend {backend} if {{ path_beg {REGION_PREFIX}{region}/ }}")
    lines += ["    default_backend rpc", ""]
    lines += _backend("rpc", list(servers.values()), topology)
    # The prefix is dropped in the backend: ACLs are evaluated when used, so a rewrite in the
    # frontend would change what use_backend sees.
    strip = f"    http-request replace-path ^{REGION_PREFIX}[^/]+(/.*)$ \\1"
    for region in regions:
        members = [servers[n] for n in topology.nodes_in_region(region)]
        lines += ["", *_backend(region_backend(region), members, topology, strip)]
    return "\n".join(lines) + "\n"
