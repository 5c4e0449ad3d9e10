"""Flood gossip: relays on receipt or in tx batches, fault losses, jitter, the offer queue."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from bitcell_sim.model.flood import Flood
from bitcell_sim.model.links import Link, MessageJitter, TickJitter, standard_jitter
from bitcell_sim.model.offers import (
    any_due,
    offer_queue,
    overflows,
    pop_due,
    push_floods,
    with_room,
)
from bitcell_sim.model.relax import JITTER_CODES, fanout_use, message_jitter_s
from bitcell_sim.model.schedule import FaultSchedule
from bitcell_sim.topology import Topology, parse_topology
from bitcell_sim.topology.jitter import JITTER_DISTRIBUTIONS

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


def quiet_jitters(count: int) -> list[MessageJitter]:
    return [MessageJitter("none", 0.0, np.random.default_rng(i)) for i in range(count)]


def test_messages_relay_on_receipt() -> None:
    heard = flood_of(line()).spread_messages(
        np.array([0, 2]), np.array([1.0, 2.0]), 100, np.array([0, 1])
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
    assert heard[:, 0] == pytest.approx([0.01, at_b, b_sends + 200e-6 + BC_S])


def test_a_tx_validated_exactly_on_a_tick_leaves_on_that_tick() -> None:
    heard = flood_of(line()).spread_batched(
        np.array([0]), np.array([0.1]), 0, 0.05, 0.0, TickJitter("none", 0.0, [])
    )
    assert heard[1, 0] == pytest.approx(0.1 + AB_S)


def test_partition_and_down_relay_stop_the_flood() -> None:
    cut = line("[{kind: partition, groups: [[a]], start: 0 s, duration: 1 s}]")
    # Healed at 1 s, the cut connections are redialled at 1.6 s: a message at 1.7 s gets through.
    heard = flood_of(cut).spread_messages(
        np.array([0, 0]), np.array([0.5, 1.7]), 10, np.array([0, 1])
    )
    assert np.isinf(heard[0, 1:]).all() and np.isfinite(heard[1]).all()
    down = line("[{kind: node_down, target: b, start: 0 s, duration: 1 s}]")
    heard = flood_of(down).spread_batched(
        np.array([0, 0]), np.array([0.2, 0.99]), 10, 0.05, 0.0, TickJitter("none", 0.0, [])
    )
    # b is down when the first arrives; the second reaches b after its restart at 1 s.
    assert np.isinf(heard[1:, 0]).all()
    assert heard[1, 1] == pytest.approx(1.0 + 10 * 1e-6 + AB_S)


def test_added_latency_applies_to_links_touching_the_target() -> None:
    slow = line("[{kind: added_latency, target: c, start: 0 s, duration: 10 s, latency: 1 s}]")
    heard = flood_of(slow).spread_messages(np.array([0]), np.array([0.0]), 0, np.array([0]))
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


def test_message_jitter_draws_in_blocks_as_one_sequence() -> None:
    blocked = MessageJitter("normal", 0.002, np.random.default_rng(9), block=4)
    whole = np.random.default_rng(9).standard_normal(12) * 0.002
    assert [blocked.sample_s() for _ in range(12)] == list(whole)


def test_tick_jitter_does_not_depend_on_the_order_of_questions() -> None:
    rngs = lambda: [np.random.default_rng(i) for i in range(3)]  # noqa: E731
    early = TickJitter("normal", 0.002, rngs(), chunk_ticks=8)
    late = TickJitter("normal", 0.002, rngs(), chunk_ticks=8)
    first = early.lookup_s(np.array([0, 1, 2]), np.array([3, 3, 30]))
    late.lookup_s(np.array([1]), np.array([20]))
    assert list(late.lookup_s(np.array([0, 1, 2]), np.array([3, 3, 30]))) == list(first)


@pytest.mark.parametrize("distribution", ["normal", "uniform", "pareto"])
def test_consensus_jitter_is_a_pure_function_with_the_link_emulator_moments(
    distribution: str,
) -> None:
    kind, key = JITTER_CODES[distribution], np.uint64(0xC0FFEE)
    draws = np.array([message_jitter_s(kind, 1.0, key, m, m % 7) for m in range(100_000)])
    again = np.array([message_jitter_s(kind, 1.0, key, m, m % 7) for m in range(100_000)])
    assert np.array_equal(draws, again)
    other_key = [message_jitter_s(kind, 1.0, np.uint64(1), m, m % 7) for m in range(1000)]
    assert not np.array_equal(draws[:1000], other_key)
    if distribution == "normal":
        assert abs(draws.mean()) < 0.02 and draws.std() == pytest.approx(1.0, rel=0.02)
        assert np.mean(np.abs(draws) < 1) == pytest.approx(0.6827, abs=0.01)
    elif distribution == "uniform":
        assert draws.min() >= -1 and draws.max() <= 1 and abs(draws.mean()) < 0.01
    else:
        assert draws.min() >= 0 and draws.mean() == pytest.approx(1.0, rel=0.05)
    assert message_jitter_s(JITTER_CODES["none"], 1.0, key, 1, 1) == 0.0
    assert set(JITTER_CODES) == set(JITTER_DISTRIBUTIONS)  # every law of the topology's


def test_a_message_gets_the_same_jitter_whichever_messages_flood_with_it() -> None:
    topology = parse_topology(
        textwrap.dedent(
            """
            regions: {x: {rtt: {x: 20 ms}}}
            links: {bandwidth: 100 Mbit, jitter: {distribution: normal, scale: 5 ms}}
            nodes: {a: {region: x}, b: {region: x}, c: {region: x}, d: {region: x}}
            peers: [[a, b], [b, c], [c, d], [d, a]]
            """
        )
    )
    index = {n: i for i, n in enumerate(topology.node_names)}
    directed = [p for a, b in topology.peer_edges for p in ((index[a], index[b]),) * 1]
    directed += [(b, a) for a, b in directed]
    flood = Flood(
        4,
        np.array([a for a, _ in directed]),
        np.array([b for _, b in directed]),
        np.full(len(directed), 0.010),
        1e8,
        FaultSchedule(topology, index),
        0,
        jitter=("normal", 0.005),
        jitter_key=42,
    )
    together = flood.spread_messages(np.array([0, 1, 2]), np.zeros(3), 100, np.array([7, 8, 9]))
    alone = flood.spread_messages(np.array([1]), np.zeros(1), 100, np.array([8]))
    assert np.array_equal(together[1], alone[0])
    assert len(set(together[0])) == 4  # jitter makes every arrival differ


def _reference_batched(
    flood: Flood,
    origin: int,
    start_s: float,
    frame_bytes: int,
    interval_s: float,
    validate_s: float,
) -> list[float]:
    """One tx's batched flood by the definition: Dijkstra over heard times, in plain Python."""
    import heapq
    import math

    schedule = flood.schedule
    serialize_s = frame_bytes * 8.0 / flood.bandwidth_bps
    heard = [math.inf] * flood.node_count
    heard[origin] = start_s
    queue, settled = [(start_s, origin)], set()
    while queue:
        t, u = heapq.heappop(queue)
        if u in settled:
            continue
        settled.add(u)
        ready = t + validate_s / schedule.cpu_share(u, t)
        tick = math.ceil(ready / interval_s)
        tick += tick * interval_s < ready
        depart = tick * interval_s
        if any(s <= depart and t < e for s, e in schedule.down[u]):
            continue  # down before its batch leaves
        for link in np.flatnonzero(flood.src == u):
            v = int(flood.dst[link])
            delay = flood.latency_s[link] + schedule.extra_latency_s(u, v, depart)
            arrive = depart + serialize_s + max(delay, 0.0)
            if schedule.cut_between(u, v, depart, arrive) or schedule.down_between(
                v, depart, arrive
            ):
                continue
            if arrive < heard[v]:
                heard[v] = arrive
                heapq.heappush(queue, (arrive, v))
    return heard


def test_batched_flood_matches_the_definition_under_every_fault_kind() -> None:
    names = [f"n{i}" for i in range(12)]
    rng = np.random.default_rng(4)
    edges = {(i, (i + 1) % 12) for i in range(12)} | {
        tuple(sorted(map(int, rng.choice(12, 2, replace=False)))) for _ in range(14)
    }
    nodes = ", ".join(f"{n}: {{region: {'x' if i < 6 else 'y'}}}" for i, n in enumerate(names))
    topology = parse_topology(
        textwrap.dedent(
            f"""
            regions:
              x: {{rtt: {{x: 20 ms, y: 90 ms}}}}
              y: {{rtt: {{y: 30 ms}}}}
            links: {{bandwidth: 10 Mbit}}
            nodes: {{{nodes}}}
            peers: {[[names[a], names[b]] for a, b in sorted(edges)]}
            faults:
              - {{kind: partition, groups: [[y]], start: 1.3 s, duration: 0.4 s}}
              - {{kind: node_down, target: n3, start: 0.9 s, duration: 1 s}}
              - {{kind: added_latency, target: n7, start: 0.5 s, duration: 1 s, latency: 120 ms}}
              - {{kind: cpu_throttle, target: n5, start: 0 s, duration: 3 s, share: 0.01}}
            """
        ).replace("'", "")
    )
    flood = flood_of(topology)
    origins = rng.integers(0, 12, 40)
    starts = np.sort(rng.uniform(0.0, 2.5, 40))
    heard = flood.spread_batched(origins, starts, 200, 0.05, 0.002, TickJitter("none", 0.0, []))
    for i, (o, s) in enumerate(zip(origins, starts, strict=True)):
        expected = _reference_batched(flood, int(o), float(s), 200, 0.05, 0.002)
        assert heard[:, i] == pytest.approx(expected, abs=1e-12), i


def flood_of(topology: Topology) -> Flood:
    index = {n: i for i, n in enumerate(topology.node_names)}
    directed = [(index[a], index[b]) for a, b in topology.peer_edges]
    directed += [(b, a) for a, b in directed]
    latency = np.array(
        [
            topology.one_way_latency_s(topology.node_names[a], topology.node_names[b])
            for a, b in directed
        ]
    )
    return Flood(
        len(index),
        np.array([a for a, _ in directed]),
        np.array([b for _, b in directed]),
        latency,
        topology.links.bandwidth_bps,
        FaultSchedule(topology, index),
        0,
    )


def test_offer_queue_takes_exactly_what_is_due() -> None:
    rng = np.random.default_rng(8)
    queue, waiting = offer_queue(0.05, capacity=16), []
    for now in np.cumsum(rng.exponential(0.04, 300)):
        count = int(rng.integers(0, 30))
        # Some offers lie beyond a whole ring of buckets: they share slots with nearer ones.
        times = now + rng.choice([0.3, 300.0], count, p=[0.95, 0.05]) * rng.exponential(1, count)
        nodes, txs = rng.integers(0, 9, count), rng.integers(0, 10**6, count)
        queue = with_room(queue, count)
        # One flooded tx per offer: it reaches only its node (its origin is another).
        heard = np.full((9, count), np.inf)
        heard[nodes, np.arange(count)] = times
        push_floods(queue, heard, txs, (nodes + 1) % 9)
        waiting += list(zip(times.tolist(), nodes.tolist(), txs.tolist(), strict=True))
        t = float(now + rng.choice([0.0, 0.05, 0.5]))  # some calls look ahead
        due = sorted(w for w in waiting if w[0] <= t)
        assert any_due(queue, t) == bool(due)
        per_node = np.bincount([w[1] for w in due], minlength=9)
        room, extra = rng.integers(-2, 12, 9), int(rng.integers(0, 4))
        expected = bool(np.any((room > 0) & (room < per_node + extra)))
        assert overflows(queue, t, room, extra) == expected
        got = pop_due(queue, t)
        assert sorted(zip(*(a.tolist() for a in got), strict=True)) == due
        waiting = [w for w in waiting if w[0] > t]
    assert queue.meta[1] == len(queue.time_s) - len(waiting)  # every taken entry is free again


def test_fanout_choice_depends_on_the_tx_not_on_what_floods_with_it() -> None:
    names = [f"n{i}" for i in range(8)]
    topology = parse_topology(
        textwrap.dedent(
            f"""
            general: {{name: fan, duration: 10 s}}
            regions: {{r: {{rtt: {{r: 20 ms}}}}}}
            links: {{bandwidth: 10 Mbit}}
            nodes: {{{", ".join(f"{n}: {{region: r}}" for n in names)}}}
            protocol: {{gossip: {{fanout: 2}}}}
            """
        )
    )
    index = {n: i for i, n in enumerate(topology.node_names)}
    directed = [(index[a], index[b]) for a, b in topology.peer_edges]
    directed += [(b, a) for a, b in directed]
    flood = Flood(
        len(index),
        np.array([a for a, _ in directed]),
        np.array([b for _, b in directed]),
        np.full(len(directed), 0.01),
        1e8,
        FaultSchedule(topology, index),
        2,
        fanout_key=7,
    )
    ticks = TickJitter("none", 0.0, [])
    origins, starts, ids = np.array([0, 3, 5]), np.array([0.1, 0.2, 0.3]), np.array([40, 41, 42])
    together = flood.spread_batched(origins, starts, 100, 0.05, 0.001, ticks, ids)
    for i in range(3):
        alone = flood.spread_batched(
            origins[i : i + 1], starts[i : i + 1], 100, 0.05, 0.001, ticks, ids[i : i + 1]
        )
        assert np.array_equal(together[:, i], alone[:, 0])
    # Each tx is sent on exactly `fanout` links per relaying node, and other txs take others.
    use = fanout_use(
        np.arange(50), flood.out_start, flood.out_order, flood.link_count, 2, np.uint64(7)
    )
    for node in range(len(index)):
        links = flood.out_order[flood.out_start[node] : flood.out_start[node + 1]]
        assert (use[:, links].sum(axis=1) == 2).all()
        assert len({tuple(row) for row in use[:, links]}) > 1
