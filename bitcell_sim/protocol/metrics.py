"""Prometheus metrics of a BitCell node: names, types, HELP texts, rendering and parsing.

``NODE_METRICS``: the node's 16 unlabelled series exactly; ``DEVNET_METRICS``, ``PEER_RTT_METRICS``:
the devnet's extra ``bitcell_`` series (some labelled). ``render_prometheus`` writes text as the
node does (HELP, TYPE, samples, blank line between metrics; ``render_metric`` one metric of any
spec); ``Histogram`` accumulates; ``parse_prometheus``/``parse_prometheus_samples`` read it back.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from bitcell_sim.protocol.errors import ProtocolError


class MetricType(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric family; a labelled one has a sample per combination of ``labels`` values."""

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()


_G, _C, _H = MetricType.GAUGE, MetricType.COUNTER, MetricType.HISTOGRAM

NODE_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("bitcell_chain_height", _G, "Current blockchain height"),
    MetricSpec("bitcell_sync_progress", _G, "Sync progress percentage (0-100)"),
    MetricSpec("bitcell_peer_count", _G, "Number of connected peers"),
    MetricSpec("bitcell_dht_peer_count", _G, "Number of DHT peers"),
    MetricSpec("bitcell_bytes_sent_total", _C, "Total bytes sent"),
    MetricSpec("bitcell_bytes_received_total", _C, "Total bytes received"),
    MetricSpec("bitcell_messages_sent_total", _C, "Total messages sent"),
    MetricSpec("bitcell_messages_received_total", _C, "Total messages received"),
    MetricSpec("bitcell_pending_txs", _G, "Number of pending transactions"),
    MetricSpec("bitcell_txs_processed_total", _C, "Total transactions processed"),
    MetricSpec("bitcell_proofs_generated_total", _C, "Total proofs generated"),
    MetricSpec("bitcell_proofs_verified_total", _C, "Total proofs verified"),
    MetricSpec("bitcell_active_miners", _G, "Number of active eligible miners"),
    MetricSpec("bitcell_banned_miners", _G, "Number of banned miners"),
    MetricSpec("bitcell_average_trust_score", _G, "Average trust score of miners"),
    MetricSpec("bitcell_slashing_events_total", _C, "Total slashing events"),
)

DEVNET_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "bitcell_block_propagation_seconds",
        _H,
        "Seconds from a block's production by its proposer to its import on this node",
    ),
    MetricSpec(
        "bitcell_rpc_request_duration_seconds",
        _H,
        "Seconds to handle one JSON-RPC request, by method",
        ("method",),
    ),
    MetricSpec(
        "bitcell_round_phase", _G, "Current round phase (0 idle, 1 commit, 2 reveal, 3 battle)"
    ),
    MetricSpec("bitcell_best_peer_height", _G, "Best chain height reported by any peer"),
    MetricSpec("bitcell_reorgs_total", _C, "Total chain reorganisations"),
    MetricSpec("bitcell_txs_rejected_total", _C, "Total transactions rejected at admission"),
    MetricSpec(
        "bitcell_proof_generation_seconds",
        _G,
        "Seconds this node took to build its last block (the devnet's stand-in for the proof)",
    ),
    MetricSpec(
        "bitcell_pool_evicted_total",
        _C,
        "Pool transactions evicted because they can no longer apply, by reason",
        ("reason",),
    ),
    MetricSpec(
        "bitcell_p2p_handshakes_refused_total",
        _C,
        "Inbound P2P connections refused before or during the authenticated handshake",
    ),
)

#: The round-trip time a devnet node measures to each peer (Ping -> Pong), labelled by peer name.
#: Rendered by ``devnet.node.rtt``, read back by ``devnet.rtt``; not in ``ALL_METRICS``.
PEER_RTT_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "bitcell_peer_rtt_seconds",
        _G,
        "Smoothed round-trip time to a peer (EWMA of Ping to Pong on this node's connection)",
        ("peer",),
    ),
    MetricSpec(
        "bitcell_peer_rtt_last_seconds", _G, "Last measured round-trip time to a peer", ("peer",)
    ),
    MetricSpec(
        "bitcell_peer_rtt_min_seconds",
        _G,
        "Minimum round-trip time to a peer over its last 16 samples",
        ("peer",),
    ),
    MetricSpec(
        "bitcell_peer_rtt_samples_total", _C, "Round-trip samples taken for a peer", ("peer",)
    ),
    MetricSpec(
        "bitcell_peer_rtt_sum_seconds_total",
        _C,
        "Sum of the round-trip samples of a peer, in seconds",
        ("peer",),
    ),
)

ALL_METRICS: tuple[MetricSpec, ...] = NODE_METRICS + DEVNET_METRICS
SPECS: dict[str, MetricSpec] = {spec.name: spec for spec in ALL_METRICS}

#: Bucket upper bounds (seconds) for the latency histograms: 1 ms .. 60 s.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4"


def format_value(value: float) -> str:
    """Integers as plain decimals, other floats shortest-repr (as Rust prints f64)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


class Histogram:
    """A cumulative Prometheus histogram over fixed bucket upper bounds (not thread-safe)."""

    __slots__ = ("_counts", "bounds", "count", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS_S) -> None:
        if not bounds or any(b >= a for a, b in zip(bounds[1:], bounds, strict=False)):
            raise ProtocolError(f"histogram bounds {list(bounds)} must be non-empty, increasing")
        self.bounds = tuple(float(b) for b in bounds)
        self._counts = [0] * len(self.bounds)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.bounds, value)
        if i < len(self._counts):
            self._counts[i] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound) for each bucket, ending with +Inf."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip(self.bounds, self._counts, strict=True):
            running += n
            out.append((bound, running))
        out.append((math.inf, self.count))
        return out


#: A labelled metric's samples: label values (in ``MetricSpec.labels`` order) -> value.
LabelValues = tuple[str, ...]


def _block(spec: MetricSpec, lines: Iterable[str]) -> str:
    return "\n".join([f"# HELP {spec.name} {spec.help}", f"# TYPE {spec.name} {spec.type}", *lines])


def _label_text(names: Sequence[str], values: Sequence[str], *extra: str) -> str:
    pairs = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)] + list(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _series(
    spec: MetricSpec, given: float | Histogram | Mapping[LabelValues, float | Histogram]
) -> list[tuple[LabelValues, float | Histogram]]:
    """(label values, value) of each sample of ``spec``: one unlabelled, or one per key."""
    if not spec.labels:
        if isinstance(given, Mapping):
            raise ProtocolError(f"metric {spec.name!r} has no labels: pass one value")
        return [((), given)]
    if not isinstance(given, Mapping):
        raise ProtocolError(
            f"metric {spec.name!r} is labelled by {spec.labels}: pass {{label values: value}}"
        )
    for key in given:
        if not isinstance(key, tuple) or len(key) != len(spec.labels):
            raise ProtocolError(
                f"metric {spec.name!r}: label values {key!r} do not match labels {spec.labels}"
            )
    return sorted(given.items())


def render_metric(
    spec: MetricSpec, given: float | Histogram | Mapping[LabelValues, float | Histogram]
) -> str:
    """One metric as text: HELP, TYPE and its samples (no trailing newline). ``given`` is a
    value (a ``Histogram`` for a histogram), or ``{label values: value}`` if ``spec`` has labels
    (samples sorted by label values; none gives HELP and TYPE only)."""
    lines: list[str] = []
    for label_values, value in _series(spec, given):
        labels = _label_text(spec.labels, label_values)
        if isinstance(value, Histogram):
            for bound, n in value.cumulative():
                le = f'le="{format_value(bound)}"'
                lines.append(f"{spec.name}_bucket{_label_text(spec.labels, label_values, le)} {n}")
            lines.append(f"{spec.name}_sum{labels} {format_value(value.sum)}")
            lines.append(f"{spec.name}_count{labels} {value.count}")
        else:
            lines.append(f"{spec.name}{labels} {format_value(value)}")
    return _block(spec, lines)


def render_prometheus(
    values: Mapping[str, float | Mapping[LabelValues, float]],
    histograms: Mapping[str, Histogram | Mapping[LabelValues, Histogram]] | None = None,
    *,
    require_node_metrics: bool = True,
) -> str:
    """Prometheus text: the 16 node metrics (required unless told) then any devnet extras.

    Each metric is HELP, TYPE and its samples; metrics are separated by one blank line and the
    text ends with a newline, like the node's ``export_prometheus``. A labelled metric takes
    ``{label values: value}`` (samples sorted by label values; none gives HELP and TYPE only).
    """
    histograms = histograms or {}
    for name in list(values) + list(histograms):
        if name not in SPECS:
            raise ProtocolError(f"unknown metric {name!r}")
    for name in values:
        if SPECS[name].type is MetricType.HISTOGRAM:
            raise ProtocolError(f"metric {name!r} is a histogram: pass it in histograms")
    for name in histograms:
        if SPECS[name].type is not MetricType.HISTOGRAM:
            raise ProtocolError(f"metric {name!r} is a {SPECS[name].type}, not a histogram")
    blocks: list[str] = []
    for spec in ALL_METRICS:
        if spec.name in histograms:
            blocks.append(render_metric(spec, histograms[spec.name]))
        elif spec.name in values:
            blocks.append(render_metric(spec, values[spec.name]))
        elif require_node_metrics and spec in NODE_METRICS:
            raise ProtocolError(f"missing value for node metric {spec.name!r}")
    return "\n\n".join(blocks) + "\n"


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample line: metric ``name``, its ``labels`` and ``value``."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    @property
    def key(self) -> str:
        """``name`` or ``name{a="x",b="y"}`` with labels sorted (stable dict key)."""
        if not self.labels:
            return self.name
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(self.labels))
        return f"{self.name}{{{inner}}}"


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _parse_labels(line: str, pos: int, lineno: int) -> tuple[tuple[tuple[str, str], ...], int]:
    labels: list[tuple[str, str]] = []
    pos += 1  # past "{"
    while True:
        while pos < len(line) and line[pos] in " \t":
            pos += 1
        if pos < len(line) and line[pos] == "}":
            return tuple(labels), pos + 1
        m = _LABEL_NAME.match(line, pos)
        if not m or line[m.end() : m.end() + 2] != '="':
            raise ProtocolError(f"line {lineno}: bad label at column {pos + 1}: {line!r}")
        name, pos = m.group(), m.end() + 2
        chars: list[str] = []
        while True:
            if pos >= len(line):
                raise ProtocolError(f"line {lineno}: unterminated label value: {line!r}")
            c = line[pos]
            if c == "\\" and pos + 1 < len(line):
                chars.append({"n": "\n"}.get(line[pos + 1], line[pos + 1]))
                pos += 2
            elif c == '"':
                pos += 1
                break
            else:
                chars.append(c)
                pos += 1
        labels.append((name, "".join(chars)))
        while pos < len(line) and line[pos] in " \t":
            pos += 1
        if pos < len(line) and line[pos] == ",":
            pos += 1


def parse_prometheus_samples(text: str) -> list[Sample]:
    """All samples of a Prometheus text exposition (comments and blank lines skipped)."""
    samples: list[Sample] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _NAME.match(line)
        if not m:
            raise ProtocolError(f"line {lineno}: no metric name: {raw!r}")
        pos = m.end()
        labels: tuple[tuple[str, str], ...] = ()
        if pos < len(line) and line[pos] == "{":
            labels, pos = _parse_labels(line, pos, lineno)
        fields = line[pos:].split()
        if not 1 <= len(fields) <= 2:
            raise ProtocolError(f"line {lineno}: expected a value (and timestamp): {raw!r}")
        try:
            value = float(fields[0])
        except ValueError:
            raise ProtocolError(f"line {lineno}: bad value {fields[0]!r}") from None
        samples.append(Sample(m.group(), labels, value))
    return samples


def parse_prometheus(text: str) -> dict[str, float]:
    """Prometheus text as ``{series key: value}`` (see ``Sample.key``)."""
    return {s.key: s.value for s in parse_prometheus_samples(text)}
