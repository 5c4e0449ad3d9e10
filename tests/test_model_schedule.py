"""The fault schedule: windows per node, partition sides, added latency, CPU shares."""

from __future__ import annotations

import math

import numpy as np

from bitcell_sim.model.schedule import FaultSchedule
from tests.model_topologies import variant

FAULTS = [
    {"kind": "node_down", "target": "us-west-1", "start": "10 s", "duration": "10 s"},
    {"kind": "region_down", "target": "us-west", "start": "15 s", "duration": "10 s"},
    {
        "kind": "partition",
        "groups": [["us-east"], ["eu-central"]],
        "start": "30 s",
        "duration": "5 s",
    },
    {
        "kind": "added_latency",
        "target": "ap-southeast",
        "start": "40 s",
        "duration": "5 s",
        "latency": "200 ms",
    },
    {
        "kind": "cpu_throttle",
        "target": "us-east-1",
        "start": "50 s",
        "duration": "5 s",
        "share": 0.25,
    },
]


def schedule() -> tuple[FaultSchedule, dict[str, int]]:
    # No process start-up: the down windows are the faults' own (start-up extends them, tested
    # in test_model_rc3).
    topology = variant("rc3", faults=FAULTS, protocol={"processing": {"startup": "0 s"}})
    index = {n: i for i, n in enumerate(topology.node_names)}
    return FaultSchedule(topology, index), index


def test_down_windows_merge_and_are_half_open() -> None:
    s, i = schedule()
    assert s.down[i["us-west-1"]] == [(10.0, 25.0)]
    assert s.down[i["us-west-2"]] == [(15.0, 25.0)]
    assert s.is_up(i["us-west-1"], 9.99) and not s.is_up(i["us-west-1"], 10.0)
    assert s.is_up(i["us-west-1"], 25.0)
    assert s.down_between(i["us-west-2"], 14.0, 15.0)
    assert not s.down_between(i["us-west-2"], 25.0, 30.0)
    assert s.up_since(i["us-west-1"], 30.0) == 25.0
    assert s.up_since(i["us-west-1"], 12.0) == math.inf
    assert s.up_since(i["us-east-1"], 12.0) == -math.inf
    nodes = np.array([i["us-west-1"], i["us-west-1"], i["us-east-1"]])
    assert s.down_at(nodes, np.array([9.0, 24.0, 12.0])).tolist() == [False, True, False]


def test_partition_sides_include_the_rest_as_a_side() -> None:
    s, i = schedule()
    east, eu, ap = i["us-east-1"], i["eu-central-1"], i["ap-southeast-1"]
    assert s.cut(east, eu, 31.0) and s.cut(east, ap, 31.0) and s.cut(eu, ap, 31.0)
    assert not s.cut(east, i["us-east-2"], 31.0)
    # The cut reset the connections; redialled 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.2 s after it,
    # they carry messages again from 35.2 s, not at the heal (35 s).
    assert s.cut(east, eu, 35.0) and s.cut(east, eu, 35.19)
    assert not s.cut(east, eu, 35.2)
    assert s.cut_between(east, eu, 29.0, 30.0) and not s.cut_between(east, eu, 20.0, 29.9)


def test_added_latency_and_cpu_share() -> None:
    s, i = schedule()
    ap, east = i["ap-southeast-1"], i["us-east-1"]
    assert s.extra_latency_s(east, ap, 41.0) == 0.2 == s.extra_latency_s(ap, east, 41.0)
    assert s.extra_latency_s(east, i["us-east-2"], 41.0) == 0.0
    assert s.cpu_share(east, 52.0) == 0.25 and s.cpu_share(east, 55.0) == 1.0
    shares = s.cpu_share_at(np.array([east, east, ap]), np.array([52.0, 49.0, 52.0]))
    assert shares.tolist() == [0.25, 1.0, 1.0]
