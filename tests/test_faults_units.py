"""The fault timeline and scheduler, the journal, and real CPU throttling."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bitcell_sim.devnet import ProcessRecord, cpu_seconds, is_running, spawn, stop_processes
from bitcell_sim.errors import FaultError
from bitcell_sim.faults import (
    ChaosScheduler,
    FaultEvent,
    append_event,
    apply_throttle,
    detect_backend,
    fault_timeline,
    read_events,
    release_throttle,
)
from bitcell_sim.faults.throttle import cgroup1_cpu_root, cgroup2_root
from bitcell_sim.topology import parse_topology

FAULTS = """
general: {name: f}
regions: {a: {rtt: {a: 2 ms}}}
nodes: {n1: {region: a}, n2: {region: a}, n3: {region: a}}
faults:
  - {kind: node_down, target: n1, start: 2 s, duration: 3 s}
  - {kind: partition, groups: [[n2]], start: 5 s, duration: 2 s}
  - {kind: added_latency, target: n3, latency: 50 ms, start: 0 s, duration: 1 s}
"""


def test_timeline_orders_reverts_before_applies_at_equal_times() -> None:
    topology = parse_topology(FAULTS)
    steps = [(s.at_s, s.action, s.index) for s in fault_timeline(topology.faults)]
    assert steps == [
        (0.0, "apply", 2),
        (1.0, "revert", 2),
        (2.0, "apply", 0),
        (5.0, "revert", 0),
        (5.0, "apply", 1),
        (7.0, "revert", 1),
    ]


@dataclass
class _Meta:
    genesis_time_unix_s: float


@dataclass
class _Devnet:
    meta: _Meta


@dataclass
class RecordingInjector:
    """A seam standing in for DevnetFaults: records calls, fails where told."""

    devnet: _Devnet
    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail_on: str = ""
    interrupt_on: str = ""
    next_id: int = 1

    def apply(self, fault: Any) -> Any:
        if fault.kind == self.interrupt_on:
            raise KeyboardInterrupt
        if fault.kind == self.fail_on:
            raise FaultError("boom")
        self.calls.append(("apply", fault.kind))

        @dataclass
        class Active:
            id: int

        self.next_id += 1
        return Active(self.next_id - 1)

    def revert(self, fault_id: int) -> list[str]:
        self.calls.append(("revert", fault_id))
        return []


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_scheduler_plays_on_the_genesis_clock_and_skips_the_past() -> None:
    topology = parse_topology(FAULTS)
    clock = FakeClock(1000.0 + 1.5)  # genesis at 1000: the latency fault (0-1 s) is over
    injector = RecordingInjector(_Devnet(_Meta(1000.0)))
    scheduler = ChaosScheduler(
        injector,  # type: ignore[arg-type]
        topology.faults,
        clock=clock.time,
        sleep=clock.sleep,
    )
    report = scheduler.run()
    assert injector.calls == [
        ("apply", "node_down"),
        ("revert", 1),
        ("apply", "partition"),
        ("revert", 2),
    ]
    assert [s.fault.kind for s in report.skipped] == ["added_latency"]
    offsets = [round(offset) for offset, _ in report.done]
    assert offsets == [2, 5, 5, 7]


def test_scheduler_reverts_what_it_applied_when_interrupted() -> None:
    topology = parse_topology(FAULTS)
    clock = FakeClock(1000.0)
    injector = RecordingInjector(_Devnet(_Meta(1000.0)), interrupt_on="partition")
    report = ChaosScheduler(
        injector,  # type: ignore[arg-type]
        topology.faults,
        clock=clock.time,
        sleep=clock.sleep,
    ).run()
    assert report.interrupted
    # latency applied and reverted, node_down applied then reverted on the way out
    assert injector.calls == [
        ("apply", "added_latency"),
        ("revert", 1),
        ("apply", "node_down"),
        ("revert", 2),
    ]


def test_scheduler_is_bounded_by_max_duration() -> None:
    topology = parse_topology(FAULTS)
    clock = FakeClock(1000.0)
    injector = RecordingInjector(_Devnet(_Meta(1000.0)))
    ChaosScheduler(
        injector,  # type: ignore[arg-type]
        topology.faults,
        clock=clock.time,
        sleep=clock.sleep,
    ).run(max_duration_s=3.0)
    assert injector.calls == [
        ("apply", "added_latency"),
        ("revert", 1),
        ("apply", "node_down"),
        ("revert", 2),  # reverted at the bound, not at t=5
    ]
    assert clock.now < 1000.0 + 3.5


def test_journal_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "faults.jsonl"
    assert read_events(path) == []
    event = FaultEvent(1.0, 0.5, "apply", "partition", "a | b", 3, "x", {"links": ["a->b"]})
    append_event(path, event)
    append_event(path, event)
    assert read_events(path) == [event, event]
    path.write_text("{nope\n")
    with pytest.raises(FaultError, match=r"faults\.jsonl:1: bad fault event"):
        read_events(path)


# ---- real CPU throttling ------------------------------------------------------------------------

BUSY = "while True: pass"


@pytest.fixture
def busy(tmp_path: Path) -> Iterator[ProcessRecord]:
    record = spawn("busy", [sys.executable, "-c", BUSY], tmp_path / "busy.log")
    try:
        yield record
    finally:
        stop_processes([record], grace_s=1.0)


def _cpu_share(record: ProcessRecord, seconds: float) -> float:
    before = cpu_seconds(record)
    start = time.monotonic()
    time.sleep(seconds)
    after = cpu_seconds(record)
    assert before is not None and after is not None
    return (after - before) / (time.monotonic() - start)


def _backends() -> list[str]:
    found = ["signals"]
    if cgroup2_root() is not None:
        found.append("cgroup2")
    if cgroup1_cpu_root() is not None:
        found.append("cgroup1")
    return found


@pytest.mark.real
@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", _backends())
def test_throttle_limits_cpu_and_release_restores_it(
    backend: str, busy: ProcessRecord, tmp_path: Path
) -> None:
    time.sleep(0.3)
    handle = apply_throttle(
        busy, 0.25, backend=backend, state_root=str(tmp_path), log_path=tmp_path / "t.log"
    )
    try:
        time.sleep(0.3)
        throttled = _cpu_share(busy, 2.0)
    finally:
        release_throttle(handle)
    # A shared VM can lose a core for a moment: the release holds if any of three 1 s windows
    # shows the process running freely again.
    free = [_cpu_share(busy, 1.0) for _ in range(3)]
    assert 0.12 < throttled < 0.4, throttled
    assert max(free) > 0.6, free
    assert is_running(busy)
    if backend == "signals":
        assert handle.controller is not None
        assert not is_running(ProcessRecord.from_dict(handle.controller))
    else:
        assert not Path(handle.cgroup_dir).exists()


def test_throttle_backend_choice() -> None:
    assert detect_backend() in _backends()
    assert detect_backend("signals") == "signals"
    with pytest.raises(FaultError, match=r"throttle backend 'cgroup9' must be auto or one of"):
        detect_backend("cgroup9")
