"""CPU starvation of one process: a cgroup CPU quota where writable, else a SIGSTOP duty cycle.

``detect_backend()`` picks "cgroup2" (``cpu.max``), "cgroup1" (``cpu.cfs_quota_us``) or
"signals" (the ``dutycycle`` controller process). ``apply_throttle`` limits a process to ``share``
of one CPU and returns a ``ThrottleHandle`` (JSON-able, kept in the state folder);
``release_throttle`` undoes it: the process goes back to its own cgroup, or the controller stops.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bitcell_sim.devnet.processes import (
    ProcessRecord,
    is_running,
    is_stopped,
    spawn,
    start_ticks,
    stop_processes,
)
from bitcell_sim.errors import FaultError

BACKENDS = ("cgroup2", "cgroup1", "signals")
PERIOD_S = 0.1
CONTROLLER_START_TIMEOUT_S = 10.0
_MIN_QUOTA_US = 1000  # the kernel refuses cpu quotas below 1 ms


@dataclass(frozen=True)
class ThrottleHandle:
    """A throttle in force: how it was done, enough to undo it from another process."""

    backend: str
    name: str  # node name
    pid: int
    start_ticks: int
    share: float
    cgroup_dir: str = ""  # cgroup backends: the cgroup made for the process
    original_cgroup_dir: str = ""  # cgroup backends: where the process came from
    controller: dict[str, Any] | None = None  # signals backend: the controller's record

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThrottleHandle:
        return cls(**data)


def _mounts() -> list[tuple[str, str, list[str]]]:
    """(mount point, fs type, options) of every mount."""
    out: list[tuple[str, str, list[str]]] = []
    try:
        text = Path("/proc/mounts").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            out.append((parts[1], parts[2], parts[3].split(",")))
    return out


def cgroup2_root() -> Path | None:
    """A cgroup v2 mount whose root offers the cpu controller and is writable, if any."""
    for point, fstype, _ in _mounts():
        if fstype != "cgroup2":
            continue
        root = Path(point)
        try:
            controllers = (root / "cgroup.controllers").read_text().split()
        except OSError:
            continue
        if "cpu" in controllers and _writable(root):
            return root
    return None


def cgroup1_cpu_root() -> Path | None:
    """A cgroup v1 hierarchy with the cpu controller that is writable, if any."""
    for point, fstype, options in _mounts():
        root = Path(point)
        is_cpu = fstype == "cgroup" and "cpu" in options
        if is_cpu and (root / "cpu.cfs_quota_us").exists() and _writable(root):
            return root
    return None


def _writable(root: Path) -> bool:
    return os.access(root, os.W_OK)


def detect_backend(preference: str = "auto") -> str:
    """The backend to use: ``preference`` if given (checked), else the best available."""
    if preference not in ("auto", *BACKENDS):
        raise FaultError(f"throttle backend {preference!r} must be auto or one of {BACKENDS}")
    available = {
        "cgroup2": cgroup2_root() is not None,
        "cgroup1": cgroup1_cpu_root() is not None,
        "signals": True,
    }
    if preference != "auto":
        if not available[preference]:
            raise FaultError(f"throttle backend {preference!r} is not available on this host")
        return preference
    return next(b for b in BACKENDS if available[b])


def _own_cgroup(pid: int, version: int) -> str:
    """The cgroup path of ``pid`` in the v2 hierarchy or in the v1 cpu hierarchy."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError as exc:
        raise FaultError(f"cannot read the cgroup of pid {pid}: {exc}") from None
    for line in text.splitlines():
        number, controllers, path = line.split(":", 2)
        if version == 2 and number == "0" and controllers == "":
            return path
        if version == 1 and "cpu" in controllers.split(","):
            return path
    raise FaultError(f"pid {pid} has no cgroup v{version} {'cpu ' if version == 1 else ''}entry")


def _group_name(state_root: str, node: str) -> str:
    digest = hashlib.sha256(state_root.encode()).hexdigest()[:8]
    return f"bitcell-sim-{digest}-{node}"


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        raise FaultError(f"cannot write {text!r} to {path}: {exc.strerror or exc}") from None


def _cgroup_throttle(
    version: int, record: ProcessRecord, share: float, state_root: str
) -> ThrottleHandle:
    root = cgroup2_root() if version == 2 else cgroup1_cpu_root()
    if root is None:
        raise FaultError(f"no writable cgroup v{version} cpu hierarchy")
    original = root / _own_cgroup(record.pid, version).lstrip("/")
    group = root / _group_name(state_root, record.name)
    period_us = int(PERIOD_S * 1e6)
    quota_us = max(_MIN_QUOTA_US, round(share * period_us))
    if version == 2:
        subtree = (root / "cgroup.subtree_control").read_text().split()
        if "cpu" not in subtree:
            _write(root / "cgroup.subtree_control", "+cpu")
    try:
        group.mkdir(exist_ok=True)
    except OSError as exc:
        raise FaultError(f"cannot create cgroup {group}: {exc.strerror or exc}") from None
    if version == 2:
        _write(group / "cpu.max", f"{quota_us} {period_us}")
    else:
        _write(group / "cpu.cfs_period_us", str(period_us))
        _write(group / "cpu.cfs_quota_us", str(quota_us))
    _write(group / "cgroup.procs", str(record.pid))
    return ThrottleHandle(
        backend=f"cgroup{version}",
        name=record.name,
        pid=record.pid,
        start_ticks=record.start_ticks,
        share=share,
        cgroup_dir=str(group),
        original_cgroup_dir=str(original),
    )


def _signals_throttle(
    record: ProcessRecord, share: float, log_path: Path, python: str
) -> ThrottleHandle:
    controller = spawn(
        f"throttle-{record.name}",
        [
            python,
            "-m",
            "bitcell_sim.faults.dutycycle",
            "--pid",
            str(record.pid),
            "--start-ticks",
            str(record.start_ticks),
            "--share",
            repr(share),
            "--period-s",
            repr(PERIOD_S),
        ],
        log_path,
    )
    # The controller needs about a second to start Python; the throttle is in force only once
    # it has stopped the process for the first time, so wait for that (the fault journal and
    # any measurement start from the return of this call).
    deadline = time.monotonic() + CONTROLLER_START_TIMEOUT_S
    while share < 1 and not is_stopped(record):
        if not is_running(controller):
            raise FaultError(
                f"the duty-cycle controller of {record.name} exited at once; see {log_path}"
            )
        if time.monotonic() >= deadline or not is_running(record):
            stop_processes([controller], grace_s=2.0)
            raise FaultError(
                f"the duty-cycle controller of {record.name} did not stop it within "
                f"{CONTROLLER_START_TIMEOUT_S:g} s; see {log_path}"
            )
        time.sleep(0.002)
    return ThrottleHandle(
        backend="signals",
        name=record.name,
        pid=record.pid,
        start_ticks=record.start_ticks,
        share=share,
        controller=controller.to_dict(),
    )


def apply_throttle(
    record: ProcessRecord,
    share: float,
    *,
    backend: str,
    state_root: str,
    log_path: Path,
    python: str = sys.executable,
) -> ThrottleHandle:
    """Limit ``record``'s process to ``share`` of one CPU with ``backend``."""
    if not 0 < share <= 1:
        raise FaultError(f"CPU share {share!r} must be in (0, 1]")
    if not is_running(record):
        raise FaultError(f"{record.name} (pid {record.pid}) is not running; nothing to throttle")
    if backend in ("cgroup2", "cgroup1"):
        return _cgroup_throttle(int(backend[-1]), record, share, state_root)
    if backend == "signals":
        return _signals_throttle(record, share, log_path, python)
    raise FaultError(f"throttle backend {backend!r} must be one of {BACKENDS}")


def release_throttle(handle: ThrottleHandle) -> None:
    """Undo ``handle``: never fails because the throttled process has gone meanwhile."""
    if handle.backend == "signals":
        if handle.controller is not None:
            stop_processes([ProcessRecord.from_dict(handle.controller)], grace_s=2.0)
        return
    group = Path(handle.cgroup_dir)
    if start_ticks(handle.pid) == handle.start_ticks:
        _write(Path(handle.original_cgroup_dir) / "cgroup.procs", str(handle.pid))
    deadline = time.monotonic() + 2.0
    while group.exists():
        try:
            group.rmdir()
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise FaultError(f"cannot remove cgroup {group}: {exc.strerror or exc}") from None
            time.sleep(0.05)
