"""The run summary from hand-made records: percentiles, recovery, expectations, tables."""

from __future__ import annotations

import textwrap

import pyarrow.compute as pc
import pytest
from rich.console import Console

from bitcell_sim.results import TABLES, FaultWindow, RunWindow, to_table
from bitcell_sim.results.summary import distribution, summarize, tip_history
from bitcell_sim.results.table import summary_tables
from bitcell_sim.topology import Topology, parse_topology


def topology(expectations: str) -> Topology:
    return parse_topology(
        textwrap.dedent(
            f"""
            general: {{name: tiny, duration: 60 s}}
            regions: {{r: {{rtt: {{r: 10 ms}}}}}}
            nodes: {{a: {{region: r}}, b: {{region: r}}, c: {{region: r}}}}
            protocol: {{commit: 5 s, reveal: 5 s, battle: 5 s, tx_pool_capacity: 2}}
            workload: {{tps: 1, start: 0 s, duration: 40 s}}
            faults:
              - {{kind: node_down, target: b, start: 20 s, duration: 10 s}}
            expectations: {expectations}
            """
        )
    )


BLOCKS = {
    "block_hash": ["01", "02", "03", "0f"],
    "height": [1, 2, 3, 3],
    "parent_hash": ["00", "01", "02", "02"],
    "producer": ["a", "a", "c", "b"],
    "produced_s": [15.0, 30.0, 45.0, 45.0],
    "tx_count": [1, 1, 1, 0],
    "size_bytes": [559, 559, 559, 365],
    "orphaned": [False, False, False, True],
}
# b is down 20-30 s: it gets block 02 at 33 s, then 0f (its own, a fork) and 03 win by hash.
ARRIVALS = [
    ("01", "a", 15.0),
    ("01", "b", 15.1),
    ("01", "c", 15.2),
    ("02", "a", 30.0),
    ("02", "c", 30.3),
    ("02", "b", 33.0),
    ("03", "c", 45.0),
    ("0f", "b", 45.0),
    ("03", "a", 45.1),
    ("0f", "a", 45.2),
    ("03", "b", 45.5),
    ("0f", "c", 45.6),
]
TXS = {
    "tx_id": ["t1", "t2", "t3", "t4", "t5"],
    "node": ["a", "a", "b", "c", "c"],
    "submit_s": [1.0, 16.0, 25.0, 31.0, 32.0],
    "rpc_latency_s": [0.001, 0.001, None, 0.001, 0.001],
    "accepted": [True, True, False, True, False],
    "reject_code": [None, None, None, None, -32603],
    "reject_reason": [None, None, "unreachable", None, "pool full"],
    "confirm_s": [15.0, 30.0, None, 45.2, None],
    "height": [1, 2, None, 3, None],
    "block_hash": ["01", "02", None, "03", None],
}
TIMELINE = {
    "time_s": [0.0, 0.0, 0.0, 30.0, 30.0, 30.0],
    "node": ["a", "b", "c", "a", "b", "c"],
    "up": [True] * 6,
    "height": [0, 0, 0, 2, 1, 2],
    "tip_hash": ["", "", "", "02", "01", "02"],
    "pool_size": [0, 0, 0, 2, 0, 1],
    "peers": [2] * 6,
    "sync_progress": [100.0] * 6,
}


def tables() -> dict[str, object]:
    arrivals = {
        "block_hash": [h for h, _, _ in ARRIVALS],
        "node": [n for _, n, _ in ARRIVALS],
        "arrival_s": [t for _, _, t in ARRIVALS],
    }
    return {
        "blocks": to_table("blocks", BLOCKS),
        "block_arrivals": to_table("block_arrivals", arrivals),
        "transactions": to_table("transactions", TXS),
        "node_timeline": to_table("node_timeline", TIMELINE),
    }


def test_distribution_of_nothing_and_of_values() -> None:
    assert distribution([])["p95"] is None
    d = distribution([1.0, 2.0, 3.0, 4.0])
    assert (d["count"], d["mean"], d["p50"], d["max"]) == (4, 2.5, 2.5, 4.0)


def test_tip_history_replays_fork_choice() -> None:
    history = tip_history(tables()["blocks"], tables()["block_arrivals"], ("a", "b", "c"))
    assert history[0] == (0.0, ((0, ""),) * 3)
    t, tips = history[-1]
    assert t == 45.5 and tips == ((3, "03"),) * 3  # 0f reaching c at 45.6 s changes nothing
    at_45 = dict(history)[45.0]
    assert at_45 == ((2, "02"), (3, "0f"), (3, "03"))


def test_summary_figures() -> None:
    summary = summarize(topology("{}"), tables())
    propagation = summary["block_propagation_s"]
    # Producers excluded: 01 -> b 0.1, c 0.2; 02 -> c 0.3, b 3.0; 03 -> a .1, b .5; 0f -> a .2 c .6
    assert propagation["count"] == 8 and propagation["max"] == pytest.approx(3.0)
    # Outside faults: 01 and 02 are within a round of b's 20-30 s outage; 03 and 0f are not.
    clear = summary["block_propagation_clear_s"]
    assert clear["count"] == 4 and clear["max"] == pytest.approx(0.6)
    assert summary["blocks"] == {
        "produced": 4,
        "final_height": 3,
        "orphaned": 1,
        "forks": 1,
        "round_s": 15.0,
        "interval_s": distribution([15.0, 15.0, 15.0]),
    }
    assert summary["confirmation_latency_s"]["p50"] == pytest.approx(14.0)
    txs = summary["transactions"]
    assert txs["rejected_by_reason"] == {"pool full": 1, "unreachable": 1}
    assert txs["rejection_rate"] == pytest.approx(0.4)
    assert summary["pool"]["first_rejection_s"] == 32.0
    assert summary["pool"]["peak"] == 2 and summary["pool"]["peak_node"] == "a"
    assert summary["throughput"]["confirmed_tps"] == pytest.approx(2 / 40)  # 45.2 s is late
    (fault,) = summary["faults"]
    # b restarts at 30 s at height 1 and holds the best tip (02) again at 33 s.
    assert fault["recovery_s"] == pytest.approx(3.0)
    assert fault["recovery_by_node_s"] == {"b": pytest.approx(3.0)}
    assert fault["reconvergence_s"] == pytest.approx(3.0)


def test_expectations_pass_fail_and_not_applicable() -> None:
    expect = (
        "{node_recovery_max: 2 s, region_recovery_max: 1 min, rejection_rate_max: 0.5, "
        "block_propagation_p95_max: 5 s, confirmed_tps_min: 1 TPS}"
    )
    summary = summarize(topology(expect), tables())
    status = {e["name"]: e["status"] for e in summary["expectations"]}
    assert status == {
        "node_recovery_max": "FAIL",
        "region_recovery_max": "N/A",
        "confirmed_tps_min": "FAIL",
        "block_propagation_p95_max": "PASS",
        "rejection_rate_max": "PASS",
    }
    console = Console(width=120, record=True)
    for table in summary_tables(summary):
        console.print(table)
    text = console.export_text()
    assert "node_recovery_max" in text and "FAIL" in text and "3.00 s" in text


def test_a_measured_window_is_summarized_from_its_own_bounds_and_faults() -> None:
    """A window that starts after genesis, with no load and a fault still open at its end."""
    records = tables()
    late = {
        name: records[name].filter(pc.field("block_hash") != "01")
        for name in ("blocks", "block_arrivals")
    }
    empty_load = {"transactions": TABLES["transactions"].empty_table()}
    measured = {**records, **late, **empty_load}
    still_down = FaultWindow(
        kind="node_down", target="b", start_s=35.0, end_s=None, nodes=("b",),
        down=(("b", 35.0, None),),
    )  # fmt: skip
    window = RunWindow(start_s=20.0, end_s=50.0, faults=(still_down,))
    summary = summarize(topology("{confirmed_tps_min: 1 TPS, node_recovery_max: 1 min}"),
                        measured, window=window)  # fmt: skip
    assert summary["duration_s"] == 30.0 and summary["window_s"] == [20.0, 50.0]
    # Block 01 is before the window: 02 -> 03 is the only interval (none from genesis).
    assert summary["blocks"]["interval_s"] == distribution([15.0])
    assert summary["throughput"]["offered_tps"] is None
    assert summary["pool"]["fill_estimate_s"] is None
    assert summary["pool"]["first_rejection_after_load_start_s"] is None
    (fault,) = summary["faults"]
    assert fault["end_s"] is None and fault["recovery_s"] is None
    # Every propagation sample of 03 and 0f is within a round of the open fault (35 s on).
    assert summary["block_propagation_clear_s"]["count"] == 0
    status = {e["name"]: e["status"] for e in summary["expectations"]}
    assert status == {"node_recovery_max": "FAIL", "confirmed_tps_min": "N/A"}
    console = Console(width=160, record=True)
    for table in summary_tables(summary):
        console.print(table)
    text = console.export_text()
    assert "35 s-, still in force" in text and "never" in text
