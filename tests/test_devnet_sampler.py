"""The timeline sampler without node processes: a node that answers, one that runs but is
silent, one that is down; ticks on the genesis clock; the store it writes and reads."""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from bitcell_sim.devnet import Devnet, DevnetMeta, ProcessRecord, StateDir
from bitcell_sim.devnet.processes import start_ticks
from bitcell_sim.devnet.sampler import Sample, Sampler, TimelineStore
from bitcell_sim.protocol.rpc_client import AsyncRpcClient
from bitcell_sim.topology import parse_topology

TOPOLOGY = """
general: {name: tiny, duration: 60 s}
regions: {r: {rtt: {r: 10 ms}}}
nodes: {a: {region: r}, b: {region: r}, c: {region: r}}
"""
METRICS = "bitcell_pending_txs 12\nbitcell_peer_count 2\nbitcell_sync_progress 50.0\n"


def make_devnet(tmp_path: Path, genesis_unix_s: float) -> Devnet:
    state = StateDir(tmp_path / "state")
    state.create()
    meta = DevnetMeta("tiny", "t.yaml", "127.0.0.1", genesis_unix_s, "http://x", 0.0, "py", ())
    ticks = start_ticks(os.getpid())
    assert ticks is not None
    for node in ("a", "b"):  # both "run": the record is this very process
        state.save_record(ProcessRecord(node, os.getpid(), ticks, ("x",), "log", 0.0))
    return Devnet(state, parse_topology(textwrap.dedent(TOPOLOGY)), meta)


def test_a_tick_samples_answering_silent_and_down_nodes(tmp_path: Path) -> None:
    devnet = make_devnet(tmp_path, time.time())
    answering = {"a": True}

    def handler(request: httpx.Request) -> httpx.Response:
        port = request.url.port
        node = next(n for n, e in devnet.endpoints.items() if f":{port}" in e.rpc_url
                    or f":{port}/" in e.metrics_url)  # fmt: skip
        if node != "a" or not answering["a"]:
            raise httpx.ConnectError("refused", request=request)
        if request.url.path == "/metrics":
            return httpx.Response(200, text=METRICS)
        body = {"jsonrpc": "2.0", "id": 1, "result": {"number": "0x5", "hash": "0x" + "ab" * 32}}
        return httpx.Response(200, json=body)

    transport = httpx.MockTransport(handler)
    store = TimelineStore(devnet.state.timeline_path)
    sampler = Sampler(devnet, store)

    async def two_ticks() -> tuple[list[Sample], list[Sample]]:
        clients = {
            n: AsyncRpcClient(e.rpc_url, transport=transport) for n, e in devnet.endpoints.items()
        }
        async with httpx.AsyncClient(transport=transport) as http:
            first = await sampler.sample(1.0, clients, http)
            answering["a"] = False
            second = await sampler.sample(2.0, clients, http)
        return first, second

    first, second = asyncio.run(two_ticks())
    a, b, c = first
    assert a == Sample(1.0, "a", True, 5, "ab" * 32, 12, 2, 50.0)
    assert b == Sample(1.0, "b", True, 0, "", 0, 0, 100.0)  # running, silent: last known
    assert c == Sample(1.0, "c", False, 0, "", 0, 0, 100.0)  # no process: down
    # a stops answering but still runs: it keeps what it said last.
    assert second[0] == Sample(2.0, "a", True, 5, "ab" * 32, 12, 2, 50.0)
    devnet.state.remove_record("a")  # now its process is gone: down, pool and peers 0
    (down,) = [s for s in asyncio.run(_tick(sampler, devnet, transport)) if s.node == "a"]
    assert down == Sample(3.0, "a", False, 5, "ab" * 32, 0, 0, 50.0)
    assert [s.time_s for s in store.read(2.0, 3.0)] == [2.0, 2.0, 2.0, 3.0, 3.0, 3.0]
    assert len(store.read()) == 9
    store.close()


async def _tick(sampler: Sampler, devnet: Devnet, transport: httpx.MockTransport) -> list[Sample]:
    clients = {
        n: AsyncRpcClient(e.rpc_url, transport=transport) for n, e in devnet.endpoints.items()
    }
    async with httpx.AsyncClient(transport=transport) as http:
        return await sampler.sample(3.0, clients, http)


def test_run_samples_on_the_genesis_clock_until_stopped(tmp_path: Path) -> None:
    devnet = make_devnet(tmp_path, time.time() + 0.5)  # genesis is just ahead
    store = TimelineStore(devnet.state.timeline_path)
    sampler = Sampler(devnet, store, interval_s=0.1, timeout_s=0.05)

    async def run_briefly() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.15, stop.set)
        await sampler.run(stop)

    asyncio.run(run_briefly())
    times = sorted({s.time_s for s in store.read()})
    store.close()
    assert 3 <= len(times) <= 8 and times[0] == 0.0
    assert all(t == pytest.approx(round(t / 0.1) * 0.1) for t in times)
