"""A measured run on a real 7-node rc3-fast devnet: ``bitcell-sim load`` at 50 TPS for 35 s
with one node killed and restarted inside the window, then ``devnet collect``.

The run folder's four tables pass the schema check; every final-chain block has an arrival on
every node; the nodes' own ``bitcell_block_propagation_seconds`` histograms agree with their
arrival logs (same count, median in the same bucket or the next); the killed node is down in
its timeline and its arrivals hold the blocks it synced; confirmations come from the arrivals
(never later than the watcher saw them); and the summary has every figure a prediction has.
The 35 s load holds the kill, 10 s down and the resync, with a dozen blocks on each side.
"""

from __future__ import annotations

import bisect
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from bitcell_sim.devnet import Devnet, down, up
from bitcell_sim.devnet.ports import relocated_copy
from bitcell_sim.faults import DevnetFaults
from bitcell_sim.protocol.arrivals import VIA_GOSSIP, VIA_SYNC, read_arrivals
from bitcell_sim.protocol.metrics import LATENCY_BUCKETS_S, parse_prometheus_samples
from bitcell_sim.results import TABLES, RunFolder, check_table, summarize_run

pytestmark = [pytest.mark.real]

ROOT = Path(__file__).resolve().parent.parent
VICTIM = "us-west-2"
PROPAGATION = "bitcell_block_propagation_seconds"
LOAD_S = 35
TPS = 50


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    root = tmp_path_factory.mktemp("measured")
    topology = relocated_copy(
        ROOT / "topologies" / "rc3-fast.yaml", root / "rc3-fast.yaml",
        devnet={"genesis_delay": "2 s"},
    )  # fmt: skip
    try:
        yield up(topology, root / "state", timeout_s=60)
    finally:
        down(root / "state")


def bitcell(*args: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bitcell_sim", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "COLUMNS": "200"},
        cwd=ROOT,
    )


def propagation_histogram(devnet: Devnet, node: str) -> tuple[int, list[int], float, float]:
    """(count, per-bucket counts, asked, answered) of a node's propagation histogram."""
    asked_s = time.time()
    text = httpx.get(devnet.endpoints[node].metrics_url, timeout=5).text
    answered_s = time.time()
    cumulative = {}
    count = 0
    for sample in parse_prometheus_samples(text):
        if sample.name == f"{PROPAGATION}_bucket":
            le = dict(sample.labels)["le"]
            cumulative[float(le)] = int(sample.value)
        elif sample.name == f"{PROPAGATION}_count":
            count = int(sample.value)
    bounds = sorted(cumulative)
    per_bucket = [cumulative[b] - (cumulative[bounds[i - 1]] if i else 0) for i, b in
                  enumerate(bounds)]  # fmt: skip
    return count, per_bucket, asked_s, answered_s


def median_bucket(per_bucket: list[int]) -> int:
    half, running = sum(per_bucket) / 2, 0
    for index, n in enumerate(per_bucket):
        running += n
        if running >= half:
            return index
    return len(per_bucket) - 1


@pytest.mark.timeout(360)
def test_load_writes_a_measured_run_with_all_four_tables(tmp_path: Path, devnet: Devnet) -> None:
    topology = devnet.meta.topology_source
    faults = DevnetFaults(devnet)
    applied: dict[str, float] = {}

    def kill_and_restart() -> None:
        # Inside the load window (it starts a second after Locust, a few seconds from now).
        time.sleep(12)
        faults.kill(VICTIM)
        applied["killed"] = time.time() - devnet.meta.genesis_time_unix_s
        time.sleep(10)
        faults.restart(VICTIM)
        applied["restarted"] = time.time() - devnet.meta.genesis_time_unix_s

    chaos = threading.Thread(target=kill_and_restart)
    chaos.start()
    result = bitcell(
        "load", topology, "--state-dir", str(devnet.state.root), "--tps", str(TPS),
        "--duration", str(LOAD_S), "--results-dir", str(tmp_path), "--run-id", "m50", "--no-plots",
    )  # fmt: skip
    chaos.join()
    assert result.returncode == 0, result.stdout + result.stderr
    folder = RunFolder.open(tmp_path / "m50")
    tables = folder.read_tables()
    for name, table in tables.items():
        check_table(name, table)
        assert table.num_rows > 0, name
    meta = folder.read_json("meta.json")
    assert meta["kind"] == "measured" and meta["load"]["time_origin"] == "genesis"
    start_s, end_s = meta["window_s"]
    assert meta["load_window_s"][0] == start_s and end_s > meta["load_window_s"][1]

    # ---- every final-chain block reached every node ---------------------------------------
    blocks = tables["blocks"].to_pandas()
    arrivals = tables["block_arrivals"].to_pandas()
    final = blocks[~blocks.orphaned]
    assert len(final) >= LOAD_S / 3 - 1
    assert final.height.is_monotonic_increasing and final.height.is_unique
    nodes_per_block = arrivals.groupby("block_hash").node.nunique()
    assert (nodes_per_block[final.block_hash] == len(devnet.node_names)).all()
    assert (arrivals.arrival_s >= start_s).all() and (arrivals.arrival_s <= end_s).all()

    # ---- the histograms agree with the arrival logs -------------------------------------------
    genesis = devnet.meta.genesis_time_unix_s
    for node in devnet.node_names:
        record = devnet.record(node)
        assert record is not None
        started_unix_s = record.started_unix_s  # the histogram lives as long as the process
        count, per_bucket, asked, answered = propagation_histogram(devnet, node)
        log = read_arrivals(devnet.state.node_data_dir(node))
        gossip = [a for a in log if a.via == VIA_GOSSIP and a.arrival_unix_s > started_unix_s]
        before = [a for a in gossip if a.arrival_unix_s < asked]
        assert len(before) <= count <= sum(a.arrival_unix_s < answered for a in gossip), node
        delays = [a.arrival_unix_s - a.produced_unix_s for a in before]
        ours = bisect.bisect_left(LATENCY_BUCKETS_S, float(np.median(delays)))
        assert abs(ours - median_bucket(per_bucket)) <= 1, (node, np.median(delays), per_bucket)
        # The run folder's rows are these logs' rows of the window, on the genesis clock.
        mine = arrivals[arrivals.node == node]
        logged = {a.block_hash.hex(): a.arrival_unix_s - genesis for a in log}
        assert all(logged[h] == pytest.approx(t, abs=1e-6) for h, t in
                   zip(mine.block_hash, mine.arrival_s, strict=True))  # fmt: skip

    # ---- the killed node: down in its timeline, its missed blocks synced -----------------------
    timeline = tables["node_timeline"].to_pandas()
    victim = timeline[timeline.node == VICTIM].set_index("time_s")
    down_s = victim[~victim.up].index
    assert len(down_s) >= 8
    assert applied["killed"] - 1 <= down_s.min() <= down_s.max() <= applied["restarted"] + 1
    assert (victim.loc[down_s, "pool_size"] == 0).all() and victim.up.iloc[-1]
    assert set(timeline.groupby("time_s").node.count()) == {len(devnet.node_names)}
    # Blocks made while it was down (the last second before its restart excepted: a block may
    # then reach it by gossip once it is back).
    missed = final[
        (final.produced_s > applied["killed"]) & (final.produced_s < applied["restarted"] - 1)
    ]
    assert len(missed) >= 2
    got = arrivals[(arrivals.node == VICTIM) & arrivals.block_hash.isin(missed.block_hash)]
    assert (got.arrival_s > applied["restarted"]).all() and len(got) == len(missed)
    vias = {a.block_hash.hex(): a.via for a in read_arrivals(devnet.state.node_data_dir(VICTIM))}
    assert {vias[h] for h in missed.block_hash} == {VIA_SYNC}
    (fault,) = meta["faults"]
    assert (fault["kind"], fault["target"]) == ("node_down", VICTIM)
    assert fault["start_s"] == pytest.approx(applied["killed"], abs=0.5)

    # ---- confirmations come from the arrivals -------------------------------------------------
    txs = tables["transactions"].to_pandas()
    watched = folder.read_records("transactions", "load").to_pandas().set_index("tx_id")
    assert len(txs) == len(watched) >= 0.98 * TPS * LOAD_S
    confirmed = txs[txs.confirm_s.notna()]
    assert len(confirmed) >= 0.95 * txs.accepted.sum()
    at = arrivals.set_index(["block_hash", "node"]).arrival_s
    expected = [at[(h, n)] for h, n in zip(confirmed.block_hash, confirmed.node, strict=True)]
    assert confirmed.confirm_s.to_numpy() == pytest.approx(np.array(expected))
    seen = watched[["confirm_s", "block_hash"]].rename(
        columns={"confirm_s": "watched_s", "block_hash": "watched_block"}
    )
    both = confirmed.set_index("tx_id").join(seen)
    both = both[both.block_hash == both.watched_block]  # same block (no reorg in between)
    assert len(both) >= 0.9 * len(confirmed)
    # The watcher polls after the import completes: never earlier than the records.
    assert (both.confirm_s <= both.watched_s + 1e-3).all()

    # ---- the summary has every figure a prediction has ----------------------------------------
    summary = summarize_run(folder)
    written = folder.read_json("summary.json")
    for key in ("p50", "p95", "p99"):
        assert written["confirmation_latency_s"][key] > 0
        assert written["block_propagation_s"][key] > 0
    assert written["blocks"]["interval_s"]["p50"] == pytest.approx(3.0, abs=0.2)
    assert written["throughput"]["confirmed_tps"] > 40
    assert written["pool"]["peak"] > 0 and written["blocks"]["forks"] >= 0
    (fault_summary,) = written["faults"]
    assert fault_summary["recovery_s"] is not None and fault_summary["reconvergence_s"] is not None
    assert written["load"]["hold"]["achieved_tps"] == pytest.approx(50, rel=0.03)
    assert written["load"]["watcher_confirmation_latency_s"]["count"] > 0
    assert summary["blocks"] == written["blocks"] and summary["faults"] == written["faults"]
    assert "block propagation" in result.stdout and "achieved" in result.stdout

    # ---- any interval, without load, by devnet collect ------------------------------------------
    collected = bitcell(
        "devnet", "collect", "--state-dir", str(devnet.state.root), "--since",
        str(applied["killed"] - 3), "--results-dir", str(tmp_path), "--run-id", "c",
    )  # fmt: skip
    assert collected.returncode == 0, collected.stdout + collected.stderr
    again = RunFolder.open(tmp_path / "c")
    assert again.read_records("transactions").num_rows == 0
    assert set(again.read_tables()) == set(TABLES)
    assert (again.path / "plots" / "height.png").is_file()
    assert again.read_json("summary.json")["faults"][0]["recovery_s"] is not None
    assert "collected" in collected.stdout
