"""The node's Prometheus exposition: the 16 BitCell series, the devnet's extras, histograms.

``NodeMetrics`` holds what the node accumulates (block propagation and RPC latency histograms,
per-method RPC latency, counters); ``NodeMetrics.render(values)`` writes the text served at
``GET /metrics`` with ``protocol.metrics.render_prometheus`` (names, types and HELP from the shared
catalogue), followed by ``bitcell_rpc_request_duration_seconds{method=...}``.
"""

from __future__ import annotations

from collections.abc import Mapping

from bitcell_sim.protocol.jsonrpc import Method
from bitcell_sim.protocol.metrics import Histogram, format_value, render_prometheus

PROPAGATION = "bitcell_block_propagation_seconds"
RPC_LATENCY = "bitcell_rpc_latency_seconds"
RPC_BY_METHOD = "bitcell_rpc_request_duration_seconds"
RPC_BY_METHOD_HELP = "Seconds to handle one JSON-RPC request, by method"

_KNOWN_METHODS = frozenset(m.value for m in Method)
#: Label of requests that named no dispatched method (keeps the label set bounded).
OTHER_METHOD = "other"


class NodeMetrics:
    """Histograms and counters of one node (the rest is read live from its parts)."""

    def __init__(self) -> None:
        self.propagation = Histogram()
        self.rpc_latency = Histogram()
        self.rpc_by_method: dict[str, Histogram] = {}
        self.txs_processed = 0
        self.reorgs = 0
        self.txs_rejected = 0

    def observe_rpc(self, method: str, seconds: float) -> None:
        self.rpc_latency.observe(seconds)
        label = method if method in _KNOWN_METHODS else OTHER_METHOD
        histogram = self.rpc_by_method.get(label)
        if histogram is None:
            histogram = self.rpc_by_method[label] = Histogram()
        histogram.observe(seconds)

    def render(self, values: Mapping[str, float]) -> str:
        """Prometheus text: catalogue series from ``values`` + histograms, then per method."""
        text = render_prometheus(
            values, {PROPAGATION: self.propagation, RPC_LATENCY: self.rpc_latency}
        )
        lines = [
            f"# HELP {RPC_BY_METHOD} {RPC_BY_METHOD_HELP}",
            f"# TYPE {RPC_BY_METHOD} histogram",
        ]
        for method in sorted(self.rpc_by_method):
            h = self.rpc_by_method[method]
            label = f'method="{method}"'
            lines += [
                f'{RPC_BY_METHOD}_bucket{{{label},le="{format_value(bound)}"}} {n}'
                for bound, n in h.cumulative()
            ]
            lines.append(f"{RPC_BY_METHOD}_sum{{{label}}} {format_value(h.sum)}")
            lines.append(f"{RPC_BY_METHOD}_count{{{label}}} {h.count}")
        return text + "\n" + "\n".join(lines) + "\n"
