"""Monitoring: Prometheus, Alertmanager, HAProxy and Grafana files generated from a topology.

``render_monitoring`` writes them (``alert_rules``, ``prometheus_config``,
``alertmanager_config``, ``haproxy_config``, ``dashboard`` make each), ``check_monitoring``
holds them to the real tools (``find_binary``). It reads topologies only: the devnet starts the
processes (``bitcell_sim.devnet.monitor``).
"""

from bitcell_sim.monitoring.alerts import AlertRule, alert_rules, prom_duration, rules_document
from bitcell_sim.monitoring.configs import alertmanager_config, haproxy_config, prometheus_config
from bitcell_sim.monitoring.dashboard import dashboard, exported_metrics, metric_names
from bitcell_sim.monitoring.render import MonitoringFiles, check_monitoring, render_monitoring
from bitcell_sim.monitoring.tools import ToolCheck, find_binary

__all__ = [
    "AlertRule",
    "MonitoringFiles",
    "ToolCheck",
    "alert_rules",
    "alertmanager_config",
    "check_monitoring",
    "dashboard",
    "exported_metrics",
    "find_binary",
    "haproxy_config",
    "metric_names",
    "prom_duration",
    "prometheus_config",
    "render_monitoring",
    "rules_document",
]
