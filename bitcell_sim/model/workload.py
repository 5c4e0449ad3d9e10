"""The submitted transactions of a run, generated up front from the workload section.

:func:`generate_arrivals` returns :class:`Arrivals`: submit times (sorted), the node each tx is
sent to (a region by ``workload_region_weights``, then a node of it uniformly) and its gas
price (uniform integers in ``[gas_price.min, gas_price.max]``). Rates follow
``workload_stages()``, ramps included: a constant process puts the k-th tx where the cumulative
rate reaches k, a Poisson process where it reaches the k-th point of a unit-rate Poisson
process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bitcell_sim.topology import Topology

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Arrivals:
    """Every tx the load sends: index i is the tx's id in the run."""

    submit_s: FloatArray
    node: IntArray
    gas_price: IntArray

    def __len__(self) -> int:
        return len(self.submit_s)


def _stage_times(
    start_s: float,
    end_s: float,
    tps_from: float,
    tps_to: float,
    until_s: float,
    poisson: bool,
    rng: np.random.Generator,
) -> FloatArray:
    """Arrival times in ``[start_s, min(end_s, until_s))`` of one (possibly ramped) stage."""
    length_s = end_s - start_s
    slope = (tps_to - tps_from) / length_s  # tx/s per s
    total = tps_from * length_s + slope * length_s**2 / 2  # expected arrivals in the stage
    if total <= 0:
        return np.empty(0)
    if poisson:
        points = np.cumsum(rng.standard_exponential(int(total + 6 * math.sqrt(total) + 16)))
        while points[-1] < total:
            more = np.cumsum(rng.standard_exponential(int(6 * math.sqrt(total) + 16)))
            points = np.concatenate([points, points[-1] + more])
        points = points[points < total]
    else:
        points = np.arange(math.ceil(total), dtype=np.float64)
        points = points[points < total]
    # Invert the cumulative rate tps_from*x + slope*x^2/2 = points (the stable root form).
    root = np.sqrt(tps_from**2 + 2 * slope * points)
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = np.where(points > 0, 2 * points / (tps_from + root), 0.0)
    times = start_s + offset
    return times[times < min(end_s, until_s)]


def generate_arrivals(
    topology: Topology, rng: np.random.Generator, until_s: float, node_index: dict[str, int]
) -> Arrivals:
    """All txs submitted before ``until_s``, drawn from ``rng`` in a fixed order."""
    poisson = topology.workload.arrival == "poisson"
    parts = [
        _stage_times(start, end, tps_from, tps_to, until_s, poisson, rng)
        for start, end, tps_from, tps_to in topology.workload_stages()
        if start < until_s
    ]
    submit_s = np.sort(np.concatenate(parts)) if parts else np.empty(0)
    count = len(submit_s)
    weights = topology.workload_region_weights()
    regions = [r for r, w in weights.items() if w > 0]
    members = [np.array([node_index[n] for n in topology.nodes_in_region(r)]) for r in regions]
    probabilities = np.array([weights[r] for r in regions])
    region_of = rng.choice(len(regions), size=count, p=probabilities / probabilities.sum())
    pick = rng.random(count)
    node = np.empty(count, dtype=np.int64)
    for r, nodes in enumerate(members):
        mine = region_of == r
        node[mine] = nodes[(pick[mine] * len(nodes)).astype(np.int64)]
    gas = topology.workload.gas_price
    gas_price = rng.integers(gas.min, gas.max + 1, size=count, dtype=np.int64)
    return Arrivals(submit_s=submit_s.astype(np.float64), node=node, gas_price=gas_price)
