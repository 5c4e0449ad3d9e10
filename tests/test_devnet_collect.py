"""The collector on a hand-made devnet state folder: arrival logs, timeline and fault journal in,
one measured run folder out (the interval cut, the final chain, confirmations from arrivals,
faults as windows, the devnet's run files attached), summarized like a prediction."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import pytest

from bitcell_sim.devnet import Devnet, DevnetMeta, StateDir
from bitcell_sim.devnet.collect import collect, fault_windows, settled_until_s
from bitcell_sim.devnet.journal import FaultEvent, append_event, read_events
from bitcell_sim.devnet.sampler import Sample, TimelineStore
from bitcell_sim.errors import DevnetError
from bitcell_sim.protocol.arrivals import ARRIVALS_DDL, DB_FILE, INSERT_ARRIVAL, BlockArrival
from bitcell_sim.results import FaultWindow, RunFolder, summarize_run, to_table
from bitcell_sim.topology import Topology, parse_topology

GENESIS_UNIX_S = 1_000_000.0
TOPOLOGY = """
general: {name: tiny, duration: 60 s}
regions: {r1: {rtt: {r1: 10 ms, r2: 100 ms}}, r2: {rtt: {r2: 10 ms}}}
nodes: {a: {region: r1}, b: {region: r1}, c: {region: r2}}
protocol: {commit: 1 s, reveal: 1 s, battle: 1 s}
"""


def h(n: int) -> bytes:
    return bytes([n]) * 32


def tx(n: int) -> bytes:
    return bytes([0xA0 + n]) * 32


# (hash, height, parent, producer, produced_s, tx ids); 3 (lower hash) beats 0x30 at height 3.
BLOCKS = {
    1: (1, 0, "a", 3.0, []),
    2: (2, 1, "b", 6.0, [tx(1), tx(2)]),
    3: (3, 2, "a", 9.0, []),
    0x30: (3, 2, "b", 9.0, [tx(3)]),
    4: (4, 3, "a", 12.0, []),
    5: (5, 4, "b", 15.0, [tx(4)]),
}
# node -> [(block, via, arrival_s)]; c is down 7-10 s and syncs block 2 at 10.5 s.
ARRIVALS = {
    "a": [(1, "own", 3.0), (2, "gossip", 6.1), (3, "own", 9.0), (0x30, "gossip", 9.1),
          (4, "own", 12.0), (5, "gossip", 15.1)],
    "b": [(1, "gossip", 3.1), (2, "own", 6.0), (0x30, "own", 9.0), (3, "gossip", 9.1),
          (4, "gossip", 12.1), (5, "own", 15.0)],
    "c": [(1, "gossip", 3.2), (2, "sync", 10.5), (3, "sync", 10.6), (4, "gossip", 12.2)],
}  # fmt: skip


def write_log(data_dir: Path, rows: list[tuple[int, str, float]]) -> None:
    data_dir.mkdir(parents=True)
    db = sqlite3.connect(data_dir / DB_FILE)
    db.executescript(ARRIVALS_DDL)
    for block, via, arrival_s in rows:
        height, parent, producer, produced_s, tx_ids = BLOCKS[block]
        arrival = BlockArrival(
            h(block), height, h(parent), producer, GENESIS_UNIX_S + produced_s, len(tx_ids),
            365 + 194 * len(tx_ids), via, GENESIS_UNIX_S + arrival_s,
        )  # fmt: skip
        db.execute(INSERT_ARRIVAL, arrival.row(tx_ids))
    db.commit()
    db.close()


def event(t: float, action: str, kind: str, target: str, fault_id: int, **detail: object) -> None:
    return FaultEvent(GENESIS_UNIX_S + t, t, action, kind, target, fault_id, "", dict(detail))


@pytest.fixture()
def devnet(tmp_path: Path) -> Devnet:
    topology = parse_topology(textwrap.dedent(TOPOLOGY))
    state = StateDir(tmp_path / "state")
    state.create()
    meta = DevnetMeta("tiny", "tiny.yaml", "127.0.0.1", GENESIS_UNIX_S, "http://x", 0.0, "py", ())
    for node, rows in ARRIVALS.items():
        write_log(state.node_data_dir(node), rows)
    store = TimelineStore(state.timeline_path)
    store.append(
        [
            Sample(float(t), n, not (n == "c" and 7 <= t < 10), t // 3, "", 0, 2, 100.0)
            for t in range(0, 16)
            for n in ("a", "b", "c")
        ]
    )
    store.close()
    for e in (
        event(1.0, "apply", "added_latency", "b", 1, nodes=["b"], latency_s=0.05),
        event(2.0, "revert", "added_latency", "b", 1, nodes=["b"], latency_s=0.05),
        event(7.0, "apply", "region_down", "r2", 2, nodes=["c"]),
        event(10.0, "revert", "region_down", "r2", 2, nodes=["c"]),
        event(11.0, "apply", "partition", "a | b,c", 3, links=["a->b"]),
    ):
        append_event(state.faults_log_path, e)
    (state.run_files_dir / "monitoring").mkdir(parents=True)
    (state.run_files_dir / "monitoring" / "alerts.jsonl").write_text('{"alert": "NodeDown"}\n')
    return Devnet(state, topology, meta)


def test_collect_writes_the_interval_on_the_genesis_clock(tmp_path: Path, devnet: Devnet) -> None:
    folder = RunFolder.create(tmp_path, "measured", devnet.topology)
    txs = to_table(
        "transactions",
        {
            "tx_id": [t.hex() for t in (tx(1), tx(2), tx(3), tx(4))] + ["ff" * 32],
            "node": ["a", "c", "b", "a", "a"],
            "submit_s": [5.0, 5.5, 8.0, 13.0, 13.5],
            "rpc_latency_s": [0.001] * 4 + [None],
            "accepted": [True, True, True, True, False],
            "reject_code": [None] * 4 + [-32603],
            "reject_reason": [None] * 4 + ["pool full"],
            "confirm_s": [None] * 5,
            "height": [None] * 5,
            "block_hash": [None] * 5,
        },
    )
    collected = collect(
        devnet, folder, since_s=4.0, until_s=14.999, transactions=txs, load_s=(5.0, 14.0),
        peak_tps=1.0, meta={"load": {"run": "x"}},
    )  # fmt: skip
    tables = folder.read_tables()
    blocks = tables["blocks"].to_pylist()
    # Block 1 (3 s) is before the interval, block 5 (15 s) after it.
    assert [(b["height"], b["block_hash"][:2], b["orphaned"]) for b in blocks] == [
        (2, "02", False), (3, "03", False), (3, "30", True), (4, "04", False),
    ]  # fmt: skip
    assert blocks[0]["produced_s"] == 6.0 and blocks[0]["producer"] == "b"
    assert blocks[0]["tx_count"] == 2 and blocks[0]["size_bytes"] == 365 + 2 * 194
    arrivals = tables["block_arrivals"].to_pylist()
    assert len(arrivals) == 11 and all(4.0 <= a["arrival_s"] <= 14.999 for a in arrivals)
    assert {
        (a["node"], round(a["arrival_s"], 6)) for a in arrivals if a["block_hash"] == "02" * 32
    } == {("a", 6.1), ("b", 6.0), ("c", 10.5)}
    confirm = {t["tx_id"][:2]: t for t in tables["transactions"].to_pylist()}
    assert confirm["a1"]["confirm_s"] == pytest.approx(6.1) and confirm["a1"]["height"] == 2
    assert confirm["a2"]["confirm_s"] == 10.5  # its node c got block 2 by sync after its outage
    assert confirm["a3"]["block_hash"] is None  # only in the orphaned block
    assert confirm["a4"]["confirm_s"] is None  # in block 5, after the interval
    assert confirm["ff"]["accepted"] is False and confirm["ff"]["confirm_s"] is None
    timeline = tables["node_timeline"].to_pylist()
    assert {r["time_s"] for r in timeline} == {float(t) for t in range(4, 15)}
    assert [r["up"] for r in timeline if r["node"] == "c" and 6 <= r["time_s"] <= 10] == [
        True, False, False, False, True,
    ]  # fmt: skip

    meta = folder.read_json("meta.json")
    assert meta["kind"] == "measured" and meta["window_s"] == [4.0, 14.999]
    assert meta["load_window_s"] == [5.0, 14.0] and meta["load"] == {"run": "x"}
    assert meta["records"] == collected.rows == {
        "blocks": 4, "block_arrivals": 11, "transactions": 5, "node_timeline": 33,
    }  # fmt: skip
    assert [e["fault_id"] for e in meta["fault_journal"]] == [2, 2, 3]
    region, partition = collected.window.faults  # the latency fault ended before the interval
    assert region == FaultWindow("region_down", "r2", 7.0, 10.0, ("c",), down=(("c", 7.0, 10.0),))
    assert partition.end_s is None and partition.nodes == ("a", "b", "c")
    assert collected.attached == ("monitoring/alerts.jsonl",)
    assert (folder.path / "monitoring" / "alerts.jsonl").read_text() == '{"alert": "NodeDown"}\n'

    summary = summarize_run(folder)
    assert summary["blocks"]["orphaned"] == 1 and summary["blocks"]["forks"] == 1
    assert summary["blocks"]["interval_s"]["count"] == 2  # 2 -> 3 -> 4 (block 1 is outside)
    assert summary["transactions"]["confirmed"] == 2
    region_summary = summary["faults"][0]
    # c is back at 10 s and holds the best tip (3) once it syncs it at 10.6 s.
    assert region_summary["recovery_s"] == pytest.approx(0.6)
    assert summary["faults"][1]["recovery_s"] is None


def test_a_down_fault_ends_with_its_last_node_and_a_later_revert_leaves_it_open(
    devnet: Devnet,
) -> None:
    topology: Topology = devnet.topology
    events = [
        event(20.0, "apply", "region_down", "r1", 7, nodes=["a", "b"]),
        event(25.0, "revert", "region_down", "r1", 7, nodes=["a"]),
        event(31.0, "revert", "region_down", "r1", 7, nodes=["b"]),
    ]
    (late,) = fault_windows(topology, events, 0.0, 40.0)
    assert late.end_s == 31.0 and late.down == (("a", 20.0, 25.0), ("b", 20.0, 31.0))
    (cut,) = fault_windows(topology, events, 0.0, 30.0)
    assert cut.end_s is None and cut.down == (("a", 20.0, 25.0), ("b", 20.0, None))
    assert fault_windows(topology, events, 0.0, 19.0) == ()
    assert read_events(devnet.state.faults_log_path)[0].kind == "added_latency"


def test_collect_refuses_an_interval_backwards_and_warns_of_missing_parts(
    tmp_path: Path, devnet: Devnet
) -> None:
    folder = RunFolder.create(tmp_path, "r", devnet.topology)
    with pytest.raises(DevnetError, match=r"until 3\.000 s is before since 4\.000 s"):
        collect(devnet, folder, since_s=4.0, until_s=3.0)
    devnet.state.timeline_path.unlink()
    collected = collect(devnet, folder, since_s=0.0, until_s=20.0)
    assert collected.rows["node_timeline"] == 0 and collected.rows["transactions"] == 0
    assert any("no node timeline" in w for w in collected.warnings)
    # Just before the latest round end (3 s rounds): 10 s after genesis gives 9 s less 1 ms.
    assert settled_until_s(devnet, GENESIS_UNIX_S + 10.0) == pytest.approx(8.999)
