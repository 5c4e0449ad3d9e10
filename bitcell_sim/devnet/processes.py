"""Devnet processes, started detached and later found, signalled and stopped by pid alone.

``spawn`` starts a command in its own session (``posix_spawn`` + setsid, output appended to a log
file) and returns a ``ProcessRecord``: pid plus the process start time read from /proc, so a pid
the kernel has reused for another program is never signalled (``is_running``). ``signal_process``,
``stop_processes`` (SIGTERM, grace, SIGKILL) and ``cpu_seconds`` all check that identity first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bitcell_sim.errors import DevnetError

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# /proc/<pid>/stat fields after the ")" that closes the command name (0-based in that tail).
_STATE_FIELD = 0
_PPID_FIELD = 1
_UTIME_FIELD = 11
_STIME_FIELD = 12
_STARTTIME_FIELD = 19


@dataclass(frozen=True)
class ProcessRecord:
    """A process the devnet started: what it is (pid + start ticks) and where it logs."""

    name: str
    pid: int
    start_ticks: int
    argv: tuple[str, ...]
    log_path: str
    started_unix_s: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["argv"] = list(self.argv)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessRecord:
        try:
            return cls(
                name=str(data["name"]),
                pid=int(data["pid"]),
                start_ticks=int(data["start_ticks"]),
                argv=tuple(str(a) for a in data["argv"]),
                log_path=str(data["log_path"]),
                started_unix_s=float(data["started_unix_s"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DevnetError(f"bad process record {data!r}: {exc}") from None


def _stat_tail(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ")".
    return text[text.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (None: no such process)."""
    tail = _stat_tail(pid)
    return None if tail is None else int(tail[_STARTTIME_FIELD])


def _reap(pid: int, tail: list[str] | None) -> None:
    """Collect ``pid`` if it is our own exited child (else init does, or it is running).

    A killed multi-threaded process shows as a zombie while its threads still exit, and
    WNOHANG cannot collect it yet: then wait for it, which takes milliseconds.
    """
    if tail is None:
        return
    zombie_child = tail[_STATE_FIELD] in ("Z", "X") and int(tail[_PPID_FIELD]) == os.getpid()
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0 if zombie_child else os.WNOHANG)


def is_running(record: ProcessRecord) -> bool:
    """True if ``record``'s process still runs (same pid *and* start time, not a zombie)."""
    tail = _stat_tail(record.pid)
    if tail is None or int(tail[_STARTTIME_FIELD]) != record.start_ticks:
        return False
    if tail[_STATE_FIELD] in ("Z", "X"):
        _reap(record.pid, tail)
        return False
    return True


def is_stopped(record: ProcessRecord) -> bool:
    """True if ``record``'s process is stopped by a signal (SIGSTOP) right now."""
    tail = _stat_tail(record.pid)
    return (
        tail is not None
        and int(tail[_STARTTIME_FIELD]) == record.start_ticks
        and tail[_STATE_FIELD] == "T"
    )


def cpu_seconds(record: ProcessRecord) -> float | None:
    """User + system CPU seconds used so far by ``record``'s process (None if it is gone)."""
    tail = _stat_tail(record.pid)
    if tail is None or int(tail[_STARTTIME_FIELD]) != record.start_ticks:
        return None
    return (int(tail[_UTIME_FIELD]) + int(tail[_STIME_FIELD])) / CLOCK_TICKS_PER_S


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: str | Path,
    *,
    env: dict[str, str] | None = None,
) -> ProcessRecord:
    """Start ``argv`` detached (own session and process group), stdout+stderr appended to
    ``log_path``, stdin from /dev/null. ``argv[0]`` must be an executable's path."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    environment = dict(os.environ if env is None else env)
    environment.setdefault("PYTHONUNBUFFERED", "1")  # logs line by line, readable while running
    try:
        pid = os.posix_spawn(argv[0], list(argv), environment, file_actions=actions, setsid=True)
    except OSError as exc:
        raise DevnetError(f"{name}: cannot start {argv[0]}: {exc.strerror or exc}") from None
    ticks = start_ticks(pid)
    if ticks is None:  # exited before we could look: record it so callers see it as dead
        ticks = -1
    return ProcessRecord(name, pid, ticks, tuple(argv), str(log_path), time.time())


def signal_process(record: ProcessRecord, signum: int) -> bool:
    """Send ``signum`` to ``record``'s process group if it is still that process; return whether
    it was sent. The group is the one ``spawn`` created, led by this very process."""
    if not is_running(record):
        return False
    try:
        os.killpg(record.pid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(record.pid, signum)
    return True


def wait_gone(records: Iterable[ProcessRecord], timeout_s: float) -> list[ProcessRecord]:
    """Wait up to ``timeout_s`` for the processes to end; return those still running."""
    pending = list(records)
    deadline = time.monotonic() + timeout_s
    while True:
        pending = [r for r in pending if is_running(r)]
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(0.02)


def stop_processes(records: Sequence[ProcessRecord], grace_s: float = 5.0) -> list[ProcessRecord]:
    """SIGTERM every process, SIGKILL those alive after ``grace_s``; return those signalled.

    A stopped (SIGSTOP) process is continued after SIGTERM so it can act on it.
    """
    signalled = [r for r in records if signal_process(r, signal.SIGTERM)]
    for record in signalled:
        signal_process(record, signal.SIGCONT)
    survivors = wait_gone(signalled, grace_s)
    for record in survivors:
        signal_process(record, signal.SIGKILL)
    left = wait_gone(survivors, 5.0)
    if left:
        names = ", ".join(f"{r.name} (pid {r.pid})" for r in left)
        raise DevnetError(f"process(es) still running after SIGKILL: {names}")
    return signalled


def tail_lines(path: str | Path, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a text file ([] if it does not exist)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except FileNotFoundError:
        return []
    text = data.decode("utf-8", errors="replace").splitlines()
    return text[-lines:] if lines > 0 else []
