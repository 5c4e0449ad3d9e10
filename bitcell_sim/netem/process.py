"""The emulator as an OS process: serving it until told to stop, and handling it from outside.

``serve`` runs an ``Emulator`` and its ``ControlServer`` until an event is set (what
``python -m bitcell_sim.netem`` does); it binds every socket before reporting ready. The ready
report is one line, ``NETEM READY {json}`` (see ``ready_line``/``parse_ready_line``).
``EmulatorProcess`` starts that command, waits for the line, and stops it by pid.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from bitcell_sim.errors import NetemError
from bitcell_sim.netem.control import ControlServer
from bitcell_sim.netem.emulator import DEFAULT_MAX_QUEUED_BYTES, Emulator
from bitcell_sim.netem.params import LinkSpec

READY_PREFIX = "NETEM READY "


def ready_line(pid: int, control_url: str, listen_ports: dict[str, int]) -> str:
    """The line announcing a ready emulator: its pid, control URL and each link's port."""
    payload = {"pid": pid, "control_url": control_url, "links": listen_ports}
    return READY_PREFIX + json.dumps(payload, separators=(",", ":"))


def parse_ready_line(line: str) -> dict[str, Any]:
    """The payload of a ready line; NetemError if ``line`` is not one."""
    if not line.startswith(READY_PREFIX):
        raise NetemError(f"not a netem ready line: {line[:80]!r}")
    try:
        payload = json.loads(line[len(READY_PREFIX) :])
    except json.JSONDecodeError as exc:
        raise NetemError(f"bad netem ready line {line[:80]!r}: {exc}") from None
    if not isinstance(payload, dict) or not {"pid", "control_url", "links"} <= set(payload):
        raise NetemError(f"bad netem ready line {line[:80]!r}: missing fields")
    return payload


async def serve(
    specs: Sequence[LinkSpec],
    token: str,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[str], None],
    control_host: str = "127.0.0.1",
    control_port: int = 0,
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
) -> None:
    """Bind everything, call ``on_ready(ready_line)``, serve until ``stop`` is set, close all.

    If any socket cannot be bound, every socket already bound is released before the
    NetemError propagates, so a failed start leaves nothing listening.
    """
    emulator = Emulator(specs, max_queued_bytes=max_queued_bytes)
    control = ControlServer(emulator, token, host=control_host, port=control_port)
    emulator.bind()
    try:
        control.bind()
    except NetemError:
        await emulator.stop()
        raise
    try:
        await emulator.start()
        await control.start()
        on_ready(ready_line(os.getpid(), control.url, emulator.listen_ports()))
        await stop.wait()
    finally:
        await control.stop()
        await emulator.stop()


class EmulatorProcess:
    """A ``python -m bitcell_sim.netem`` child process, started and stopped by pid.

    ``control_url`` and ``listen_ports`` come from its ready line. The child's stderr (its log
    unless ``log_file`` is given) goes to a temporary file, quoted in the error if it fails.
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        control_url: str,
        listen_ports: dict[str, int],
        stderr_file: IO[bytes],
    ) -> None:
        self.process = process
        self.control_url = control_url
        self.listen_ports = listen_ports
        self._stderr_file = stderr_file

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def start(
        cls,
        links_file: str | Path,
        token_file: str | Path,
        *,
        control_port: int = 0,
        log_file: str | Path | None = None,
        python: str = sys.executable,
        timeout_s: float = 20.0,
    ) -> EmulatorProcess:
        """Start the emulator and wait (at most ``timeout_s``) for its ready line."""
        command = [
            python,
            "-m",
            "bitcell_sim.netem",
            "--links",
            str(links_file),
            "--control-port",
            str(control_port),
            "--token-file",
            str(token_file),
        ]
        if log_file is not None:
            command += ["--log-file", str(log_file)]
        stderr_file = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr_file)
        try:
            line = _read_ready(process, timeout_s)
        except BaseException:
            _kill(process)
            stderr_file.seek(0)
            detail = stderr_file.read().decode(errors="replace").strip()
            stderr_file.close()
            if detail:
                raise NetemError(f"netem did not start: {detail}") from None
            raise
        payload = parse_ready_line(line)
        return cls(process, payload["control_url"], dict(payload["links"]), stderr_file)

    def stop(self, timeout_s: float = 5.0) -> int:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL; return the exit code."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill(process)
        if process.stdout is not None:
            process.stdout.close()
        self._stderr_file.close()
        return process.wait()

    def stderr_text(self) -> str:
        """What the child wrote to stderr so far."""
        self._stderr_file.flush()
        self._stderr_file.seek(0)
        return self._stderr_file.read().decode(errors="replace")

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def _read_ready(process: subprocess.Popen[bytes], timeout_s: float) -> str:
    """The child's first stdout line, if it is a ready line within ``timeout_s``."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise NetemError(f"netem (pid {process.pid}) not ready after {timeout_s} s")
            if not selector.select(remaining_s):
                continue
            data = os.read(process.stdout.fileno(), 4096)
            if not data:
                code = process.wait()
                raise NetemError(f"netem (pid {process.pid}) exited with code {code} before ready")
            buffer += data
    return buffer.split(b"\n", 1)[0].decode()
