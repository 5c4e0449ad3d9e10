"""Monitoring: Prometheus, Alertmanager, HAProxy and Grafana files generated from a topology,
and when its alerts fire, predicted from any run's node timeline.

``render_monitoring`` writes the files (``alert_rules``, ``prometheus_config``,
``alertmanager_config``, ``haproxy_config``, ``dashboard`` make each), ``check_monitoring``
holds them to the real tools (``find_binary``). ``predict_alerts``/``predict_front_door`` (or
``predict_run`` on a run folder) give each alert's firing, page and resolution windows and the
front door's error windows; ``measured_pages`` reads what the webhook receiver got and
``pages_side_by_side`` joins the two. It imports no world: the devnet starts the processes
(``bitcell_sim.devnet.monitor``).
"""

from bitcell_sim.monitoring.alerts import AlertRule, alert_rules, prom_duration, rules_document
from bitcell_sim.monitoring.configs import alertmanager_config, haproxy_config, prometheus_config
from bitcell_sim.monitoring.dashboard import dashboard, exported_metrics, metric_names
from bitcell_sim.monitoring.render import MonitoringFiles, check_monitoring, render_monitoring
from bitcell_sim.monitoring.timing import (
    AlertPrediction,
    FrontDoorOutage,
    MeasuredPage,
    MonitoringPrediction,
    PageComparison,
    Window,
    measured_pages,
    measured_pages_of_run,
    pages_side_by_side,
    predict_alerts,
    predict_front_door,
    predict_run,
)
from bitcell_sim.monitoring.tools import ToolCheck, find_binary
from bitcell_sim.monitoring.webhook import Notification, NotifiedAlert, read_notifications

__all__ = [
    "AlertPrediction",
    "AlertRule",
    "FrontDoorOutage",
    "MeasuredPage",
    "MonitoringFiles",
    "MonitoringPrediction",
    "Notification",
    "NotifiedAlert",
    "PageComparison",
    "ToolCheck",
    "Window",
    "alert_rules",
    "alertmanager_config",
    "check_monitoring",
    "dashboard",
    "exported_metrics",
    "find_binary",
    "haproxy_config",
    "measured_pages",
    "measured_pages_of_run",
    "metric_names",
    "pages_side_by_side",
    "predict_alerts",
    "predict_front_door",
    "predict_run",
    "prom_duration",
    "prometheus_config",
    "read_notifications",
    "render_monitoring",
    "rules_document",
]
