"""The chaos scheduler: a topology's ``faults`` list played on a devnet, on the model's clock.

``fault_timeline(faults)`` turns the list into ``TimelineStep``s (apply at ``start_s``, revert at
``end_s``, both relative to an origin, by default the devnet's genesis). ``ChaosScheduler.run``
walks them with wall-clock sleeps, bounded by the last step (or ``max_duration_s``), and reverts
every fault it applied on any exit, an interrupt included. It returns a ``ChaosReport``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bitcell_sim.errors import BitcellSimError, FaultError
from bitcell_sim.faults.injector import DevnetFaults
from bitcell_sim.topology import Fault


@dataclass(frozen=True)
class TimelineStep:
    """Apply or revert fault number ``index`` of the list at ``at_s`` after the origin."""

    at_s: float
    action: str  # "apply" or "revert"
    index: int
    fault: Fault


@dataclass
class ChaosReport:
    """What a run did: each step with the wall-clock offset it happened at, and skips."""

    origin_unix_s: float
    done: list[tuple[float, TimelineStep]] = field(default_factory=list)
    skipped: list[TimelineStep] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False


def fault_timeline(faults: Sequence[Fault]) -> list[TimelineStep]:
    """Every apply and revert in time order (at equal times, reverts first, so a fault that
    ends when the next begins never overlaps it)."""
    steps = []
    for index, fault in enumerate(faults):
        steps.append(TimelineStep(fault.start_s, "apply", index, fault))
        steps.append(TimelineStep(fault.end_s, "revert", index, fault))
    return sorted(steps, key=lambda s: (s.at_s, s.action != "revert", s.index))


def describe(fault: Fault) -> str:
    """A one-line human description of a topology fault."""
    kind = fault.kind
    if kind == "partition":
        sides = " | ".join(",".join(g) for g in fault.groups)  # type: ignore[union-attr]
        bridges = fault.bridges  # type: ignore[union-attr]
        return f"partition {sides}" + (f" (bridges {','.join(bridges)})" if bridges else "")
    target = fault.target  # type: ignore[union-attr]
    if kind == "added_latency":
        return f"added_latency {target} +{fault.latency_s * 1e3:g} ms"  # type: ignore[union-attr]
    if kind == "cpu_throttle":
        return f"cpu_throttle {target} share {fault.share:g}"  # type: ignore[union-attr]
    return f"{kind} {target}"


class ChaosScheduler:
    """Plays ``faults`` on the devnet behind ``injector``.

    ``origin_unix_s`` (default: the devnet's genesis) is time zero of the faults' ``start``;
    a fault whose whole window is already past is skipped, one already started is applied at
    once and reverted at its end. ``clock``/``sleep`` are seams for tests.
    """

    def __init__(
        self,
        injector: DevnetFaults,
        faults: Sequence[Fault],
        *,
        origin_unix_s: float | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.injector = injector
        self.faults = tuple(faults)
        self.origin_unix_s = (
            injector.devnet.meta.genesis_time_unix_s if origin_unix_s is None else origin_unix_s
        )
        self.clock = clock
        self.sleep = sleep

    def run(
        self,
        *,
        max_duration_s: float | None = None,
        on_step: Callable[[float, TimelineStep], None] | None = None,
    ) -> ChaosReport:
        """Play the timeline; always revert what was applied before returning or raising."""
        report = ChaosReport(self.origin_unix_s)
        started_s = self.clock()
        stop_at_s = None if max_duration_s is None else started_s + max_duration_s
        applied: dict[int, int] = {}  # fault index -> active fault id
        now_rel = started_s - self.origin_unix_s
        try:
            for step in fault_timeline(self.faults):
                if step.action == "apply" and step.fault.end_s <= now_rel:
                    report.skipped.append(step)
                    continue
                if step.action == "revert" and step.index not in applied:
                    continue
                due_s = self.origin_unix_s + step.at_s
                if stop_at_s is not None and due_s > stop_at_s:
                    break
                while (wait_s := due_s - self.clock()) > 0:
                    self.sleep(min(wait_s, 0.5))
                offset_s = self.clock() - self.origin_unix_s
                try:
                    if step.action == "apply":
                        applied[step.index] = self.injector.apply(step.fault).id
                    else:
                        self.injector.revert(applied.pop(step.index))
                except BitcellSimError as exc:
                    report.errors.append(f"{step.action} {describe(step.fault)}: {exc}")
                    continue
                report.done.append((offset_s, step))
                if on_step is not None:
                    on_step(offset_s, step)
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            failures = []
            for index, fault_id in reversed(list(applied.items())):
                try:
                    self.injector.revert(fault_id)
                except BitcellSimError as exc:
                    failures.append(f"revert {describe(self.faults[index])}: {exc}")
                    continue
                step = TimelineStep(
                    self.clock() - self.origin_unix_s, "revert", index, self.faults[index]
                )
                report.done.append((step.at_s, step))
            if failures:
                report.errors += failures
                raise FaultError("could not revert every fault:\n  " + "\n  ".join(failures))
        return report
