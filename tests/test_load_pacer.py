"""The rate profile and the open-loop pacer: counts, spacing, stages, splits across processes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bitcell_sim.errors import LoadError
from bitcell_sim.load import ArrivalStream, Pacer, RateProfile, RateStage, load_rng
from bitcell_sim.topology import parse_topology

RAMP_HOLD_SPIKE = RateProfile.from_stages(
    [(10.0, 40.0, 0.0, 100.0), (40.0, 100.0, 100.0, 100.0), (100.0, 110.0, 300.0, 300.0)]
)


def test_from_stages_shifts_to_zero_and_integrates() -> None:
    p = RAMP_HOLD_SPIKE
    assert [s.start_s for s in p.stages] == [0.0, 30.0, 90.0]
    assert p.duration_s == 100.0
    assert p.total_count == pytest.approx(1500 + 6000 + 3000)
    assert p.count_until(15.0) == pytest.approx(0.5 * 15 * 50)  # triangle under the ramp
    assert p.rate_at(15.0) == pytest.approx(50.0)
    assert p.rate_at(95.0) == 300.0 and p.rate_at(100.0) == 0.0 and p.rate_at(-1) == 0.0


@pytest.mark.parametrize("count", [0.0, 1.0, 10.0, 1499.9, 1500.0, 4000.0, 7600.0, 10_499.0])
def test_time_of_count_inverts_count_until(count: float) -> None:
    t = RAMP_HOLD_SPIKE.time_of_count(count)
    assert RAMP_HOLD_SPIKE.count_until(t) == pytest.approx(count, abs=1e-6)


def test_ramp_down_and_zero_rate_stages_invert() -> None:
    p = RateProfile((RateStage(0, 10, 50, 0), RateStage(10, 20, 0, 0), RateStage(20, 30, 20, 20)))
    assert p.total_count == pytest.approx(250 + 0 + 200)
    assert p.time_of_count(100.0) == pytest.approx(10 - math.sqrt(2 * 150 / 5))
    # Nothing is due in the silent stage: count 250 is reached at its start.
    assert p.time_of_count(250.0 + 1e-9) == pytest.approx(20.0, abs=1e-6)


def test_truncate_and_extend() -> None:
    p = RAMP_HOLD_SPIKE.truncated(45.0)
    assert p.duration_s == 45.0 and len(p.stages) == 2
    assert p.total_count == pytest.approx(1500 + 1500)
    longer = RateProfile.constant(10, 5).truncated(8)
    assert longer.total_count == pytest.approx(80)
    assert longer.hold_stages()[-1].start_s == 5


def test_profile_errors_name_the_value() -> None:
    with pytest.raises(LoadError, match=r"duration\(=0 s\) must be > 0"):
        RateProfile.constant(10, 0)
    with pytest.raises(LoadError, match=r"stage 1 starts at 5 s, expected 10 s"):
        RateProfile((RateStage(0, 10, 1, 1), RateStage(5, 20, 1, 1)))
    with pytest.raises(LoadError, match="negative rate"):
        RateProfile((RateStage(0, 10, -1, 1),))


def test_from_topology_uses_the_workload_and_overrides(rc3_fast_path) -> None:
    topology = parse_topology(rc3_fast_path.read_text())
    p = RateProfile.from_topology(topology)
    assert (p.duration_s, p.mean_tps) == (60.0, 100.0)  # the 10 s start offset is dropped
    assert RateProfile.from_topology(topology, tps=40, duration_s=5).total_count == 200
    assert RateProfile.from_topology(topology, duration_s=30).total_count == 3000


def test_constant_stream_is_evenly_spaced_with_exact_count() -> None:
    times = list(ArrivalStream(RateProfile.constant(100, 10), 1.0, 0.5, "constant"))
    assert len(times) == 1000
    assert np.allclose(np.diff(times), 0.01)
    assert times[0] == pytest.approx(0.005)


def test_poisson_stream_has_exact_window_counts_and_exponential_gaps() -> None:
    profile = RateProfile.constant(200, 60)
    times = np.array(list(ArrivalStream(profile, 1.0, 0.5, "poisson", load_rng(7, 0))))
    assert len(times) == 12_000
    assert np.all(np.diff(times) >= 0)
    for start in range(0, 60, 10):
        assert np.count_nonzero((times >= start) & (times < start + 10)) == 2000
    gaps = np.diff(times)
    # Exponential gaps: mean 1/λ and coefficient of variation 1 (constant would be 0).
    assert gaps.mean() == pytest.approx(1 / 200, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)


def test_stream_follows_a_ramp() -> None:
    profile = RateProfile((RateStage(0, 20, 0, 100),))
    times = np.array(list(ArrivalStream(profile, 1.0, 0.5, "constant")))
    assert len(times) == 1000
    # A quarter of the count falls in the first half of a linear ramp from zero.
    assert np.count_nonzero(times < 10) == 250


@pytest.mark.parametrize("arrival", ["constant", "poisson"])
def test_split_across_processes_adds_up_to_the_whole(arrival: str) -> None:
    profile = RAMP_HOLD_SPIKE
    weights = {"a": 2.0, "b": 2.0, "c": 1.0}
    per_key: dict[str, list[float]] = {k: [] for k in weights}
    for rank in range(3):
        pacer = Pacer.split(profile, weights, arrival, seed=5, rank=rank, count=3)  # type: ignore[arg-type]
        for key in weights:
            while (slot := pacer.take(key)) is not None:
                per_key[key].append(slot)
    whole = Pacer.split(profile, weights, arrival, seed=5)  # type: ignore[arg-type]
    for key, weight in weights.items():
        expected = weight / 5 * profile.total_count
        assert abs(len(per_key[key]) - expected) <= 1
        single = []
        while (slot := whole.take(key)) is not None:
            single.append(slot)
        assert len(single) == len(per_key[key])
        if arrival == "constant":
            # The ranks interleave exactly into the single-process schedule.
            assert np.allclose(sorted(per_key[key]), single)


def test_pacer_give_back_hands_the_slot_out_first() -> None:
    pacer = Pacer.split(RateProfile.constant(10, 1), {"r": 1.0}, "constant", seed=1)
    first, second = pacer.take("r"), pacer.take("r")
    assert (first, second) == (pytest.approx(0.05), pytest.approx(0.15))
    pacer.give_back("r", first)  # type: ignore[arg-type]
    assert pacer.take("r") == first
    assert pacer.take("r") == pytest.approx(0.25)
    assert pacer.taken["r"] == 3


def test_pacer_is_reproducible_from_the_seed_and_exhausts() -> None:
    def drain(seed: int) -> list[float]:
        pacer = Pacer.split(RateProfile.constant(50, 2), {"r": 1.0}, "poisson", seed=seed)
        out = []
        while (slot := pacer.take("r")) is not None:
            out.append(slot)
        assert pacer.exhausted()
        return out

    assert drain(3) == drain(3)
    assert drain(3) != drain(4)
    assert len(drain(3)) == 100


def test_pacer_errors() -> None:
    profile = RateProfile.constant(1, 1)
    with pytest.raises(LoadError, match="rank 2 of 2 is out of range"):
        Pacer.split(profile, {"r": 1.0}, "constant", seed=1, rank=2, count=2)
    with pytest.raises(LoadError, match="no stream 'x'"):
        Pacer.split(profile, {"r": 1.0}, "constant", seed=1).take("x")
    with pytest.raises(LoadError, match=r"arrival\(='burst'\)"):
        ArrivalStream(profile, 1.0, 0.0, "burst")  # type: ignore[arg-type]
