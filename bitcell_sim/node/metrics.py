"""The node's Prometheus exposition: the 16 BitCell series, the devnet's extras, histograms.

``NodeMetrics`` holds what the node accumulates (block propagation and per-method RPC latency
histograms, counters); ``NodeMetrics.render(values)`` writes the text served at
``GET /metrics`` with ``protocol.metrics.render_prometheus`` (names, types, labels and HELP
from the shared catalogue).
"""

from __future__ import annotations

from collections.abc import Mapping

from bitcell_sim.node.pool import EVICTION_REASONS
from bitcell_sim.protocol.jsonrpc import Method
from bitcell_sim.protocol.metrics import Histogram, LabelValues, render_prometheus

PROPAGATION = "bitcell_block_propagation_seconds"
RPC_LATENCY = "bitcell_rpc_request_duration_seconds"

_KNOWN_METHODS = frozenset(m.value for m in Method)
#: Label of requests that named no dispatched method (keeps the label set bounded).
OTHER_METHOD = "other"


class NodeMetrics:
    """Histograms and counters of one node (the rest is read live from its parts)."""

    def __init__(self) -> None:
        self.propagation = Histogram()
        #: RPC latency by ``(method,)``, the label values of ``RPC_LATENCY``.
        self.rpc_latency: dict[LabelValues, Histogram] = {}
        self.txs_processed = 0
        self.reorgs = 0
        self.txs_rejected = 0
        #: Seconds the last own block took to build (0 before the first).
        self.proof_generation_s = 0.0
        #: Pool evictions by ``(reason,)``, every reason present from the start.
        self.evicted: dict[LabelValues, float] = {(r,): 0 for r in EVICTION_REASONS}

    def count_evictions(self, evicted: Mapping[str, list[bytes]]) -> None:
        for reason, ids in evicted.items():
            self.evicted[(reason,)] += len(ids)

    def observe_rpc(self, method: str, seconds: float) -> None:
        label = (method if method in _KNOWN_METHODS else OTHER_METHOD,)
        histogram = self.rpc_latency.get(label)
        if histogram is None:
            histogram = self.rpc_latency[label] = Histogram()
        histogram.observe(seconds)

    def render(self, values: Mapping[str, float | Mapping[LabelValues, float]]) -> str:
        """Prometheus text: catalogue series from ``values`` and the histograms."""
        return render_prometheus(
            values, {PROPAGATION: self.propagation, RPC_LATENCY: self.rpc_latency}
        )
