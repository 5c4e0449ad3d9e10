"""The short monitoring timings of the tests: 1 s scrape and evaluation, small ``for`` values,
1 s group_wait, HAProxy checks every 500 ms (fall 3, rise 2)."""

from __future__ import annotations

MONITORING = {
    "scrape_interval": "1 s",
    "evaluation_interval": "1 s",
    "group_wait": "1 s",
    "group_interval": "2 s",
    "alert_for": {"NodeDown": "5 s", "RegionDown": "2 s", "NoPeers": "3 s", "LowPeerCount": "3 s"},
    "health_check": {"inter": "500 ms", "fall": 3, "rise": 2},
}
