"""``bitcell-sim measure`` beside a real 7-node rc3-fast devnet (loopback), checked against the
devnet's own records (``devnet.collect``, the nodes' arrival logs) of the same window.

One node is killed during the measurement, which SIGTERM then ends before its duration. The
measured blocks are the devnet's (hashes, heights with none skipped, producers, production
times, tx counts); each measured arrival is within the bound written in meta.json of the node's
logged arrival, and within the poll interval on the median; the killed node is down in the
measured timeline from its kill on; and ``compare`` reads the measured folder.
``load --endpoints`` confirms the same transactions in the same blocks as the devnet's records.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bitcell_sim.devnet import Devnet, down, up
from bitcell_sim.devnet.collect import collect
from bitcell_sim.devnet.ports import relocated_copy
from bitcell_sim.faults import DevnetFaults
from bitcell_sim.results import RunFolder

pytestmark = [pytest.mark.real]

ROOT = Path(__file__).resolve().parent.parent
VICTIM = "us-west-2"
INTERVAL_S = 0.1
#: The measurement is stopped by SIGTERM this long after it started (its --duration is longer).
STOP_AFTER_S = 17.0
KILL_AFTER_S = 8.0
#: How far a true arrival may sit outside its bracket: the node stamps the arrival when its
#: import starts, and the tip changes when the import commits (a few ms at rc3-fast's costs).
IMPORT_MARGIN_S = 0.02


@pytest.fixture()  # a fresh devnet per attempt: the test kills a node
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    root = tmp_path_factory.mktemp("measure")
    topology = relocated_copy(
        ROOT / "topologies" / "rc3-fast.yaml", root / "rc3-fast.yaml",
        devnet={"genesis_delay": "2 s"},
    )  # fmt: skip
    try:
        yield up(topology, root / "state", timeout_s=60)
    finally:
        down(root / "state")


def endpoints_file(devnet: Devnet, path: Path) -> Path:
    nodes = {n: {"rpc": e.rpc_url, "metrics": e.metrics_url} for n, e in devnet.endpoints.items()}
    path.write_text(
        yaml.safe_dump({"genesis_time_unix_s": devnet.meta.genesis_time_unix_s, "nodes": nodes})
    )
    return path


@pytest.mark.timeout(120)
def test_measure_agrees_with_the_devnets_records(tmp_path: Path, devnet: Devnet) -> None:
    endpoints = endpoints_file(devnet, tmp_path / "endpoints.yaml")
    command = [
        sys.executable, "-m", "bitcell_sim", "measure", devnet.meta.topology_source,
        "--endpoints", str(endpoints), "--duration", "120",
        "--interval", f"{INTERVAL_S:g}", "--results-dir", str(tmp_path), "--run-id", "m",
        "--no-plots",
    ]  # fmt: skip
    env = {**os.environ, "COLUMNS": "200"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=ROOT, env=env)  # fmt: skip
    try:
        started = time.time()
        time.sleep(KILL_AFTER_S)
        DevnetFaults(devnet).kill(VICTIM)
        killed_s = time.time() - devnet.meta.genesis_time_unix_s
        time.sleep(max(started + STOP_AFTER_S - time.time(), 0.0))
        process.send_signal(signal.SIGTERM)  # it writes what it recorded, and exits 0
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stdout + stderr
    assert "arrival times: each within" in stdout

    measured = RunFolder.open(tmp_path / "m")
    meta = measured.read_json("meta.json")
    assert meta["kind"] == "measured" and meta["source"] == "endpoints" and meta["interrupted"]
    timing = meta["arrival_timing"]
    assert timing["poll_interval_s"] == INTERVAL_S
    assert 0 < timing["error_bound_median_s"] <= timing["error_bound_max_s"]
    since_s, until_s = meta["window_s"]
    assert until_s - since_s >= STOP_AFTER_S - 4 - 2 * 3.0  # start-up, then up to two rounds

    truth = RunFolder.create(tmp_path, "truth", devnet.topology)
    collect(devnet, truth, since_s=since_s, until_s=until_s)
    ours, theirs = measured.read_tables(), truth.read_tables()

    # ---- the same blocks, no height skipped ---------------------------------------------------
    columns = ["block_hash", "height", "parent_hash", "producer", "tx_count", "size_bytes"]
    mine = ours["blocks"].to_pandas().set_index("block_hash")
    real = theirs["blocks"].to_pandas().set_index("block_hash")
    final = real[~real.orphaned]
    assert len(final) >= (until_s - since_s) / 3 - 2
    assert set(final.index) <= set(mine.index)
    assert set(mine.index) <= set(real.index)  # nothing a node never held
    assert mine.loc[final.index, columns[1:]].equals(final[columns[1:]])
    assert np.allclose(mine.loc[final.index, "produced_s"], final.produced_s, atol=1e-6)
    heights = sorted(mine.loc[~mine.orphaned, "height"])
    assert heights == list(range(heights[0], heights[0] + len(heights)))

    # ---- each arrival within the bound of the node's own log --------------------------------
    bound_s = timing["error_bound_max_s"] + IMPORT_MARGIN_S
    a = ours["block_arrivals"].to_pandas().set_index(["block_hash", "node"]).arrival_s
    b = theirs["block_arrivals"].to_pandas().set_index(["block_hash", "node"]).arrival_s
    b = b[b.index.get_level_values(0).isin(final.index)]
    a = a[a.index.get_level_values(0).isin(final.index)]
    both = a.index.intersection(b.index)
    # A pair on one side only sits at the end of the window, where the estimate and the truth
    # may fall on either side of it.
    lone = pd.concat([a[a.index.difference(b.index)], b[b.index.difference(a.index)]])
    assert (lone >= until_s - bound_s).all(), lone
    assert len(both) >= 0.95 * len(b)
    error = (a[both] - b[both]).abs()
    bounds_ms = (timing["error_bound_median_s"] * 1e3, timing["error_bound_max_s"] * 1e3)
    print(f"arrival error vs devnet records: median {error.median() * 1e3:.1f} ms, "
          f"max {error.max() * 1e3:.1f} ms over {len(error)} arrivals; bound median "
          f"{bounds_ms[0]:.1f} ms, max {bounds_ms[1]:.1f} ms")  # fmt: skip
    assert error.max() <= bound_s, error.sort_values().tail()
    # Within the poll interval on the median. The maximum is held to the written bound only:
    # the read that shows a block is slow when the node is busy importing it, and more so on a
    # loaded machine, so a bracket (and so the error) can exceed the interval (docs/deploy.md).
    assert error.median() <= INTERVAL_S / 2

    # ---- the killed node: down in the timeline from the kill on --------------------------------
    timeline = ours["node_timeline"].to_pandas()
    victim = timeline[timeline.node == VICTIM].set_index("time_s")
    assert victim.loc[: killed_s - 1, "up"].all()
    after = victim.loc[killed_s + 1 :]
    assert len(after) >= 3 and not after.up.any() and (after.peers == 0).all()
    others = timeline[(timeline.node != VICTIM) & (timeline.time_s > killed_s + 1)]
    assert others.up.all()
    assert set(timeline.groupby("time_s").node.count()) == {len(devnet.node_names)}

    # ---- compare reads it like a devnet run ----------------------------------------------------
    result = subprocess.run(
        [sys.executable, "-m", "bitcell_sim", "compare", str(truth.path), str(measured.path),
         "--out", str(tmp_path / "compare")],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = (tmp_path / "compare" / "report.md").read_text()
    assert "m: block arrivals measured by polling each node's tip every 100 ms" in report


@pytest.mark.timeout(150)
def test_load_with_endpoints_measures_its_transactions(tmp_path: Path, devnet: Devnet) -> None:
    endpoints = endpoints_file(devnet, tmp_path / "endpoints.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "bitcell_sim", "load", devnet.meta.topology_source,
         "--endpoints", str(endpoints), "--tps", "20", "--duration", "8", "--drain", "6",
         "--state-dir", str(tmp_path / "no-devnet-here"), "--results-dir", str(tmp_path),
         "--run-id", "l", "--no-plots"],
        capture_output=True, text=True, timeout=140, cwd=ROOT, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "arrival times: each within" in result.stdout
    measured = RunFolder.open(tmp_path / "l")
    meta = measured.read_json("meta.json")
    assert meta["source"] == "endpoints" and meta["load_window_s"] is not None
    tables = measured.read_tables()
    txs = tables["transactions"].to_pandas()
    assert len(txs) >= 0.9 * 20 * 8 and txs.accepted.all()
    confirmed = txs[txs.confirm_s.notna()]
    assert len(confirmed) >= 0.95 * len(txs)
    # Confirmed when the block holding the tx reached the node it was sent to, as measured.
    at = tables["block_arrivals"].to_pandas().set_index(["block_hash", "node"]).arrival_s
    expected = [at[(h, n)] for h, n in zip(confirmed.block_hash, confirmed.node, strict=True)]
    assert confirmed.confirm_s.to_numpy() == pytest.approx(np.array(expected))

    # The devnet's own records of the same window confirm the same txs in the same blocks,
    # at times within the measured arrival bound.
    since_s, until_s = meta["window_s"]
    truth = RunFolder.create(tmp_path, "truth", devnet.topology)
    load_txs = measured.read_records("transactions", "load")
    collect(devnet, truth, since_s=since_s, until_s=until_s, transactions=load_txs)
    real = truth.read_records("transactions").to_pandas().set_index("tx_id")
    ours = confirmed.set_index("tx_id")
    assert (real.loc[ours.index, "block_hash"] == ours.block_hash).all()
    error = (real.loc[ours.index, "confirm_s"] - ours.confirm_s).abs()
    assert error.max() <= meta["arrival_timing"]["error_bound_max_s"] + IMPORT_MARGIN_S
