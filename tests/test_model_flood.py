"""Flood gossip: relays on receipt or in tx batches, fault losses, and the jitter streams."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from bitcell_sim.model.flood import Flood
from bitcell_sim.model.links import Link, MessageJitter, TickJitter, standard_jitter
from bitcell_sim.model.schedule import FaultSchedule
from bitcell_sim.topology import Topology, parse_topology

BANDWIDTH_BPS = 8e6  # 1 byte per microsecond
AB_S, BC_S = 0.030, 0.050  # one-way latencies


def line(faults: str = "[]") -> Topology:
    """a - b - c, no jitter: one-way 30 ms a-b and 50 ms b-c (a-c is not a peer link)."""
    return parse_topology(
        textwrap.dedent(
            f"""
            regions:
              x: {{rtt: {{x: 2 ms, y: 60 ms, z: 300 ms}}}}
              y: {{rtt: {{y: 2 ms, z: 100 ms}}}}
              z: {{rtt: {{z: 2 ms}}}}
            links: {{bandwidth: 8 Mbit}}
            nodes: {{a: {{region: x}}, b: {{region: y}}, c: {{region: z}}}}
            peers: [[a, b], [b, c]]
            faults: {faults}
            """
        )
    )


def flood_of(topology: Topology) -> Flood:
    index = {n: i for i, n in enumerate(topology.node_names)}
    pairs = [(index[a], index[b]) for a, b in topology.peer_edges]
    directed = [p for a, b in pairs for p in ((a, b), (b, a))]
    latency = np.array(
        [
            topology.one_way_latency_s(topology.node_names[a], topology.node_names[b])
            for a, b in directed
        ]
    )
    return Flood(
        3,
        np.array([a for a, _ in directed]),
        np.array([b for _, b in directed]),
        latency,
        BANDWIDTH_BPS,
        FaultSchedule(topology, index),
        0,
        [np.random.default_rng(i) for i in range(3)],
    )


def quiet_jitters(count: int) -> list[MessageJitter]:
    return [MessageJitter("none", 0.0, np.random.default_rng(i)) for i in range(count)]


def test_messages_relay_on_receipt() -> None:
    heard = flood_of(line()).spread_messages(
        np.array([0, 2]), np.array([1.0, 2.0]), 100, quiet_jitters(4)
    )
    serialize = 100e-6
    assert heard[0] == pytest.approx(
        [1.0, 1.0 + serialize + AB_S, 1.0 + 2 * serialize + AB_S + BC_S]
    )
    assert heard[1] == pytest.approx(
        [2.0 + 2 * serialize + AB_S + BC_S, 2.0 + serialize + BC_S, 2.0]
    )


def test_batches_wait_for_the_next_tick_after_validation() -> None:
    heard = flood_of(line()).spread_batched(
        np.array([0]), np.array([0.01]), 200, 0.05, 0.001, TickJitter("none", 0.0, [])
    )
    at_b = 0.05 + 200e-6 + AB_S  # a's batch leaves at the 0.05 s tick
    b_sends = 0.10  # next tick after b validated it (at_b + 1 ms)
    assert heard[0] == pytest.approx([0.01, at_b, b_sends + 200e-6 + BC_S])


def test_a_tx_validated_exactly_on_a_tick_leaves_on_that_tick() -> None:
    heard = flood_of(line()).spread_batched(
        np.array([0]), np.array([0.1]), 0, 0.05, 0.0, TickJitter("none", 0.0, [])
    )
    assert heard[0, 1] == pytest.approx(0.1 + AB_S)


def test_partition_and_down_relay_stop_the_flood() -> None:
    cut = line("[{kind: partition, groups: [[a]], start: 0 s, duration: 1 s}]")
    # Healed at 1 s, the cut connections are redialled at 1.6 s: a message at 1.7 s gets through.
    heard = flood_of(cut).spread_messages(
        np.array([0, 0]), np.array([0.5, 1.7]), 10, quiet_jitters(4)
    )
    assert np.isinf(heard[0, 1:]).all() and np.isfinite(heard[1]).all()
    down = line("[{kind: node_down, target: b, start: 0 s, duration: 1 s}]")
    heard = flood_of(down).spread_batched(
        np.array([0, 0]), np.array([0.2, 0.99]), 10, 0.05, 0.0, TickJitter("none", 0.0, [])
    )
    # b is down when the first arrives; the second reaches b after its restart at 1 s.
    assert np.isinf(heard[0, 1:]).all()
    assert heard[1, 1] == pytest.approx(1.0 + 10 * 1e-6 + AB_S)


def test_added_latency_applies_to_links_touching_the_target() -> None:
    slow = line("[{kind: added_latency, target: c, start: 0 s, duration: 10 s, latency: 1 s}]")
    heard = flood_of(slow).spread_messages(np.array([0]), np.array([0.0]), 0, quiet_jitters(4))
    assert heard[0] == pytest.approx([0.0, AB_S, AB_S + BC_S + 1.0])


def test_single_link_serializes_in_order_and_loses_across_partitions() -> None:
    topology = line("[{kind: partition, groups: [[a]], start: 5 s, duration: 1 s}]")
    schedule = FaultSchedule(topology, {"a": 0, "b": 1, "c": 2})
    link = Link(0, 1, AB_S, BANDWIDTH_BPS, quiet_jitters(1)[0], schedule)
    assert link.transmit(1.0, 1000) == pytest.approx(1.0 + 1e-3 + AB_S)
    # Sent at the same instant: waits for the first to leave the link.
    assert link.transmit(1.0, 1000) == pytest.approx(1.0 + 2e-3 + AB_S)
    assert link.transmit(5.5, 10) is None
    assert link.transmit(4.99, 10) is None  # still in flight when the partition starts


@pytest.mark.parametrize("distribution", ["normal", "uniform", "pareto"])
def test_jitter_draws_follow_the_link_emulator_definitions(distribution: str) -> None:
    draws = standard_jitter(distribution, np.random.default_rng(5), 200_000)
    if distribution == "normal":
        assert draws.std() == pytest.approx(1.0, rel=0.02)
    elif distribution == "uniform":
        assert draws.min() >= -1 and draws.max() <= 1
    else:
        assert draws.min() >= 0 and draws.mean() == pytest.approx(1.0, rel=0.05)


def test_message_jitter_scalar_and_vector_draws_are_one_sequence() -> None:
    one = MessageJitter("normal", 0.002, np.random.default_rng(9), block=4)
    two = MessageJitter("normal", 0.002, np.random.default_rng(9), block=4)
    singles = [one.sample_s() for _ in range(3)] + list(one.take_s(7)) + [one.sample_s()]
    assert singles == list(two.take_s(11))


def test_tick_jitter_does_not_depend_on_the_order_of_questions() -> None:
    rngs = lambda: [np.random.default_rng(i) for i in range(3)]  # noqa: E731
    early = TickJitter("normal", 0.002, rngs(), chunk_ticks=8)
    late = TickJitter("normal", 0.002, rngs(), chunk_ticks=8)
    first = early.lookup_s(np.array([0, 1, 2]), np.array([3, 3, 30]))
    late.lookup_s(np.array([1]), np.array([20]))
    assert list(late.lookup_s(np.array([0, 1, 2]), np.array([3, 3, 30]))) == list(first)
