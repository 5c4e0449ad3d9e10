"""Shaping arithmetic without sockets: serialization, delay, jitter draws and byte order."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitcell_sim.errors import NetemError
from bitcell_sim.netem import (
    InOrderClock,
    JitterSampler,
    LinkParams,
    Serializer,
    schedule_chunk,
    transmission_time_s,
)
from bitcell_sim.netem.shaping import (
    MAX_PIECE_BYTES,
    MIN_PIECE_BYTES,
    one_way_delay_s,
    piece_size_bytes,
    schedule_eof,
)


def test_transmission_time() -> None:
    # The brief's yardstick: 200 KB over 10 Mbit/s is 160 ms on the wire.
    assert transmission_time_s(200_000, 10e6) == pytest.approx(0.160)
    assert transmission_time_s(1500, 1e9) == pytest.approx(12e-6)
    assert transmission_time_s(10**9, None) == 0.0
    assert transmission_time_s(10**9, 0) == 0.0
    with pytest.raises(NetemError, match=r"size_bytes=-1 must be >= 0"):
        transmission_time_s(-1, 1e6)
    with pytest.raises(NetemError, match=r"bandwidth_bps=-1\.0 must be >= 0"):
        transmission_time_s(10, -1.0)


def test_piece_size_tracks_one_millisecond_of_bandwidth() -> None:
    assert piece_size_bytes(None) == MAX_PIECE_BYTES
    assert piece_size_bytes(100e6) == 12_500
    assert piece_size_bytes(1e6) == MIN_PIECE_BYTES
    assert piece_size_bytes(100e9) == MAX_PIECE_BYTES


def test_serializer_queues_chunks_back_to_back() -> None:
    link = Serializer()
    assert link.depart_s(10.0, 125_000, 1e6) == pytest.approx(11.0)
    # Arrives while the first is still on the wire: starts when it ends.
    assert link.depart_s(10.5, 125_000, 1e6) == pytest.approx(12.0)
    # Arrives after the link went idle: starts at once.
    assert link.depart_s(20.0, 125_000, 1e6) == pytest.approx(21.0)
    assert link.depart_s(30.0, 5, None) == 30.0


def test_200kb_over_10mbit_with_latency() -> None:
    params = LinkParams(latency_s=0.05, bandwidth_bps=10e6)
    pieces = schedule_chunk(100.0, 200_000, params, Serializer(), InOrderClock(), 0.0)
    assert pieces[0].start == 0 and pieces[-1].end == 200_000
    assert all(a.end == b.start for a, b in itertools.pairwise(pieces))
    assert pieces[-1].departure_s == pytest.approx(100.16)
    assert pieces[-1].delivery_s == pytest.approx(100.21)
    # The first piece is delivered long before the last: the link streams, it does not batch.
    assert pieces[0].delivery_s == pytest.approx(100.05 + pieces[0].size_bytes * 8 / 10e6)


def test_unlimited_link_only_adds_delay() -> None:
    params = LinkParams(latency_s=0.04)
    (piece,) = schedule_chunk(5.0, 1000, params, Serializer(), InOrderClock(), 0.0)
    assert (piece.departure_s, piece.delivery_s) == (5.0, pytest.approx(5.04))


def test_extra_latency_adds_and_delay_is_never_negative() -> None:
    params = LinkParams(latency_s=0.01, extra_latency_s=0.2)
    assert one_way_delay_s(params, 0.0) == pytest.approx(0.21)
    assert one_way_delay_s(LinkParams(latency_s=0.01), -0.5) == 0.0


def test_a_late_chunk_never_overtakes_an_earlier_one() -> None:
    params = LinkParams(latency_s=0.05, jitter_s=0.02, jitter_distribution="normal")
    link, clock = Serializer(), InOrderClock()
    (first,) = schedule_chunk(0.0, 100, params, link, clock, jitter_sample_s=+0.04)
    (second,) = schedule_chunk(0.001, 100, params, link, clock, jitter_sample_s=-0.04)
    assert first.delivery_s == pytest.approx(0.09)
    # On its own the second would arrive at 0.011: it waits for the first instead.
    assert second.delivery_s == pytest.approx(0.09)


def test_eof_follows_the_data() -> None:
    params = LinkParams(latency_s=0.03, bandwidth_bps=1e6)
    link, clock = Serializer(), InOrderClock()
    pieces = schedule_chunk(0.0, 12_500, params, link, clock, 0.0)
    eof_s = schedule_eof(0.0, params, link, clock, -0.5)
    assert eof_s >= pieces[-1].delivery_s == pytest.approx(0.13)


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=0.05),  # gap before the chunk, s
            st.integers(min_value=1, max_value=300_000),  # size, bytes
            st.floats(min_value=-0.1, max_value=0.1),  # jitter draw, s
        ),
        min_size=1,
        max_size=40,
    ),
    latency_s=st.floats(min_value=0.0, max_value=0.2),
    bandwidth_bps=st.one_of(st.none(), st.floats(min_value=1e5, max_value=1e10)),
)
def test_schedule_invariants(
    chunks: list[tuple[float, int, float]], latency_s: float, bandwidth_bps: float | None
) -> None:
    params = LinkParams(
        latency_s=latency_s,
        jitter_s=0.05,
        jitter_distribution="uniform",
        bandwidth_bps=bandwidth_bps,
    )
    link, clock = Serializer(), InOrderClock()
    now_s, last_delivery_s, last_departure_s = 0.0, -math.inf, -math.inf
    for gap_s, size, jitter_s in chunks:
        now_s += gap_s
        pieces = schedule_chunk(now_s, size, params, link, clock, jitter_s)
        assert sum(p.size_bytes for p in pieces) == size
        for piece in pieces:
            # Byte order: delivery and departure times never go backwards.
            assert piece.delivery_s >= last_delivery_s
            assert piece.departure_s >= last_departure_s
            # A piece leaves no earlier than it arrived plus its own transmission time...
            wire_s = transmission_time_s(piece.size_bytes, bandwidth_bps)
            assert piece.departure_s >= now_s + wire_s - 1e-9
            # ...and is delivered no earlier than departure plus its (non-negative) delay.
            assert piece.delivery_s >= piece.departure_s + one_way_delay_s(params, jitter_s) - 1e-9
            assert piece.delivery_s >= piece.departure_s
            last_delivery_s, last_departure_s = piece.delivery_s, piece.departure_s


def test_jitter_draws_are_seeded_and_reproducible() -> None:
    a = JitterSampler("normal", np.random.default_rng(42), block=7)
    b = JitterSampler("normal", np.random.default_rng(42), block=64)
    draws_a = [a.sample_s(0.01) for _ in range(100)]
    draws_b = [b.sample_s(0.01) for _ in range(100)]
    # The block size is an implementation detail: same seed, same sequence.
    assert draws_a == pytest.approx(draws_b)
    expected = np.random.default_rng(42).standard_normal(100) * 0.01
    assert draws_a == pytest.approx(list(expected))
    c = JitterSampler("normal", np.random.default_rng(43))
    assert [c.sample_s(0.01) for _ in range(100)] != pytest.approx(draws_a)


def test_jitter_distributions_have_their_documented_shape() -> None:
    n, scale_s = 20_000, 0.01
    sampler = JitterSampler("normal", np.random.default_rng(1))
    normal = np.array([sampler.sample_s(scale_s) for _ in range(n)])
    assert abs(normal.mean()) < 0.0005 and normal.std() == pytest.approx(scale_s, rel=0.05)

    sampler = JitterSampler("uniform", np.random.default_rng(2))
    uniform = np.array([sampler.sample_s(scale_s) for _ in range(n)])
    assert uniform.min() >= -scale_s and uniform.max() <= scale_s
    assert abs(uniform.mean()) < 0.0005 and uniform.std() == pytest.approx(
        scale_s / math.sqrt(3), rel=0.05
    )

    sampler = JitterSampler("pareto", np.random.default_rng(3))
    pareto = np.array([sampler.sample_s(scale_s) for _ in range(n)])
    assert pareto.min() >= 0.0
    assert pareto.mean() == pytest.approx(scale_s, rel=0.1)
    assert np.percentile(pareto, 99.9) > 8 * scale_s  # heavy tail

    sampler = JitterSampler("none", np.random.default_rng(4))
    assert {sampler.sample_s(scale_s) for _ in range(10)} == {0.0}
    sampler = JitterSampler("normal", np.random.default_rng(5))
    assert sampler.sample_s(0.0) == 0.0


def test_jitter_sampler_rejects_unknown_distribution() -> None:
    with pytest.raises(NetemError, match=r"jitter_distribution='lognormal' must be one of"):
        JitterSampler("lognormal", np.random.default_rng(0))


def test_schedule_chunk_rejects_empty_chunks() -> None:
    with pytest.raises(NetemError, match=r"size_bytes=0 must be > 0"):
        schedule_chunk(0.0, 0, LinkParams(), Serializer(), InOrderClock(), 0.0)
