"""The arrival schedule: rate profiles and ramps, constant and Poisson processes, region weights,
gas prices, the seed tree, and the load's view of the same schedule."""

from __future__ import annotations

import numpy as np
import pytest

from bitcell_sim.errors import TopologyError
from bitcell_sim.topology import (
    RateProfile,
    RateStage,
    SeedTree,
    Workload,
    arrival_schedule,
)
from tests.model_topologies import variant


def arrivals(workload: dict[str, object], until_s: float = 100.0, seed: int = 1):
    topology = variant("rc3", workload=workload, general={"duration": f"{until_s} s", "seed": seed})
    return topology, arrival_schedule(topology)


def test_constant_rate_is_evenly_spaced_from_the_start() -> None:
    _, a = arrivals({"tps": 4, "start": "10 s", "duration": "5 s", "arrival": "constant"})
    assert a.submit_s.tolist() == [10 + k / 4 for k in range(20)]


def test_constant_ramp_follows_the_cumulative_rate() -> None:
    stages = [{"duration": "10 s", "tps": 10, "ramp": True}, {"duration": "10 s", "tps": 10}]
    _, a = arrivals({"tps": None, "duration": None, "stages": stages, "arrival": "constant"})
    # Ramp 0 -> 10 TPS over 10 s: the cumulative rate is t^2/2, so the k-th tx is at sqrt(2k).
    ramp = a.submit_s[a.submit_s < 10]
    assert ramp == pytest.approx(np.sqrt(2 * np.arange(len(ramp))))
    assert len(ramp) == 50 and len(a.submit_s) == 150


def test_poisson_count_and_gaps() -> None:
    _, a = arrivals({"tps": 200, "duration": "100 s"}, until_s=1000)
    assert len(a) == pytest.approx(20_000, abs=4 * np.sqrt(20_000))
    gaps = np.diff(a.submit_s)
    assert gaps.mean() == pytest.approx(1 / 200, rel=0.03)
    assert gaps.std() == pytest.approx(1 / 200, rel=0.05)  # exponential: std = mean


def test_arrivals_stop_at_the_end_of_the_run() -> None:
    _, a = arrivals({"tps": 50, "duration": "10 min"}, until_s=30)
    assert a.submit_s.max() < 30


def test_region_weights_and_gas_prices() -> None:
    weights = {"us-east": 3, "ap-southeast": 1, "us-west": 0, "eu-central": 0}
    topology, a = arrivals({"tps": 500, "duration": "60 s", "region_weights": weights})
    names = np.array(topology.node_names)[a.node]
    share_ap = np.mean(names == "ap-southeast-1")
    assert share_ap == pytest.approx(0.25, abs=0.02)
    assert set(names) == {"us-east-1", "us-east-2", "ap-southeast-1"}
    assert np.mean(names == "us-east-1") == pytest.approx(0.375, abs=0.02)
    gas = topology.workload.gas_price
    assert a.gas_price.min() >= gas.min and a.gas_price.max() <= gas.max


def test_same_seed_same_arrivals() -> None:
    one = arrivals({"tps": 30, "duration": "60 s"}, seed=4)[1]
    two = arrivals({"tps": 30, "duration": "60 s"}, seed=4)[1]
    assert one.submit_s.tolist() == two.submit_s.tolist()
    assert one.node.tolist() == two.node.tolist()


def test_other_seed_other_arrivals_and_the_workload_stream_is_the_trees() -> None:
    topology, one = arrivals({"tps": 30, "duration": "60 s"}, seed=4)
    other = arrivals({"tps": 30, "duration": "60 s"}, seed=5)[1]
    assert one.submit_s.tolist() != other.submit_s.tolist()
    # The schedule's first draws are the workload stream's: exponential gaps at 30 TPS.
    first_gap = SeedTree(4).workload().standard_exponential(1)[0] / 30
    assert one.submit_s[0] == pytest.approx(topology.workload.start_s + first_gap)


def test_seed_tree_paths_are_spawn_children() -> None:
    root = np.random.SeedSequence(11)
    workload, nodes, links, consensus = root.spawn(4)
    tree = SeedTree(11)
    assert tree.sequence(0).generate_state(4).tolist() == workload.generate_state(4).tolist()
    node_3 = nodes.spawn(5)[3]
    assert tree.sequence(1, 3).generate_state(4).tolist() == node_3.generate_state(4).tolist()
    batches_2 = links.spawn(4)[2].spawn(3)[1]
    assert tree.sequence(2, 2, 1).generate_state(4).tolist() == batches_2.generate_state(4).tolist()
    seeds = {tree.emulator_seed(i) for i in range(50)}
    assert len(seeds) == 50 and all(0 <= s < 2**64 for s in seeds)
    assert tree.consensus_key() == int(consensus.generate_state(1, dtype=np.uint64)[0])
    assert tree.consensus_key() != SeedTree(12).consensus_key()


def test_workload_travels_as_a_dict_and_draws_the_same() -> None:
    stages = [{"duration": "10 s", "tps": 20, "ramp": True}, {"duration": "20 s", "tps": 20}]
    topology = variant("rc3", workload={"tps": None, "duration": None, "stages": stages})
    workload = Workload.of(topology)
    again = Workload.from_dict(workload.to_dict())
    assert again == workload
    one, two = workload.draw(), again.draw()
    assert one.submit_s.tolist() == two.submit_s.tolist()
    assert one.node_names().tolist() == two.node_names().tolist()
    assert one.gas_price.tolist() == two.gas_price.tolist()


RAMP_HOLD_SPIKE = RateProfile(
    (RateStage(10.0, 40.0, 0.0, 100.0), RateStage(40.0, 100.0, 100.0, 100.0),
     RateStage(100.0, 110.0, 300.0, 300.0))
)  # fmt: skip


def test_profile_integrates_and_shifts() -> None:
    p = RAMP_HOLD_SPIKE
    assert (p.start_s, p.end_s, p.duration_s) == (10.0, 110.0, 100.0)
    assert p.total_count == pytest.approx(1500 + 6000 + 3000)
    assert p.rate_at(25.0) == pytest.approx(50.0)
    assert p.rate_at(105.0) == 300.0 and p.rate_at(110.0) == 0.0 and p.rate_at(9.0) == 0.0
    assert p.peak_between(20.0, 45.0) == 100.0 and p.peak_between(0.0, 200.0) == 300.0
    assert [s.start_s for s in p.shifted(-10.0).stages] == [0.0, 30.0, 90.0]
    assert [s.is_hold for s in p.stages] == [False, True, True]


def test_ramp_inversion_meets_the_integral() -> None:
    ramp = RAMP_HOLD_SPIKE.stages[0]
    counts = np.array([0.0, 1.0, 10.0, 750.0, 1499.9])
    times = ramp.times_of(counts)
    tau = times - ramp.start_s
    assert ramp.tps_from * tau + ramp.slope * tau**2 / 2 == pytest.approx(counts)
    down = RateStage(0.0, 10.0, 50.0, 0.0)
    assert down.times_of(np.array([100.0]))[0] == pytest.approx(10 - np.sqrt(2 * 150 / 5))


def test_truncate_and_extend() -> None:
    p = RAMP_HOLD_SPIKE.truncated(35.0)
    assert p.end_s == 45.0 and len(p.stages) == 2
    assert p.total_count == pytest.approx(1500 + 500)
    longer = RateProfile.constant(10, 5).truncated(8)
    assert longer.total_count == pytest.approx(80)
    assert longer.hold_stages()[-1].start_s == 5


def test_profile_errors_name_the_stage() -> None:
    with pytest.raises(TopologyError, match=r"workload.stages\[1\]: starts at 5 s, expected 10 s"):
        RateProfile((RateStage(0, 10, 1, 1), RateStage(5, 20, 1, 1)))
    with pytest.raises(TopologyError, match="negative rate"):
        RateProfile((RateStage(0, 10, -1, 1),))
    with pytest.raises(TopologyError, match=r"duration 0(\.0)? s must be > 0"):
        RateProfile.constant(10, 0)
