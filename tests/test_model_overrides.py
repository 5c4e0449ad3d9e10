"""Overrides of seed, duration and load: new values, what changed, and bad values."""

from __future__ import annotations

import pytest

from bitcell_sim.errors import TopologyError
from bitcell_sim.model import apply_overrides
from bitcell_sim.topology import load_topology
from tests.model_topologies import TOPOLOGIES, variant


def test_no_override_is_the_same_object() -> None:
    topology = load_topology(TOPOLOGIES / "rc3.yaml")
    assert apply_overrides(topology) == (topology, [])


def test_duration_keeps_the_workload_quiet_time() -> None:
    fast = load_topology(TOPOLOGIES / "rc3-fast.yaml")  # load 10 s..70 s of a 120 s run
    new, changes = apply_overrides(fast, duration_s=300.0, seed=9)
    assert new.general.duration_s == 300 and new.general.seed == 9
    assert new.workload_stages() == ((10.0, 250.0, 100.0, 100.0),)
    assert [str(c) for c in changes] == [
        "general.seed: 1 -> 9",
        "general.duration: 2 min -> 5 min",
        "workload.duration: 1 min -> 4 min",
    ]
    rc3, _ = apply_overrides(load_topology(TOPOLOGIES / "rc3.yaml"), duration_s=3600.0)
    assert rc3.workload_stages()[0][:2] == (0.0, 3600.0)


def test_tps_replaces_stages_with_one_constant_stage() -> None:
    staged = variant(
        "rc3",
        workload={
            "tps": None,
            "duration": None,
            "start": "5 s",
            "stages": [{"duration": "20 s", "tps": 10}, {"duration": "40 s", "tps": 50}],
        },
    )
    new, changes = apply_overrides(staged, tps=42)
    assert new.workload_stages() == ((5.0, 65.0, 42.0, 42.0),)
    assert str(changes[0]) == "workload.tps: 2 stages -> 42 TPS"


def test_bad_values_name_the_field() -> None:
    topology = load_topology(TOPOLOGIES / "rc3.yaml")
    with pytest.raises(TopologyError, match=r"general.duration: duration -5.0 s must be > 0"):
        apply_overrides(topology, duration_s=-5.0)
    with pytest.raises(TopologyError, match=r"general.seed: seed -1 must be >= 0"):
        apply_overrides(topology, seed=-1)
    with pytest.raises(TopologyError, match=r"workload.tps"):
        apply_overrides(topology, tps=-3)


def test_load_duration_cuts_or_holds_the_profile_and_extends_the_run() -> None:
    fast = load_topology(TOPOLOGIES / "rc3-fast.yaml")  # load 10 s..70 s of a 120 s run
    new, changes = apply_overrides(fast, load_duration_s=30.0)
    assert new.workload_stages() == ((10.0, 40.0, 100.0, 100.0),)
    assert [str(c) for c in changes] == ["workload.duration: 1 min -> 30 s"]
    longer, changes = apply_overrides(fast, tps=20, load_duration_s=200.0)
    assert longer.workload_stages() == ((10.0, 210.0, 20.0, 20.0),)
    assert longer.general.duration_s == 210.0
    assert "general.duration: 2 min -> 3.5 min" in [str(c) for c in changes]
    staged = variant(
        "rc3",
        workload={
            "tps": None,
            "duration": None,
            "start": "5 s",
            "stages": [
                {"duration": "20 s", "tps": 10, "ramp": True},
                {"duration": "40 s", "tps": 50},
            ],
        },
    )
    cut, _ = apply_overrides(staged, load_duration_s=10.0)
    assert cut.workload_stages() == ((5.0, 15.0, 0.0, 5.0),)
    held, _ = apply_overrides(staged, load_duration_s=90.0)
    assert held.workload_stages()[-1] == (65.0, 95.0, 50.0, 50.0)


def test_tps_keeps_the_workload_start_and_arrival_is_replaced() -> None:
    fast = load_topology(TOPOLOGIES / "rc3-fast.yaml")
    new, changes = apply_overrides(fast, tps=50, arrival="constant")
    assert new.workload_stages() == ((10.0, 70.0, 50.0, 50.0),)
    assert new.workload.arrival == "constant"
    assert [str(c) for c in changes] == [
        "workload.tps: 100 TPS -> 50 TPS",
        "workload.arrival: poisson -> constant",
    ]
