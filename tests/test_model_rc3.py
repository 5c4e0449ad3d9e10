"""The rc3 network: throughput, pool filling, node failover and partition healing.

Each scenario runs 6 simulated minutes (well under a second of wall time).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bitcell_sim.model import ModelResult, Simulation, simulate
from bitcell_sim.model.chain import chain_of
from bitcell_sim.results.summary import summarize
from tests.model_topologies import variant

ROUND_S = 15.0
DURATION_S = 360.0


def rc3(tps: float, faults: list[dict[str, object]] | None = None, **general: object):
    return variant(
        "rc3",
        general={"duration": "6 min", **general},
        workload={"tps": tps, "duration": "6 min"},
        faults=faults or [],
    )


@pytest.fixture(scope="module")
def light() -> ModelResult:
    return simulate(rc3(30))


@pytest.fixture(scope="module")
def heavy() -> ModelResult:
    return simulate(rc3(100))


def test_light_load_confirms_everything_but_the_last_rounds(light: ModelResult) -> None:
    txs = light.tables["transactions"].to_pandas()
    assert txs["accepted"].all()
    assert txs["reject_reason"].isna().all()
    # The last block is built at 345 s (a round ending at 360 s is past the run).
    early = txs[txs["submit_s"] < DURATION_S - 2 * ROUND_S]
    assert early["confirm_s"].notna().all()
    unconfirmed = txs[txs["confirm_s"].isna()]
    assert unconfirmed["submit_s"].min() > DURATION_S - 2 * ROUND_S


def test_light_load_latency_is_half_a_round_plus_propagation(light: ModelResult) -> None:
    """Fixed-interval batch service: a tx waits for the next block, uniformly 0..15 s, then
    the block travels to the node the tx was sent to. Median = round/2 + median propagation
    (the producer itself counts with 0)."""
    txs = light.tables["transactions"].to_pandas().dropna(subset=["confirm_s"])
    blocks = light.tables["blocks"].to_pandas().set_index("block_hash")
    arrivals = light.tables["block_arrivals"].to_pandas()
    delays = arrivals["arrival_s"] - blocks.loc[arrivals["block_hash"], "produced_s"].to_numpy()
    expected = ROUND_S / 2 + float(np.median(delays))
    measured = float((txs["confirm_s"] - txs["submit_s"]).median())
    assert measured == pytest.approx(expected, rel=0.03)
    assert light.tables["blocks"].to_pandas()["orphaned"].sum() == 0


def test_light_load_block_every_round(light: ModelResult) -> None:
    summary = summarize(rc3(30), light.tables)
    assert summary["blocks"]["interval_s"]["p50"] == ROUND_S
    assert summary["blocks"]["forks"] == 0
    assert summary["block_propagation_s"]["max"] < 0.3


def test_heavy_load_caps_at_capacity_and_fills_the_pool(heavy: ModelResult) -> None:
    topology = rc3(100)
    summary = summarize(topology, heavy.tables)
    capacity_tps = 1000 / ROUND_S
    assert summary["throughput"]["capacity_tps"] == pytest.approx(capacity_tps)
    assert summary["throughput"]["steady_state_confirmed_tps"] == pytest.approx(
        capacity_tps, rel=0.05
    )
    assert summary["transactions"]["rejected_by_reason"]["pool full"] > 0
    # Fluid estimate: the pool grows at 100 - 66.7 TPS, so 10,000 fill in 300 s.
    assert summary["pool"]["fill_estimate_s"] == pytest.approx(10_000 / (100 - capacity_tps))
    # Blocks take 1000 every 15 s, so the pool holds 100 t - 1000 floor(t / 15): just before
    # the k-th block (t = 15 k) that is 500 k + 1000, which first reaches 10,000 just before
    # t = 270 s. Poisson load a little short of that fills it after the 18th block, at
    # 100 t - 18,000 = 10,000, t = 280 s. Either way, 20-30 s before the fluid estimate.
    first = summary["pool"]["first_rejection_after_load_start_s"]
    assert 265.0 <= first <= 285.0
    assert first < summary["pool"]["fill_estimate_s"]
    assert summary["pool"]["peak"] == 10_000


def test_node_down_recovers_to_the_tip() -> None:
    faults = [{"kind": "node_down", "target": "eu-central-2", "start": "60 s", "duration": "10 s"}]
    topology = rc3(30, faults)
    result = simulate(topology)
    summary = summarize(topology, result.tables)
    (fault,) = summary["faults"]
    assert fault["recovery_s"] is not None and 0 <= fault["recovery_s"] < 2.0
    assert fault["reconvergence_s"] is not None and fault["reconvergence_s"] < 2.0
    timeline = result.tables["node_timeline"].to_pandas()
    mine = timeline[timeline["node"] == "eu-central-2"].set_index("time_s")
    # Down from the fault's start until its end plus the process start-up (the samples are 1 s
    # apart, so the node is seen up from the first whole second after that).
    back_s = 70.0 + topology.protocol.processing.startup_s
    assert not mine.loc[60.0:back_s, "up"].any() and mine.loc[math.ceil(back_s) :, "up"].all()
    assert (mine.loc[60.0:back_s, "pool_size"] == 0).all()
    txs = result.tables["transactions"].to_pandas()
    down = txs[(txs["node"] == "eu-central-2") & txs["submit_s"].between(60, 69.99)]
    assert len(down) > 0 and (down["reject_reason"] == "unreachable").all()
    last = timeline[timeline["time_s"] == DURATION_S]
    assert last["tip_hash"].nunique() == 1
    assert (
        next(e for e in summary["expectations"] if e["name"] == "node_recovery_max")["status"]
        == "PASS"
    )


def test_partition_forks_then_heals_without_losing_txs() -> None:
    faults = [
        {
            "kind": "partition",
            "groups": [["us-east", "us-west"]],
            "start": "120 s",
            "duration": "60 s",
        }
    ]
    topology = rc3(30, faults)
    sim = Simulation(topology)
    result = sim.run()
    summary = summarize(topology, result.tables)
    assert summary["blocks"]["forks"] >= 1 and summary["blocks"]["orphaned"] >= 1
    (fault,) = summary["faults"]
    assert fault["reconvergence_s"] is not None and fault["reconvergence_s"] < ROUND_S
    assert len({b.hash for b in sim.tip}) == 1
    # Nothing accepted is lost: in the final chain exactly once, or still in some pool.
    final = np.concatenate([b.txs for b in chain_of(sim.final_tip())[1:]])
    assert len(final) == len(np.unique(final))
    in_chain = np.zeros(len(sim.arrivals), dtype=bool)
    in_chain[final] = True
    in_pool = sim.txs.in_pool.any(axis=0)
    accepted = result.tables["transactions"].column("accepted").to_numpy()
    assert np.all(in_chain[accepted] | in_pool[accepted])
    assert not np.any(in_chain & in_pool)
    assert sim.counters["reorgs"] >= 1


def test_late_reveals_make_forks() -> None:
    """6 s of added latency on one validator: its commitments reach nobody in time and it
    hears nobody's, so it believes it wins every round while the others pick another."""
    faults = [
        {
            "kind": "added_latency",
            "target": "us-east-1",
            "start": "30 s",
            "duration": "90 s",
            "latency": "6 s",
        }
    ]
    topology = rc3(10, faults)
    summary = summarize(topology, simulate(topology).tables)
    assert summary["blocks"]["forks"] >= 3
    assert summary["faults"][0]["reconvergence_s"] is not None


def test_region_down_and_cpu_throttle() -> None:
    faults = [
        {"kind": "region_down", "target": "us-west", "start": "30 s", "duration": "45 s"},
        {
            "kind": "cpu_throttle",
            "target": "eu-central-1",
            "start": "100 s",
            "duration": "60 s",
            "share": 0.01,
        },
    ]
    topology = rc3(30, faults)
    result = simulate(topology)
    summary = summarize(topology, result.tables)
    region, throttle = summary["faults"]
    assert set(region["nodes"]) == {"us-west-1", "us-west-2"}
    assert region["recovery_s"] is not None and region["recovery_s"] < 5
    # Importing a block on 1 % of a CPU takes 100 times the topology's import cost.
    processing = topology.protocol.processing
    blocks = result.tables["blocks"].to_pandas().set_index("block_hash")
    arrivals = result.tables["block_arrivals"].to_pandas()
    slow = arrivals[arrivals["node"] == "eu-central-1"].join(blocks, on="block_hash")
    slow = slow[slow["produced_s"].between(105, 150) & (slow["producer"] != "eu-central-1")]
    delay = slow["arrival_s"] - slow["produced_s"]
    expected = (
        processing.block_import_s + slow["tx_count"] * processing.block_import_per_tx_s
    ) / 0.01
    assert len(slow) >= 2 and (delay >= expected).all() and (delay < expected + 1.0).all()
    assert math.isfinite(throttle["reconvergence_s"])


def test_a_validator_far_behind_stays_out_of_the_rounds() -> None:
    """0.5 % of a CPU cannot validate 100 TPS (20 ms each): the node's backlog grows without
    bound and it falls behind. Like the devnet node, a validator more than 2 blocks behind
    makes no commitment, so the winner is always a node at the tip and the chain goes on."""
    faults = [
        {
            "kind": "cpu_throttle",
            "target": "us-east-1",
            "start": "5 s",
            "duration": "6 min",
            "share": 0.005,
        }
    ]
    topology = rc3(100, faults)
    result = simulate(topology)
    blocks = result.tables["blocks"].to_pandas()
    assert blocks["orphaned"].sum() <= 2
    assert blocks["height"].max() >= DURATION_S / ROUND_S - 2
    timeline = result.tables["node_timeline"].to_pandas()
    lagging = timeline[(timeline["node"] == "us-east-1") & (timeline["time_s"] == DURATION_S)]
    assert lagging["sync_progress"].item() < 50


def test_fanout_limits_tx_gossip_only() -> None:
    topology = variant(
        "rc3",
        general={"duration": "2 min"},
        workload={"tps": 20, "duration": "2 min"},
        protocol={"gossip": {"fanout": 1, "tx_batch_interval": "50 ms"}},
    )
    sim = Simulation(topology)
    result = sim.run()
    arrivals = result.tables["block_arrivals"].to_pandas()
    assert (arrivals.groupby("block_hash")["node"].nunique() == 7).all()  # blocks: all peers
    # A tx reaches its first peer straight away; the rest is luck, so some never get around.
    accepted = result.tables["transactions"].column("accepted").to_numpy()
    heard_by = (sim.txs.in_pool | sim.txs.in_chain).sum(axis=0)[accepted]
    assert heard_by.min() >= 1 and (heard_by < 7).any()
