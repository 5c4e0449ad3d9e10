"""Peer round-trip times: the bookkeeping, its Prometheus text, and PeerLink's timed Pings.

``RttTracker`` arithmetic (last, EWMA, window minimum), ``render_peer_rtts``/``parse_peer_rtts``
round trip, then a real ``PeerLink`` dialling an in-process TCP peer that answers each Ping after
a known delay: the samples match the delay and no second Ping is ever sent before the Pong.
Then the devnet side (``devnet.rtt``): the expected RTT of a link's parameters, the agreement
rule, and interval means from the sample counters.
"""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
import pytest

from bitcell_sim.devnet.rtt import (
    PeerRtt,
    RttReading,
    expected_rtt_s,
    mean_one_way_delay_s,
    mean_rtts_between,
    parse_peer_rtts,
)
from bitcell_sim.netem import LinkParams
from bitcell_sim.node.peers import (
    ConnectionLimits,
    Framer,
    P2PIdentity,
    PeerLink,
    Traffic,
    payload_variant,
)
from bitcell_sim.node.rtt import RttTracker, render_peer_rtts
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.metrics import parse_prometheus
from bitcell_sim.protocol.p2p import Ping, Pong, encode_frame
from tests.p2p_peer import async_handshake_as_listener

PEER = KeyPair.from_seed("rtt-peer")
OURS = KeyPair.from_seed("rtt-us")
GENESIS = b"\x42" * 32
IDENTITY = P2PIdentity(OURS, GENESIS, {PEER.public_key: "b"})


def test_first_sample_seeds_the_mean_then_ewma_and_window_minimum() -> None:
    tracker = RttTracker(window=3, alpha=0.25)
    assert tracker.last_s is None and tracker.ewma_s is None and tracker.min_s is None
    tracker.observe(0.100)
    assert tracker.ewma_s == tracker.last_s == tracker.min_s == 0.100
    tracker.observe(0.200)
    assert tracker.ewma_s == pytest.approx(0.125)  # 0.1 + 0.25 * (0.2 - 0.1)
    tracker.observe(0.300)
    tracker.observe(0.400)
    # 0.100 has left the 3-sample window; the mean keeps its memory of it.
    assert tracker.window == (0.200, 0.300, 0.400)
    assert tracker.min_s == 0.200 and tracker.last_s == 0.400
    expected = 0.125
    for sample in (0.300, 0.400):
        expected += 0.25 * (sample - expected)
    assert tracker.ewma_s == pytest.approx(expected)
    assert tracker.samples == 4 and tracker.sum_s == pytest.approx(1.0)


def test_a_step_shows_in_the_mean_within_eight_samples() -> None:
    tracker = RttTracker()
    for _ in range(20):
        tracker.observe(0.050)
    for _ in range(8):
        tracker.observe(0.150)
    # 0.75^8 of the 100 ms step is left: about 10 ms.
    assert tracker.ewma_s is not None and 0.135 < tracker.ewma_s < 0.145
    assert tracker.min_s == 0.050  # the window (16) still holds samples from before the step


@pytest.mark.parametrize("bad", [-0.001, math.nan, math.inf])
def test_bad_samples_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match=r"RTT sample .* must be a finite number >= 0"):
        RttTracker().observe(bad)


def test_bad_window_and_alpha_are_refused() -> None:
    with pytest.raises(ValueError, match=r"RTT window=0 must be at least 1"):
        RttTracker(window=0)
    with pytest.raises(ValueError, match=r"RTT EWMA alpha=1.5 must be in \(0, 1\]"):
        RttTracker(alpha=1.5)


def test_prometheus_text_round_trips_and_skips_peers_without_samples() -> None:
    b, c, quiet = RttTracker(), RttTracker(), RttTracker()
    for sample in (0.090, 0.094):
        b.observe(sample)
    c.observe(0.004)
    text = render_peer_rtts({"c": c, "b": b, 'odd "name"': quiet})
    assert text.endswith("\n") and "\n\n\n" not in text
    assert "# TYPE bitcell_peer_rtt_seconds gauge" in text
    assert "# TYPE bitcell_peer_rtt_samples_total counter" in text
    assert "odd" not in text
    values = parse_prometheus(text)
    assert values['bitcell_peer_rtt_last_seconds{peer="b"}'] == 0.094
    assert values['bitcell_peer_rtt_samples_total{peer="b"}'] == 2
    readings = parse_peer_rtts(text)
    assert b.ewma_s is not None
    assert readings == {
        "b": RttReading(ewma_s=b.ewma_s, last_s=0.094, min_s=0.090, samples=2, sum_s=b.sum_s),
        "c": RttReading(ewma_s=0.004, last_s=0.004, min_s=0.004, samples=1, sum_s=0.004),
    }
    assert readings["b"].mean_s == pytest.approx(0.092)
    # Escaped label values survive the round trip.
    odd = RttTracker()
    odd.observe(0.001)
    assert list(parse_peer_rtts(render_peer_rtts({'a"b\\c': odd}))) == ['a"b\\c']


class SlowPongPeer:
    """A TCP peer answering the handshake, then each Ping with a Pong after ``delay_s``;
    records the most Pings it ever had unanswered at once. With ``answer`` False it never
    answers Pings, but sends a Ping of its own every 50 ms (so the link is not silent)."""

    def __init__(self, delay_s: float, answer: bool = True) -> None:
        self.delay_s = delay_s
        self.answer = answer
        self.pings = 0
        self.unanswered = 0
        self.most_unanswered = 0
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _pong_later(self, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(self.delay_s)
        self.unanswered -= 1
        writer.write(encode_frame(Pong()))

    async def _chatter(self, writer: asyncio.StreamWriter) -> None:
        while not writer.is_closing():
            writer.write(encode_frame(Ping()))
            await asyncio.sleep(0.05)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await async_handshake_as_listener(reader, writer, PEER, GENESIS)
        tasks = [] if self.answer else [asyncio.create_task(self._chatter(writer))]
        framer = Framer()
        try:
            while data := await reader.read(65536):
                for payload in framer.feed(data):
                    if payload_variant(payload) == Ping.INDEX:
                        self.pings += 1
                        if self.answer:
                            self.unanswered += 1
                            self.most_unanswered = max(self.most_unanswered, self.unanswered)
                            tasks.append(asyncio.create_task(self._pong_later(writer)))
        except ConnectionError:
            pass
        finally:
            for task in tasks:
                task.cancel()
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def _run_link(
    peer: SlowPongPeer,
    seconds: float,
    ping_interval_s: float,
    limits: ConnectionLimits | None = None,
) -> PeerLink:
    port = await peer.start()
    link = PeerLink(
        "b", "127.0.0.1", port, IDENTITY, PEER.public_key, Traffic(), lambda _: None,
        lambda _: None, ping_interval_s=ping_interval_s, limits=limits or ConnectionLimits(),
    )  # fmt: skip
    task = asyncio.create_task(link.run())
    try:
        await asyncio.sleep(seconds)
    finally:
        link.close()
        peer.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return link


def test_peer_link_times_each_ping_and_keeps_one_in_flight() -> None:
    delay_s = 0.060
    peer = SlowPongPeer(delay_s)
    # Pings are due every 20 ms, but each waits for the previous Pong (60 ms away).
    started = time.monotonic()
    link = asyncio.run(_run_link(peer, 1.2, ping_interval_s=0.020))
    assert time.monotonic() - started < 5
    assert peer.most_unanswered == 1
    assert 8 <= link.rtt.samples <= peer.pings <= link.rtt.samples + 1
    assert link.rtt.min_s is not None and link.rtt.min_s >= delay_s
    assert all(delay_s <= s < delay_s + 0.030 for s in link.rtt.window), link.rtt.window
    assert link.rtt.ewma_s == pytest.approx(delay_s, abs=0.015)


def test_an_unanswered_ping_drops_the_connection() -> None:
    peer = SlowPongPeer(0.0, answer=False)
    limits = ConnectionLimits(idle_timeout_s=0.3)
    link = asyncio.run(_run_link(peer, 1.5, ping_interval_s=0.050, limits=limits))
    # Never silent (the peer keeps sending), yet each connection's one Ping went unanswered.
    assert link.connects >= 2 and peer.connections >= 2
    # One Ping per connection: none is sent while the previous one is unanswered.
    assert link.connects - 1 <= peer.pings <= link.connects
    assert link.rtt.samples == 0


@pytest.mark.parametrize(
    ("latency_s", "jitter_s", "distribution"),
    [
        (0.002, 0.002, "normal"),
        (0.045, 0.002, "normal"),
        (0.001, 0.003, "uniform"),
        (0.010, 0.003, "uniform"),
        (0.020, 0.004, "pareto"),
    ],
)
def test_mean_one_way_delay_matches_draws_clipped_at_zero(
    latency_s: float, jitter_s: float, distribution: str
) -> None:
    rng = np.random.default_rng(5)
    n = 400_000
    if distribution == "normal":
        jitter = rng.normal(0, jitter_s, n)
    elif distribution == "uniform":
        jitter = rng.uniform(-jitter_s, jitter_s, n)
    else:
        jitter = 2 * jitter_s * rng.pareto(3.0, n)  # Lomax of shape 3, as the emulator draws
    drawn = float(np.maximum(0.0, latency_s + jitter).mean())
    params = LinkParams(
        latency_s=latency_s,
        jitter_s=jitter_s,
        jitter_distribution=distribution,  # type: ignore[arg-type]
    )
    assert mean_one_way_delay_s(params) == pytest.approx(drawn, abs=2e-5)
    assert expected_rtt_s(params) == pytest.approx(2 * mean_one_way_delay_s(params))


def test_expected_rtt_counts_added_latency_both_ways() -> None:
    params = LinkParams(latency_s=0.045, extra_latency_s=0.050)
    assert expected_rtt_s(params) == pytest.approx(0.190)
    assert expected_rtt_s(LinkParams()) == 0


def _rtt(link: str, ewma_s: float | None, samples: int = 0, sum_s: float = 0.0) -> PeerRtt:
    node, peer = link.split("->")
    reading = None
    if ewma_s is not None:
        reading = RttReading(
            ewma_s=ewma_s, last_s=ewma_s, min_s=ewma_s, samples=samples, sum_s=sum_s
        )
    return PeerRtt(node, peer, link, 0.100, 0.200, False, reading)


def test_agreement_is_ten_percent_or_five_ms_of_the_rtt_in_force() -> None:
    assert _rtt("a->b", 0.219).within() and not _rtt("a->b", 0.221).within()
    assert _rtt("a->b", 0.219).error_pct == pytest.approx(9.5)
    assert not _rtt("a->b", None).within() and _rtt("a->b", None).error_pct is None
    short = PeerRtt("a", "b", "a->b", 0.004, None, False, _rtt("a->b", 0.0089).measured)
    assert short.expected_rtt_s == 0.004  # emulator unknown: the configured RTT
    assert short.within() and not short.within(floor_s=0.004)


def test_interval_means_come_from_the_counters() -> None:
    earlier = [_rtt("a->b", 0.1, 10, 1.0), _rtt("b->a", 0.1, 10, 1.0), _rtt("a->c", None)]
    later = [_rtt("a->b", 0.15, 14, 1.8), _rtt("b->a", 0.1, 10, 1.0), _rtt("a->c", 0.3, 2, 0.5)]
    later.append(_rtt("c->a", 0.3, 1, 0.3))  # new link: all its samples count
    assert mean_rtts_between(earlier, later) == pytest.approx(
        {"a->b": 0.2, "b->a": None, "a->c": 0.25, "c->a": 0.3}
    )
    restarted = [_rtt("a->b", 0.1, 3, 0.3)]
    assert mean_rtts_between(earlier, restarted) == {"a->b": None}
