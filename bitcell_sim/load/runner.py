"""Starting Locust as a subprocess: the command line, a bounded wait, and a clean stop.

``locust_argv`` builds ``python -m locust -f loadtests/rpc.py --headless ...`` with the load's
options and the run folder's file names (``--csv``/``--html`` beside the records);
``LocustProcess`` starts it (stdout/stderr to files), waits at most a bound, and on timeout stops
exactly that process (SIGTERM, then SIGKILL). The child is also told by the kernel to end when
its parent does (``PR_SET_PDEATHSIG``), so no Locust outlives a killed ``bitcell-sim load``.
Locust itself is never imported here.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from bitcell_sim.errors import LoadError
from bitcell_sim.load.output import LOAD_DIR, LOCUST_CSV_PREFIX, LOCUST_HTML

#: Time the subprocess gets on top of load + drain: start-up, worker connection, writing.
STARTUP_MARGIN_S = 60.0
#: Locust's own stop timeout for users (they are idle once the schedule is done).
STOP_TIMEOUT_S = 5.0
#: After SIGTERM, how long Locust gets to write its results before SIGKILL.
TERM_GRACE_S = 20.0


_PR_SET_PDEATHSIG = 1


def _end_with_parent(parent_pid: int) -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux; elsewhere a no-op)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def default_locustfile() -> Path:
    """``loadtests/rpc.py`` of the source tree (or of the current directory)."""
    here = Path(__file__).resolve().parents[2] / "loadtests" / "rpc.py"
    for candidate in (here, Path.cwd() / "loadtests" / "rpc.py"):
        if candidate.is_file():
            return candidate
    raise LoadError(f"cannot find the locustfile loadtests/rpc.py (looked at {here})")


def locust_argv(
    run_dir: Path,
    *,
    topology: Path | None = None,
    host: str | None = None,
    locustfile: Path | None = None,
    tps: float | None = None,
    duration_s: float | None = None,
    users: int | None = None,
    senders: str | None = None,
    arrival: str | None = None,
    genesis_unix_s: float | None = None,
    drain_s: float | None = None,
    watch_node: str | None = None,
    role: str = "local",
    master_port: int | None = None,
    expect_workers: int | None = None,
    extra: Sequence[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """The Locust command of one process (``role`` local, master or worker)."""
    if role not in ("local", "master", "worker"):
        raise LoadError(f"role {role!r} must be local, master or worker")
    argv = [python, "-m", "locust", "-f", str(locustfile or default_locustfile())]
    if topology is not None:
        argv += ["--topology", str(topology)]
    if host is not None:
        argv += ["--host", host]
    if role == "worker":
        argv += ["--worker", "--master-host", "127.0.0.1"]
        if master_port is not None:
            argv += ["--master-port", str(master_port)]
        return [*argv, *extra]
    load_dir = run_dir / LOAD_DIR
    argv += [
        "--headless",
        "--only-summary",
        "--stop-timeout",
        f"{STOP_TIMEOUT_S:g}",
        "--run-dir",
        str(run_dir),
        "--csv",
        str(load_dir / LOCUST_CSV_PREFIX),
        "--html",
        str(load_dir / LOCUST_HTML),
    ]
    if role == "master":
        argv += ["--master", "--master-bind-host", "127.0.0.1"]
        if master_port is not None:
            argv += ["--master-bind-port", str(master_port)]
        argv += ["--expect-workers", str(expect_workers or 1)]
    for flag, value in (
        ("--tps", tps),
        ("--duration", duration_s),
        ("--load-users", users),
        ("--senders", senders),
        ("--arrival", arrival),
        ("--genesis-unix", genesis_unix_s),
        ("--drain", drain_s),
        ("--watch-node", watch_node),
    ):
        if value is not None:
            argv += [flag, f"{value:.6f}" if isinstance(value, float) else str(value)]
    return [*argv, *extra]


class LocustProcess:
    """One Locust process started by us, its output going to ``log_path``."""

    def __init__(self, argv: Sequence[str], log_path: Path, cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = log_path.open("ab")
        # No gevent in our own process: Locust monkey-patches only the child.
        parent = os.getpid()
        self.process = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=lambda: _end_with_parent(parent),
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self, timeout_s: float) -> int:
        """The exit status; LoadError (after stopping it) if it runs longer than ``timeout_s``."""
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise LoadError(
                f"Locust (pid {self.pid}) did not finish within {timeout_s:.0f} s and was "
                f"stopped; log: {self.log_path}"
            ) from None
        finally:
            self._close_log()

    def stop(self) -> None:
        """SIGTERM (Locust writes its results), then SIGKILL after a grace period."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=TERM_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if not self._log.closed:
            self._log.close()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])
