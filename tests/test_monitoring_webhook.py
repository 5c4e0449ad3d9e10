"""The webhook receiver as a process: version-4 payloads appended as JSON lines, anything else
refused with 400 and not recorded, /health, a clean stop on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bitcell_sim.loopback import free_port
from bitcell_sim.monitoring import read_notifications

PAYLOAD = {
    "version": "4",
    "groupKey": '{}:{alertname="NodeDown"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "pagerduty-oncall",
    "groupLabels": {"alertname": "NodeDown"},
    "commonLabels": {"alertname": "NodeDown", "node": "us-east-1"},
    "commonAnnotations": {},
    "externalURL": "http://127.0.0.1:9193",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "NodeDown", "node": "us-east-1", "region": "us-east"},
            "annotations": {"summary": "Node us-east-1 is down"},
            "startsAt": "2026-12-01T10:00:00.5Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:9999/graph",
            "fingerprint": "0123456789abcdef",
        }
    ],
}


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    port, out = free_port(), tmp_path / "alerts.jsonl"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bitcell_sim.monitoring.webhook",
            "--port",
            str(port),
            "--out",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/health", trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url, out, process
    finally:
        process.kill()
        process.wait(10)


def test_payloads_are_appended_and_junk_is_refused(
    receiver: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    url, out, process = receiver
    assert httpx.post(url + "/pagerduty-oncall", json=PAYLOAD, trust_env=False).status_code == 200
    resolved = {**PAYLOAD, "status": "resolved"}
    assert httpx.post(url + "/slack-warnings", json=resolved, trust_env=False).status_code == 200
    for bad in (b"not json", json.dumps({**PAYLOAD, "version": "3"}).encode(), b"[1]"):
        answer = httpx.post(url + "/x", content=bad, trust_env=False)
        assert answer.status_code == 400, answer.text
    assert httpx.get(url + "/nothing", trust_env=False).status_code == 404
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["receiver_path"] for line in lines] == ["pagerduty-oncall", "slack-warnings"]
    assert lines[0]["payload"] == PAYLOAD
    notes = read_notifications(out)
    assert [n.status for n in notes] == ["firing", "resolved"]
    alert = notes[0].alerts[0]
    assert alert.alertname == "NodeDown" and alert.labels["node"] == "us-east-1"
    assert alert.starts_at_unix_s == pytest.approx(1796119200.5)
    assert alert.ends_at_unix_s is None
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
