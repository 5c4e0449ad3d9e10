"""Command-line overrides of a topology: seed, run length and load, applied before a run.

:func:`apply_overrides` returns a new, re-validated :class:`~bitcell_sim.topology.Topology` and
the list of :class:`Override` (path, old value, new value) it made, so the caller can say what
changed and the run folder's resolved topology holds the values actually used. ``bitcell-sim run``
and ``bitcell-sim load`` both go through it, so ``--tps`` means the same in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from bitcell_sim.errors import TopologyError
from bitcell_sim.topology.loader import parse_topology
from bitcell_sim.topology.schedule import RateProfile
from bitcell_sim.topology.schema import ArrivalProcess, Topology
from bitcell_sim.topology.units import format_duration, parse_duration


@dataclass(frozen=True)
class Override:
    path: str
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.path}: {self.old} -> {self.new}"


def _rate_text(tps: float) -> str:
    return f"{tps:g} TPS"


def apply_overrides(
    topology: Topology,
    *,
    seed: int | None = None,
    duration_s: float | None = None,
    tps: float | None = None,
    load_duration_s: float | None = None,
    arrival: ArrivalProcess | None = None,
) -> tuple[Topology, list[Override]]:
    """The topology with the given values replaced (None leaves a value as it is).

    ``duration_s`` (the run's length) also moves the end of a constant-rate workload so that it
    keeps its start and its quiet time before the end of the run (rc3: load until the end;
    rc3-fast: load stops 50 s before the end). ``tps`` sets a constant rate; a staged workload
    becomes one stage at that rate over the same window (``workload.start`` to the end of the
    last stage); ``workload.start`` is kept either way. ``load_duration_s`` sets how long the
    load lasts from its start (a staged profile is cut, or held at its last rate), extending the
    run if it would end first. ``arrival`` replaces the arrival process.
    """
    data: dict[str, Any] = topology.model_dump(mode="json", by_alias=True)
    changes: list[Override] = []
    if seed is not None:
        if seed < 0:
            raise TopologyError([("general.seed", f"seed {seed} must be >= 0")], "overrides")
        changes.append(Override("general.seed", str(topology.general.seed), str(seed)))
        data["general"]["seed"] = seed
    if duration_s is not None:
        if not duration_s > 0:
            raise TopologyError(
                [("general.duration", f"duration {duration_s} s must be > 0")], "overrides"
            )
        old = format_duration(topology.general.duration_s)
        changes.append(Override("general.duration", old, format_duration(duration_s)))
        data["general"]["duration"] = format_duration(duration_s)
        workload = topology.workload
        if workload.stages is None and workload.duration_s is not None:
            quiet_s = topology.general.duration_s - (workload.start_s + workload.duration_s)
            new_s = duration_s - max(quiet_s, 0.0) - workload.start_s
            if new_s > 0 and new_s != workload.duration_s:
                old = format_duration(workload.duration_s)
                changes.append(Override("workload.duration", old, format_duration(new_s)))
                data["workload"]["duration"] = format_duration(new_s)
    if tps is not None:
        workload = data["workload"]
        stages = topology.workload_stages()
        if topology.workload.stages is not None:
            start_s, end_s = stages[0][0], stages[-1][1]
            old = f"{len(stages)} stages"
            workload["stages"] = None
            workload["duration"] = format_duration(end_s - start_s)
        else:
            old = _rate_text(topology.workload.tps or 0.0)
        changes.append(Override("workload.tps", old, _rate_text(tps)))
        workload["tps"] = tps
    if load_duration_s is not None:
        changes += _load_duration(topology, data, load_duration_s)
    if arrival is not None and arrival != topology.workload.arrival:
        changes.append(Override("workload.arrival", topology.workload.arrival, arrival))
        data["workload"]["arrival"] = arrival
    if not changes:
        return topology, []
    return parse_topology(yaml.safe_dump(data, sort_keys=False), source="overrides"), changes


def _load_duration(
    topology: Topology, data: dict[str, Any], load_duration_s: float
) -> list[Override]:
    """Make the workload in ``data`` last ``load_duration_s`` from its start."""
    if not load_duration_s > 0:
        raise TopologyError(
            [("workload.duration", f"duration {load_duration_s} s must be > 0")], "overrides"
        )
    workload = data["workload"]
    if workload["stages"] is None:
        old = RateProfile.of(topology).duration_s
        workload["duration"] = format_duration(load_duration_s)
        old_text = format_duration(old)
    else:
        profile = RateProfile.of(topology).truncated(load_duration_s)
        workload["stages"] = [
            {
                "duration": format_duration(stage.duration_s),
                "tps": stage.tps_to,
                "ramp": stage.tps_from != stage.tps_to,
            }
            for stage in profile.stages
        ]
        old_text = f"{len(topology.workload.stages or ())} stages"
    changes = [Override("workload.duration", old_text, format_duration(load_duration_s))]
    end_s = topology.workload.start_s + load_duration_s
    if end_s > parse_duration(data["general"]["duration"]):
        changes.append(
            Override("general.duration", data["general"]["duration"], format_duration(end_s))
        )
        data["general"]["duration"] = format_duration(end_s)
    return changes
