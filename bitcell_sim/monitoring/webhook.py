"""The webhook receiver of ours that stands in for PagerDuty and Slack, and reading what it got.

``python -m bitcell_sim.monitoring.webhook --port P --out FILE`` serves on loopback: every
``POST /<receiver>`` whose body is an Alertmanager webhook payload (version "4") is appended to
FILE as one JSON line ``{"received_unix_s", "receiver_path", "payload"}``; ``GET /health``
answers 200. ``read_notifications(FILE)`` gives them back as ``Notification`` records.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from bitcell_sim.errors import MonitoringError

PAYLOAD_VERSION = "4"
#: The file the receiver appends to, in the devnet's run files and so in every measured run folder.
ALERTS_FILE = "alerts.jsonl"
MAX_BODY_BYTES = 4 * 1024 * 1024


def parse_time(text: str | None) -> float | None:
    """An RFC 3339 time of the payload as Unix seconds (None for Go's zero time, which an
    alert still firing has as ``endsAt``)."""
    if not text or text.startswith("0001-01-01"):
        return None
    # Alertmanager writes nanoseconds; Python's parser takes at most microseconds.
    head, _, rest = text.partition(".")
    if rest:
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class NotifiedAlert:
    """One alert inside a notification."""

    alertname: str
    status: str
    labels: dict[str, str]
    starts_at_unix_s: float | None
    ends_at_unix_s: float | None
    fingerprint: str


@dataclass(frozen=True)
class Notification:
    """One webhook call: Alertmanager's receiver, group status, and its alerts."""

    received_unix_s: float
    receiver: str
    status: str
    group_key: str
    alerts: tuple[NotifiedAlert, ...]

    def has(self, alertname: str, status: str | None = None, **labels: str) -> bool:
        """True if an alert named ``alertname`` (with ``status`` and ``labels``) is in it."""
        return any(
            a.alertname == alertname
            and (status is None or a.status == status)
            and all(a.labels.get(k) == v for k, v in labels.items())
            for a in self.alerts
        )


def payload_problems(payload: Any) -> list[str]:
    """Why ``payload`` is not a version-4 webhook payload ([] if it is)."""
    if not isinstance(payload, dict):
        return ["the body is not a JSON object"]
    problems = []
    if payload.get("version") != PAYLOAD_VERSION:
        problems.append(f"version {payload.get('version')!r}, expected {PAYLOAD_VERSION!r}")
    for key in ("receiver", "status", "alerts", "groupKey"):
        if key not in payload:
            problems.append(f"missing {key!r}")
    if not isinstance(payload.get("alerts", []), list):
        problems.append("'alerts' is not a list")
    return problems


def notification_from(line: dict[str, Any]) -> Notification:
    payload = line["payload"]
    alerts = tuple(
        NotifiedAlert(
            alertname=str(a.get("labels", {}).get("alertname", "")),
            status=str(a.get("status", "")),
            labels={str(k): str(v) for k, v in a.get("labels", {}).items()},
            starts_at_unix_s=parse_time(a.get("startsAt")),
            ends_at_unix_s=parse_time(a.get("endsAt")),
            fingerprint=str(a.get("fingerprint", "")),
        )
        for a in payload["alerts"]
    )
    return Notification(
        received_unix_s=float(line["received_unix_s"]),
        receiver=str(payload["receiver"]),
        status=str(payload["status"]),
        group_key=str(payload["groupKey"]),
        alerts=alerts,
    )


def read_notifications(path: str | Path) -> list[Notification]:
    """Every notification in the receiver's JSONL file, in arrival order ([] if no file)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            out.append(notification_from(json.loads(raw)))
        except (ValueError, KeyError, TypeError) as exc:
            raise MonitoringError(f"{path}:{number}: not a notification record: {exc}") from None
    return out


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _answer(self, status: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._answer(200, f"ok {self.server.count} notifications")
        else:
            self._answer(404, "not found")

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._answer(411, "Content-Length required")
            return
        if length > MAX_BODY_BYTES:
            self._answer(413, "body too large")
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self._answer(400, "not JSON")
            return
        problems = payload_problems(payload)
        if problems:
            self._answer(400, "not a webhook payload: " + "; ".join(problems))
            return
        self.server.append(self.path.lstrip("/"), payload)
        self._answer(200, "ok")


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], out_path: Path) -> None:
        super().__init__(address, _Handler)
        self.out_path = out_path
        self.count = 0
        self._lock = threading.Lock()

    def append(self, receiver_path: str, payload: dict[str, Any]) -> None:
        line = {"received_unix_s": time.time(), "receiver_path": receiver_path, "payload": payload}
        with self._lock, self.out_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, sort_keys=True) + "\n")
            self.count += 1


def serve(host: str, port: int, out_path: Path) -> None:
    """Receive until SIGTERM or SIGINT."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    server = _Receiver((host, port), out_path)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"webhook receiver on http://{host}:{port}/ writing {out_path}", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to append to")
    options = parser.parse_args(argv)
    try:
        serve(options.host, options.port, options.out)
    except OSError as exc:
        print(f"error: webhook receiver: {options.host}:{options.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
