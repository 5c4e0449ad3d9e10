"""Measuring recovery over JSON-RPC: tips, one common tip, a node back at the tip.

``read_tips(urls)`` asks every node for its latest block at once (one thread per node, so the
snapshot is nearly simultaneous) and returns ``Tip`` per node (None if it did not answer).
``wait_for_common_tip`` returns a ``Convergence`` once every node reports the same block;
``wait_until_caught_up`` returns the seconds until one node holds the best tip of the others.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bitcell_sim.errors import BitcellSimError, FaultError
from bitcell_sim.protocol.rpc_client import RpcClient


@dataclass(frozen=True)
class Tip:
    """A node's latest block."""

    height: int
    hash: str


@dataclass(frozen=True)
class Convergence:
    """All nodes on one block ``tip`` after ``elapsed_s`` seconds of polling."""

    elapsed_s: float
    tip: Tip
    polls: int


def read_tip(url: str, timeout_s: float = 2.0) -> Tip | None:
    """The latest block of the node at ``url`` (None if it does not answer)."""
    try:
        with RpcClient(url, timeout_s=timeout_s) as rpc:
            block = rpc.get_block_by_number("latest")
    except BitcellSimError:
        return None
    if not block:
        return None
    return Tip(int(block["number"], 16), str(block["hash"]))


def read_tips(urls: Mapping[str, str], timeout_s: float = 2.0) -> dict[str, Tip | None]:
    """Every node's tip, asked concurrently."""
    with ThreadPoolExecutor(max_workers=max(1, len(urls))) as pool:
        futures = {name: pool.submit(read_tip, url, timeout_s) for name, url in urls.items()}
        return {name: future.result() for name, future in futures.items()}


def common_tip(tips: Mapping[str, Tip | None]) -> Tip | None:
    """The tip every node reports, if they all report the same one."""
    values = set(tips.values())
    if len(values) == 1:
        (only,) = values
        return only
    return None


def wait_for_common_tip(
    urls: Mapping[str, str],
    *,
    timeout_s: float,
    poll_s: float = 0.2,
    min_height: int = 0,
) -> Convergence:
    """Poll until every node reports the same tip at ``min_height`` or above."""
    if not urls:
        raise FaultError("wait_for_common_tip needs at least one node")
    start = time.monotonic()
    polls = 0
    while True:
        tips = read_tips(urls)
        polls += 1
        tip = common_tip(tips)
        if tip is not None and tip.height >= min_height:
            return Convergence(time.monotonic() - start, tip, polls)
        if time.monotonic() - start >= timeout_s:
            seen = ", ".join(
                f"{name}={t.height}:{t.hash[:10]}" if t else f"{name}=no answer"
                for name, t in tips.items()
            )
            raise FaultError(f"no common tip after {timeout_s:g} s (last: {seen})")
        time.sleep(poll_s)


def wait_until_caught_up(
    node_url: str,
    reference_urls: Mapping[str, str],
    *,
    timeout_s: float,
    poll_s: float = 0.2,
) -> float:
    """Seconds until the node at ``node_url`` holds a tip as high as the highest any node of
    ``reference_urls`` reports, and the same block as one of them (or is higher still)."""
    if not reference_urls:
        raise FaultError("wait_until_caught_up needs at least one reference node")
    start = time.monotonic()
    while True:
        tips = read_tips({"__node__": node_url, **reference_urls})
        mine = tips.pop("__node__")
        others = [t for t in tips.values() if t is not None]
        if mine is not None and others:
            best_height = max(t.height for t in others)
            at_best = {t for t in others if t.height == best_height}
            if mine in at_best or mine.height > best_height:
                return time.monotonic() - start
        if time.monotonic() - start >= timeout_s:
            raise FaultError(
                f"{node_url} did not catch up within {timeout_s:g} s (its tip {mine}, "
                f"others {sorted(set(others), key=lambda t: t.height)})"
            )
        time.sleep(poll_s)
