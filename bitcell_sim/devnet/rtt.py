"""Node-to-node round-trip times of a devnet: what the nodes measure against what the links say.

Each node times its keepalive Ping -> Pong to every peer and exports it on ``/metrics``
(``bitcell_peer_rtt_*{peer=...}``, ``protocol.metrics.PEER_RTT_METRICS``), which
``parse_peer_rtts`` reads back as an ``RttReading`` per peer. The Pong comes back on the same
connection, so the round trip A -> B -> A crosses the emulator link ``A->B`` forward and then
backwards, both with that link's parameters: the expected RTT is twice its mean one-way delay.
``read_peer_rtts(devnet)`` returns one ``PeerRtt`` per directed peer link with the configured
RTT (links file), the RTT of the parameters in force (faults included) and the measured one;
``wait_for_peer_rtts`` polls until every measured RTT agrees with the links in force;
``mean_rtts_between(earlier, later)`` is the mean of the samples taken between two readings.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from bitcell_sim.devnet.cluster import Devnet
from bitcell_sim.errors import BitcellSimError, DevnetError
from bitcell_sim.netem import LinkParams, read_links_file
from bitcell_sim.protocol.metrics import PEER_RTT_METRICS, parse_prometheus_samples

#: Default agreement between measured and expected RTT: within 10 % or 5 ms, whichever is larger.
RTT_TOLERANCE_FRACTION = 0.10
RTT_TOLERANCE_FLOOR_S = 0.005


@dataclass(frozen=True)
class RttReading:
    """One peer's RTT as a node exports it (seconds; ``PEER_RTT_METRICS`` in order)."""

    ewma_s: float
    last_s: float
    min_s: float
    samples: int
    sum_s: float

    @property
    def mean_s(self) -> float:
        """Mean of every sample since the node started."""
        return self.sum_s / self.samples if self.samples else math.nan


_RTT_NAMES = tuple(spec.name for spec in PEER_RTT_METRICS)


def parse_peer_rtts(text: str) -> dict[str, RttReading]:
    """Each peer's ``RttReading`` from a node's Prometheus text (peers without samples absent)."""
    by_peer: dict[str, dict[str, float]] = {}
    for sample in parse_prometheus_samples(text):
        if sample.name in _RTT_NAMES:
            labels = dict(sample.labels)
            if "peer" in labels:
                by_peer.setdefault(labels["peer"], {})[sample.name] = sample.value
    readings = {}
    for peer, values in by_peer.items():
        if all(name in values for name in _RTT_NAMES):
            ewma, last, low, samples, total = (values[name] for name in _RTT_NAMES)
            readings[peer] = RttReading(ewma, last, low, int(samples), total)
    return readings


def mean_one_way_delay_s(params: LinkParams) -> float:
    """Mean delay of one isolated chunk on a link: E[max(0, base delay + jitter)].

    The clip at 0 matters only where the jitter is as large as the latency (inside a region).
    """
    base, j = params.base_delay_s, params.jitter_s
    kind = params.jitter_distribution
    if kind == "none" or j == 0:
        return base
    if kind == "pareto":  # never negative, mean jitter_s
        return base + j
    if kind == "uniform":  # Uniform(base - j, base + j) clipped at 0
        return base if base >= j else (base + j) ** 2 / (4 * j)
    # normal: E[max(0, X)] for X ~ N(base, j)
    z = base / j
    cdf = 0.5 * (1 + math.erf(z / math.sqrt(2)))
    pdf = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    return base * cdf + j * pdf


def expected_rtt_s(params: LinkParams) -> float:
    """Ping -> Pong over a link whose both directions have ``params``."""
    return 2 * mean_one_way_delay_s(params)


@dataclass(frozen=True)
class PeerRtt:
    """The round trip ``node`` -> ``peer`` -> ``node`` over the emulator link ``link``.

    ``configured_rtt_s``: from the links file. ``in_force_rtt_s``: from the parameters in force
    now (added latency included; None if the emulator did not answer). ``measured``: what the
    node exports (None if it did not answer or has no sample yet).
    """

    node: str
    peer: str
    link: str
    configured_rtt_s: float
    in_force_rtt_s: float | None
    partitioned: bool
    measured: RttReading | None
    error: str = ""

    @property
    def expected_rtt_s(self) -> float:
        """The RTT the measurement should show: in force if known, else configured."""
        return self.configured_rtt_s if self.in_force_rtt_s is None else self.in_force_rtt_s

    @property
    def measured_rtt_s(self) -> float | None:
        """The node's smoothed RTT (EWMA), or None."""
        return None if self.measured is None else self.measured.ewma_s

    @property
    def error_s(self) -> float | None:
        measured = self.measured_rtt_s
        return None if measured is None else measured - self.expected_rtt_s

    @property
    def error_pct(self) -> float | None:
        error = self.error_s
        if error is None or self.expected_rtt_s == 0:
            return None
        return 100 * error / self.expected_rtt_s

    def within(
        self,
        fraction: float = RTT_TOLERANCE_FRACTION,
        floor_s: float = RTT_TOLERANCE_FLOOR_S,
    ) -> bool:
        """Measured within ``fraction`` of expected, or ``floor_s``, whichever is larger."""
        error = self.error_s
        return error is not None and abs(error) <= max(fraction * self.expected_rtt_s, floor_s)


def read_node_rtts(metrics_url: str, timeout_s: float = 2.0) -> dict[str, RttReading]:
    """The per-peer RTTs one node exports; BitcellSimError naming the URL if it does not answer."""
    try:
        response = httpx.get(metrics_url, timeout=timeout_s, trust_env=False)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise BitcellSimError(f"cannot read {metrics_url}: {exc}") from None
    return parse_peer_rtts(response.text)


def read_peer_rtts(
    devnet: Devnet, nodes: tuple[str, ...] | None = None, timeout_s: float = 2.0
) -> list[PeerRtt]:
    """One ``PeerRtt`` per directed peer link of ``nodes`` (all by default), in plan order.

    Every node's metrics are read concurrently and the emulator's parameters once; a node or an
    emulator that does not answer leaves its fields None (and ``error`` says why), never raises.
    """
    names = devnet.node_names if nodes is None else tuple(devnet.check_node(n) for n in nodes)
    urls = {name: devnet.endpoints[name].metrics_url for name in names}
    configured = {spec.name: spec.params for spec in read_links_file(devnet.state.links_path)}
    in_force: dict[str, LinkParams] = {}
    try:
        with devnet.netem(timeout_s) as netem:
            in_force = {link.name: link.current for link in netem.links()}
    except BitcellSimError:
        pass

    def read(url: str) -> dict[str, RttReading] | str:
        try:
            return read_node_rtts(url, timeout_s)
        except BitcellSimError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=max(1, len(urls))) as pool:
        answers = dict(zip(urls, pool.map(read, urls.values()), strict=True))
    out = []
    for link in devnet.plan.links:
        if link.source not in answers:
            continue
        name = link.name
        current = in_force.get(name)
        answer = answers[link.source]
        out.append(
            PeerRtt(
                node=link.source,
                peer=link.target,
                link=name,
                configured_rtt_s=expected_rtt_s(configured[name]),
                in_force_rtt_s=None if current is None else expected_rtt_s(current),
                partitioned=current is not None and current.partitioned,
                measured=answer.get(link.target) if isinstance(answer, dict) else None,
                error=answer if isinstance(answer, str) else "",
            )
        )
    return out


def mean_rtts_between(earlier: list[PeerRtt], later: list[PeerRtt]) -> dict[str, float | None]:
    """Per link, the mean RTT of the samples each node took between two ``read_peer_rtts``
    (from the sample count and sum counters: no smoothing lag); None where no sample was taken
    in between or the counters went back (the node restarted)."""
    first = {r.link: r.measured for r in earlier}
    out: dict[str, float | None] = {}
    for rtt in later:
        a, b = first.get(rtt.link), rtt.measured
        if b is None:
            out[rtt.link] = None
            continue
        samples = b.samples - (a.samples if a is not None else 0)
        total_s = b.sum_s - (a.sum_s if a is not None else 0.0)
        out[rtt.link] = total_s / samples if samples > 0 else None
    return out


def _describe(rtt: PeerRtt) -> str:
    measured = rtt.measured_rtt_s
    got = "no sample" if measured is None else f"{measured * 1000:.1f} ms"
    return f"{rtt.link} {got} (expected {rtt.expected_rtt_s * 1000:.1f} ms)"


def wait_for_peer_rtts(
    devnet: Devnet,
    *,
    timeout_s: float,
    nodes: tuple[str, ...] | None = None,
    min_samples: int = 3,
    fraction: float = RTT_TOLERANCE_FRACTION,
    floor_s: float = RTT_TOLERANCE_FLOOR_S,
    poll_s: float = 0.5,
) -> list[PeerRtt]:
    """Poll ``read_peer_rtts`` until every link of ``nodes`` that is not partitioned has at
    least ``min_samples`` samples and its smoothed RTT within ``fraction`` (or ``floor_s``) of
    the RTT in force; the last reading. DevnetError naming the links still off at ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        rtts = read_peer_rtts(devnet, nodes)
        off = [
            r
            for r in rtts
            if not r.partitioned
            and (
                r.measured is None
                or r.measured.samples < min_samples
                or not r.within(fraction, floor_s)
            )
        ]
        if not off:
            return rtts
        if time.monotonic() >= deadline:
            raise DevnetError(
                f"peer RTTs not within max({fraction:.0%}, {floor_s * 1000:g} ms) of the links "
                f"after {timeout_s:g} s: " + "; ".join(_describe(r) for r in off)
            )
        time.sleep(poll_s)
