"""Sweeps of the model: grid expansion, bad keys, determinism, and rows equal to single runs."""

from __future__ import annotations

import math
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bitcell_sim.errors import ModelError, TopologyError
from bitcell_sim.model import simulate
from bitcell_sim.model.sweep import (
    FIGURES,
    expand_grid,
    parse_set,
    per_point,
    plan_sweep,
    point_intervals,
    point_topology,
    run_key,
    sweep,
    t95,
)
from bitcell_sim.results import summarize
from bitcell_sim.topology import Topology, load_topology
from tests.model_topologies import TOPOLOGIES

# rc3-fast (1 s phases) cut to 40 s with load from 10 s to 30 s: a run takes a fraction of a second.
SHORT = {"duration": ["40 s"]}


@pytest.fixture(scope="module")
def fast() -> Topology:
    return load_topology(TOPOLOGIES / "rc3-fast.yaml")


def test_grid_expands_first_key_slowest_with_labels() -> None:
    faults = {"none": [], "ap +1 s": [{"kind": "added_latency"}]}
    points = expand_grid({"protocol.max_txs_per_block": [100, 200], "round": [3, 6], "f": faults})
    assert len(points) == 8
    assert [p.index for p in points] == list(range(8))
    assert [(p.labels["protocol.max_txs_per_block"], p.labels["round"]) for p in points[::2]] == [
        (100, 3),
        (100, 6),
        (200, 3),
        (200, 6),
    ]
    assert [p.labels["f"] for p in points[:2]] == ["none", "ap +1 s"]
    assert points[1].values["f"] == [{"kind": "added_latency"}]


def test_numpy_values_become_python_scalars() -> None:
    points = expand_grid({"protocol.max_txs_per_block": np.arange(1000, 1501, 250)})
    assert [p.values["protocol.max_txs_per_block"] for p in points] == [1000, 1250, 1500]
    assert all(type(p.labels["protocol.max_txs_per_block"]) is int for p in points)


@pytest.mark.parametrize(
    ("grid", "match"),
    [
        ({}, "the grid is empty"),
        ({"round": "12 s"}, r"round: values must be a list or a mapping"),
        ({"round": []}, r"round: no values to sweep"),
        ({"faults": [[{"kind": "node_down"}]]}, r"faults: value .* is not a scalar"),
        ({"general.seed": [1, 2]}, r"general.seed: sweep seeds with the seeds argument"),
    ],
)
def test_bad_grids_name_the_key(grid: dict[str, Any], match: str) -> None:
    with pytest.raises(TopologyError, match=match):
        expand_grid(grid)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        (
            "protocol.max_tx_per_block",
            1500,
            r"protocol.max_tx_per_block: unknown key 'max_tx_per_block' in protocol "
            r"\(allowed: commit, reveal, battle, max_txs_per_block",
        ),
        ("protocl.commit", "1 s", r"protocl.commit: unknown key 'protocl' in the topology"),
        (
            "protocol.max_txs_per_block.limit",
            1,
            r"protocol.max_txs_per_block.limit: protocol.max_txs_per_block is a value \(500\)",
        ),
        ("faults.0.start", "1 s", r"faults.0.start: '0' is not an index of faults \(it has 0"),
        ("protocol.max_txs_per_block", 0, r"protocol.max_txs_per_block: .*greater than or equal"),
        ("protocol.commit", "fast", r"protocol.commit: .*bad duration 'fast'"),
        ("round", "fast", r"round: bad duration 'fast'"),
        ("round", 0, r"round: round 0 must be > 0"),
        ("tps", "many", r"tps: bad rate 'many'"),
        ("duration", -5, r"general.duration: duration -5.0 s must be > 0"),
    ],
)
def test_bad_keys_and_values_raise_before_any_run(
    fast: Topology, key: str, value: Any, match: str
) -> None:
    calls: list[tuple[int, int]] = []
    grid = {"protocol.max_txs_per_block": [500, 1000], key: [value]}
    if key == "protocol.max_txs_per_block":
        grid = {key: [500, value]}
    with pytest.raises(TopologyError, match=match):
        sweep(fast, {**SHORT, **grid}, workers=1, progress=lambda d, t: calls.append((d, t)))
    assert calls == []  # every point is validated before the first run


def test_a_bad_value_names_the_point(fast: Topology) -> None:
    with pytest.raises(TopologyError, match=r"sweep point protocol.tx_pool_capacity=0"):
        point_topology(fast, {"protocol.tx_pool_capacity": 0}, seed=1)


def test_point_topology_applies_shortcuts_paths_and_seed(fast: Topology) -> None:
    topo = point_topology(
        fast,
        {
            "duration": "5 min",
            "tps": "150 TPS",
            "round": 12,
            "protocol.max_txs_per_block": 1500,
            "protocol.tx_pool_capacity": 20000,
            "regions.us-east.rtt.ap-southeast": "300 ms",
            "faults": [{"kind": "region_down", "target": "us-east", "start": 60, "duration": 30}],
        },
        seed=7,
    )
    assert topo.general.seed == 7 and topo.general.duration_s == 300
    # rc3-fast's load keeps its 10 s start and its 50 s quiet time before the end.
    assert topo.workload_stages() == ((10.0, 250.0, 150.0, 150.0),)
    protocol = topo.protocol
    assert (protocol.commit_s, protocol.reveal_s, protocol.battle_s) == (4.0, 4.0, 4.0)
    assert protocol.capacity_tps == 125.0 and protocol.tx_pool_capacity == 20000
    assert topo.rtt_s("us-east-1", "ap-southeast-1") == 0.3
    assert topo.faults[0].kind == "region_down" and topo.faults[0].end_s == 90
    assert fast.protocol.max_txs_per_block == 1000  # the base topology is untouched


GRID: dict[str, Any] = {
    **SHORT,
    "protocol.max_txs_per_block": [200, 400],
    "tps": [100, 150],
}


@pytest.fixture(scope="module")
def small(fast: Topology) -> pd.DataFrame:
    return sweep(fast, GRID, seeds=(1, 2), workers=2)


def test_sweep_rows_columns_and_order(small: pd.DataFrame) -> None:
    assert list(small.columns) == [
        "point",
        "duration",
        "protocol.max_txs_per_block",
        "tps",
        "seed",
        *FIGURES,
        "run",
    ]
    assert len(small) == 8
    assert small["run"].nunique() == 8  # every (point, seed) resolves to its own topology
    assert small["point"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert small["seed"].tolist() == [1, 2] * 4
    assert small["protocol.max_txs_per_block"].tolist() == [200] * 4 + [400] * 4
    assert small["tps"].tolist() == [100, 100, 150, 150] * 2
    assert small["capacity_tps"].tolist() == [200 / 3] * 4 + [400 / 3] * 4
    assert small.attrs["grid_keys"] == ["duration", "protocol.max_txs_per_block", "tps"]
    assert small.attrs["seeds"] == [1, 2] and small.attrs["topology"] == "rc3-fast"
    # The small blocks cannot carry 100 TPS and the pools fill; the large ones can.
    assert (small["steady_confirmed_tps"][:4] <= 200 / 3 + 1e-9).all()
    assert (small["rejected_pool_full"][4:6] == 0).all()


def test_sweep_is_deterministic_across_workers_and_executors(
    fast: Topology, small: pd.DataFrame
) -> None:
    serial = sweep(fast, GRID, seeds=(1, 2), workers=1)
    pd.testing.assert_frame_equal(serial, small)
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = sweep(fast, GRID, seeds=(1, 2), executor=pool)
        assert pool.submit(int, "7").result() == 7  # a caller's executor is left running
    pd.testing.assert_frame_equal(threaded, small)


def test_rows_equal_single_simulate_runs(fast: Topology, small: pd.DataFrame) -> None:
    for i in (0, 3, 5, 6):
        row = small.iloc[i]
        keys = ("duration", "protocol.max_txs_per_block", "tps")
        topo = point_topology(fast, {k: row[k] for k in keys}, seed=int(row["seed"]))
        result = simulate(topo)
        summary = summarize(topo, result.tables, extras=result.stats)
        txs, latency = summary["transactions"], summary["confirmation_latency_s"]
        assert row["capacity_tps"] == topo.protocol.capacity_tps
        assert row["steady_confirmed_tps"] == summary["throughput"]["steady_state_confirmed_tps"]
        assert row["confirmed_tps"] == summary["throughput"]["confirmed_tps"]
        assert row["offered_tps"] == summary["throughput"]["offered_tps"]
        half_s, end_s = summary["throughput"]["steady_state_window_s"]
        submit_s = result.tables["transactions"].column("submit_s").to_pylist()
        in_window = sum(half_s <= t < end_s for t in submit_s)
        assert row["steady_offered_tps"] == in_window / (end_s - half_s)
        assert (
            row["confirmation_p50_s"],
            row["confirmation_p95_s"],
            row["confirmation_p99_s"],
        ) == (
            latency["p50"],
            latency["p95"],
            latency["p99"],
        )
        assert (row["submitted"], row["rejected"], row["rejection_rate"]) == (
            txs["submitted"],
            txs["rejected"],
            txs["rejection_rate"],
        )
        assert row["rejected_pool_full"] == txs["rejected_by_reason"].get("pool full", 0)
        first = summary["pool"]["first_rejection_s"]
        assert (math.isnan(row["first_pool_full_s"]) and first is None) or (
            row["first_pool_full_s"] == first
        )
        assert row["pool_peak"] == max(result.stats["pool_peak_by_node"].values())
        assert (row["blocks"], row["forks"], row["orphaned"]) == (
            summary["blocks"]["produced"],
            summary["blocks"]["forks"],
            summary["blocks"]["orphaned"],
        )
        assert row["block_propagation_p95_s"] == summary["block_propagation_s"]["p95"]
        assert math.isnan(row["recovery_s"])  # no faults
        failed = [e for e in summary["expectations"] if e["status"] == "FAIL"]
        assert row["expectations_failed"] == len(failed)


def test_progress_counts_every_run(fast: Topology) -> None:
    calls: list[tuple[int, int]] = []
    sweep(
        fast, {**SHORT, "tps": [50, 80]}, seeds=(1, 2), progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_faults_as_labelled_values(fast: Topology) -> None:
    down = [{"kind": "region_down", "target": "us-east", "start": "15 s", "duration": "5 s"}]
    frame = sweep(fast, {**SHORT, "faults": {"none": [], "us-east down": down}}, workers=2)
    assert frame["faults"].tolist() == ["none", "us-east down"]
    none, outage = frame.iloc[0], frame.iloc[1]
    assert none["rejected_unreachable"] == 0 and math.isnan(none["recovery_s"])
    # Txs sent to the two us-east nodes while they are down are refused.
    assert outage["rejected_unreachable"] > 0 and outage["rejected_pool_full"] == 0
    assert 0 <= outage["recovery_s"] < 10


class _FailingExecutor(Executor):
    """Every run fails, as a worker that crashed would."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_exception(ModelError("worker lost"))
        return future


def test_a_failed_run_names_its_point(fast: Topology) -> None:
    with pytest.raises(ModelError, match="worker lost") as info:
        sweep(fast, {**SHORT, "tps": [50]}, seeds=(3,), executor=_FailingExecutor())
    assert info.value.__notes__ == ["in sweep point 0 {'duration': '40 s', 'tps': 50}, seed 3"]


def test_per_point_worst_and_mean(small: pd.DataFrame) -> None:
    worst = per_point(small)
    assert len(worst) == 4 and worst["seeds"].tolist() == [2] * 4
    assert worst["point"].tolist() == [0, 1, 2, 3]
    both = small[small["point"] == 1]
    row = worst.iloc[1]
    assert row["steady_confirmed_tps"] == both["steady_confirmed_tps"].min()
    assert row["confirmation_p95_s"] == both["confirmation_p95_s"].max()
    assert row["rejected"] == both["rejected"].max()
    assert row["offered_tps"] == both["offered_tps"].mean()
    mean = per_point(small, how="mean")
    assert mean.iloc[1]["confirmation_p95_s"] == both["confirmation_p95_s"].mean()


def test_per_point_bad_arguments(small: pd.DataFrame) -> None:
    with pytest.raises(ModelError, match="how='median' must be 'worst' or 'mean'"):
        per_point(small, how="median")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="the frame has no column 'round'"):
        per_point(small, keys=["round"])
    with pytest.raises(ModelError, match="no grid keys"):
        plain = small.copy()
        plain.attrs = {}
        per_point(plain)


@pytest.mark.parametrize(
    ("spec", "key", "values"),
    [
        ("workload.tps=20:200:60", "workload.tps", [20, 80, 140, 200]),
        ("tps=20:100:30", "tps", [20, 50, 80]),  # the end is included only when on the grid
        ("round=0.5:1.5:0.25", "round", [0.5, 0.75, 1.0, 1.25, 1.5]),
        (
            "protocol.max_txs_per_block=500,1000, 2000",
            "protocol.max_txs_per_block",
            [500, 1000, 2000],
        ),
        ("protocol.commit=1 s,2.5 s", "protocol.commit", ["1 s", "2.5 s"]),
        ("x=true,false", "x", [True, False]),
    ],
)
def test_parse_set_ranges_and_lists(spec: str, key: str, values: list[Any]) -> None:
    assert parse_set(spec) == (key, values)
    assert [type(v) for v in parse_set(spec)[1]] == [type(v) for v in values]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("workload.tps", r"workload.tps: expected PATH=a:b:step or PATH=v1,v2"),
        ("tps=", r"tps: no values after '='"),
        ("tps=10:x:5", r"tps: range bound x is not a number"),
        ("tps=10:20:0", r"tps: range step 0 must be > 0"),
        ("tps=30:20:5", r"tps: range end 20 is below its start 30"),
        ("tps=0:1000000:1", r"tps: the range has 1,000,001 values"),
        ("tps=10,,20", r"tps: empty value in '10,,20'"),
        ("tps=[1, 2]", r"tps: value '\[1' is not a scalar"),
    ],
)
def test_parse_set_errors_name_the_axis(spec: str, match: str) -> None:
    with pytest.raises(TopologyError, match=match):
        parse_set(spec)


def test_run_keys_follow_the_resolved_topology(fast: Topology) -> None:
    runs = plan_sweep(fast, {**SHORT, "tps": [100, 150]}, seeds=(1, 2))
    assert len({r.key for r in runs}) == 4
    again = plan_sweep(fast, {**SHORT, "tps": [100, 150]}, seeds=(1, 2))
    assert [r.key for r in runs] == [r.key for r in again]
    # The same resolved topology reached by another path has the same key.
    assert run_key(point_topology(fast, {"duration": 40, "workload.tps": "100 TPS"}, 1)) != ""
    assert runs[0].key == run_key(point_topology(fast, {"duration": "40 s", "tps": 100}, 1))


class _Store:
    """A run store in memory that counts what it was asked."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.saved: list[str] = []

    def load(self, key: str) -> dict[str, Any] | None:
        return self.rows.get(key)

    def save(self, key: str, figures: dict[str, Any]) -> None:
        self.rows[key] = figures
        self.saved.append(key)


def test_a_store_skips_finished_runs_and_the_table_is_the_same(
    fast: Topology, small: pd.DataFrame
) -> None:
    store = _Store()
    runs = plan_sweep(fast, GRID, seeds=(1, 2))
    for i in (0, 3, 4):  # three runs done by an earlier, interrupted attempt
        store.rows[runs[i].key] = small.iloc[i][list(FIGURES)].to_dict()
    calls: list[tuple[int, int]] = []
    frame = sweep(
        fast, GRID, seeds=(1, 2), workers=1, store=store, progress=lambda d, t: calls.append((d, t))
    )
    assert store.saved == [runs[i].key for i in (1, 2, 5, 6, 7)]
    assert calls[0] == (3, 8) and calls[-1] == (8, 8)
    assert frame.attrs["resumed"] == 3
    pd.testing.assert_frame_equal(frame, small)


def test_point_intervals_are_t_intervals_over_replications(small: pd.DataFrame) -> None:
    stats = point_intervals(small, figures=["confirmation_p95_s", "first_pool_full_s"])
    row = stats[(stats["point"] == 2) & (stats["figure"] == "confirmation_p95_s")].iloc[0]
    values = small[small["point"] == 2]["confirmation_p95_s"]
    assert row["runs"] == 2 and row["mean"] == pytest.approx(values.mean())
    half = 12.706 * values.std() / math.sqrt(2)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        (values.mean() - half, values.mean() + half)
    )
    # A figure no run reached (no pool filled) has no row for that point.
    reached = small.groupby("point")["first_pool_full_s"].apply(lambda v: int(np.isfinite(v).sum()))
    pools = stats[stats["figure"] == "first_pool_full_s"].set_index("point")["runs"]
    assert pools.to_dict() == {p: n for p, n in reached.items() if n}
    assert t95(2) == 12.706 and t95(31) == 2.042 and t95(500) == 1.96


def test_a_dask_local_cluster_gives_the_serial_table(fast: Topology, small: pd.DataFrame) -> None:
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        clustered = sweep(fast, GRID, seeds=(1, 2), executor=client.get_executor())
        assert len(client.scheduler_info()["workers"]) == 2
    serial = sweep(fast, GRID, seeds=(1, 2), workers=1)
    pd.testing.assert_frame_equal(clustered, serial)
    pd.testing.assert_frame_equal(clustered, small)


def test_rc3_saturates_at_block_size_over_round_length() -> None:
    rc3 = load_topology(TOPOLOGIES / "rc3.yaml")
    loads = [10, 20, 30, 40, 50, 60, 80, 100, 120]
    frame = sweep(
        rc3,
        {"duration": ["5 min"], "protocol.max_txs_per_block": [500, 1000], "tps": loads},
        seeds=(1, 2),
        workers=2,
    )
    mean = per_point(frame, how="mean")
    for block, rows in mean.groupby("protocol.max_txs_per_block"):
        capacity_tps = int(block) / rc3.protocol.round_s  # 33.3 and 66.7 TPS
        # Below the capacity the network confirms what is offered (a knee, not a constant) ...
        below = rows[rows["tps"] < 0.9 * capacity_tps]
        assert len(below) >= 2
        assert (below["steady_confirmed_tps"] > 0.98 * below["steady_offered_tps"]).all()
        # ... and above it the confirmed rate levels off at max_txs_per_block / round.
        saturation_tps = rows["steady_confirmed_tps"].max()
        assert abs(saturation_tps - capacity_tps) <= 0.02 * capacity_tps, (block, saturation_tps)
        above = rows[rows["tps"] > 1.2 * capacity_tps]
        assert (abs(above["steady_confirmed_tps"] - capacity_tps) <= 0.02 * capacity_tps).all()


def test_rtt_scale_multiplies_the_region_matrix(fast: Topology) -> None:
    slow = point_topology(fast, {"rtt_scale": 2.5}, seed=1)
    for a, b in (("us-east-1", "ap-southeast-1"), ("us-west-1", "us-west-2")):
        assert slow.rtt_s(a, b) == pytest.approx(2.5 * fast.rtt_s(a, b))
    with pytest.raises(TopologyError, match=r"rtt_scale: rtt_scale 0 must be a number > 0"):
        point_topology(fast, {"rtt_scale": 0}, seed=1)
