"""The compiled core of the tx plane: one admission step into every node's pool (numba).

:func:`admit_step` takes a step's submissions and gossip arrivals, drops arrivals a node already
holds (pool or chain), orders the rest by node, time and tx, admits them first come first served
(or, in a whole span, wherever the pool is not full), charges each node's CPU for the txs it
looked at (validation; a submission also its RPC service), and updates pools, arrival order,
sizes and peaks. The semantics are those of :class:`~bitcell_sim.model.txplane.TxPlane`
(docs/model.md, "Transactions and pools"); the kernel exists because a run at 1,000 nodes takes
hundreds of thousands of such steps.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Admission outcome of a submission refused for a full pool (as ``txplane.POOL_FULL``).
POOL_FULL = 1


@njit(cache=True)
def _by_node_time_tx(node: IntArray, time_s: FloatArray, tx: IntArray, n: int) -> IntArray:
    """The order of np.lexsort((tx, time_s, node)): a counting sort by node, then an insertion
    sort of each node's few entries by (time, tx)."""
    starts = np.zeros(n + 1, dtype=np.int64)
    for v in node:
        starts[v + 1] += 1
    for v in range(n):
        starts[v + 1] += starts[v]
    fill = starts[:-1].copy()
    index = np.empty(len(node), dtype=np.int64)
    for e in range(len(node)):
        index[fill[node[e]]] = e
        fill[node[e]] += 1
    for v in range(n):
        for a in range(starts[v] + 1, starts[v + 1]):
            e = index[a]
            b = a
            while b > starts[v] and (
                time_s[index[b - 1]] > time_s[e]
                or (time_s[index[b - 1]] == time_s[e] and tx[index[b - 1]] > tx[e])
            ):
                index[b] = index[b - 1]
                b -= 1
            index[b] = e
    return index


@njit(cache=True)
def admit_step(
    sub_tx: IntArray,
    sub_node: IntArray,
    sub_s: FloatArray,
    off_tx: IntArray,
    off_node: IntArray,
    off_s: FloatArray,
    whole_span: bool,
    capacity: int,
    validate_s: float,
    rpc_service_s: float,
    throttle_node: IntArray,
    throttle_start_s: FloatArray,
    throttle_end_s: FloatArray,
    throttle_share: FloatArray,
    in_pool: BoolArray,
    in_chain: BoolArray,
    order: npt.NDArray[np.int32],
    next_order: IntArray,
    pool_size: IntArray,
    pool_peak: IntArray,
    gossip_dropped: IntArray,
    outcome: npt.NDArray[np.int8],
    rpc_latency_s: FloatArray,
    cpu_busy_s: FloatArray,
) -> IntArray:
    """One step; returns the positions in ``sub_*`` of the submissions it admitted, in the
    step's order (node, time, tx)."""
    n = len(pool_size)
    full = pool_size >= capacity  # as the step starts
    room = capacity - pool_size
    # Arrivals a node already holds are ignored.
    k = len(sub_tx)
    count = k
    for i in range(len(off_tx)):
        if not (in_chain[off_tx[i], off_node[i]] or in_pool[off_tx[i], off_node[i]]):
            count += 1
    node = np.empty(count, dtype=np.int64)
    time_s = np.empty(count)
    tx = np.empty(count, dtype=np.int64)
    source = np.empty(count, dtype=np.int64)  # position in sub_*, or -1 for an arrival
    node[:k], time_s[:k], tx[:k] = sub_node, sub_s, sub_tx
    source[:k] = np.arange(k)
    j = k
    for i in range(len(off_tx)):
        if not (in_chain[off_tx[i], off_node[i]] or in_pool[off_tx[i], off_node[i]]):
            node[j], time_s[j], tx[j], source[j] = off_node[i], off_s[i], off_tx[i], -1
            j += 1
    index = _by_node_time_tx(node, time_s, tx, n)
    work = np.zeros(n)
    last_done = np.full(n, -np.inf)
    seen = np.zeros(n, dtype=np.int64)  # entries of each node so far (its rank)
    taken = np.zeros(n, dtype=np.int64)  # admitted so far
    mine = np.empty(k, dtype=np.int64)
    admitted_local = 0
    for position in range(count):
        e = index[position]
        v, t, x, s = node[e], time_s[e], tx[e], source[e]
        admit = not full[v] if whole_span else seen[v] < room[v]
        seen[v] += 1
        # The work: validation, and for a submission its service (HTTP and JSON-RPC handling,
        # on the same CPU). The CPU is busy until at least the end of the node's last piece of
        # work and at least its earlier backlog plus all this work; a submission's RPC latency
        # is the backlog it found plus its own work.
        share = 1.0
        for w in range(len(throttle_node)):
            if throttle_node[w] == v and throttle_start_s[w] <= t < throttle_end_s[w]:
                share = min(share, throttle_share[w])
        cost = validate_s + rpc_service_s if s >= 0 else validate_s
        if len(throttle_node):
            cost /= share
        if s >= 0:
            wait = cpu_busy_s[v] - t
            rpc_latency_s[x] = cost + (wait if wait > 0.0 else 0.0)
        work[v] += cost
        last_done[v] = t + cost
        if not admit:
            if s >= 0:
                outcome[x] = POOL_FULL
            else:
                gossip_dropped[v] += 1
            continue
        in_pool[x, v] = True
        order[x, v] = next_order[v] + taken[v]
        taken[v] += 1
        if s >= 0:
            mine[admitted_local] = s
            admitted_local += 1
    for v in range(n):
        if seen[v]:
            cpu_busy_s[v] = max(cpu_busy_s[v] + work[v], last_done[v])
        next_order[v] += taken[v]
        pool_size[v] += taken[v]
        if pool_size[v] > pool_peak[v]:
            pool_peak[v] = pool_size[v]
    return mine[:admitted_local]
