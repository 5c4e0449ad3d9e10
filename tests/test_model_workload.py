"""Arrivals: constant and Poisson processes, ramps, region weights, gas prices."""

from __future__ import annotations

import numpy as np
import pytest

from bitcell_sim.model.workload import generate_arrivals
from tests.model_topologies import variant


def arrivals(workload: dict[str, object], until_s: float = 100.0, seed: int = 1):
    topology = variant("rc3", workload=workload)
    index = {n: i for i, n in enumerate(topology.node_names)}
    return topology, generate_arrivals(topology, np.random.default_rng(seed), until_s, index)


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
