"""The load plan (from a topology or a host) and the summary math over raw records."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bitcell_sim.errors import LoadError, ResultsError
from bitcell_sim.load import (
    LoadPlan,
    TxRecord,
    distribution,
    format_summary,
    parse_seconds,
    plan_from_host,
    plan_from_options,
    plan_from_topology,
    prepare_run_dir,
    read_outputs,
    summarize,
    users_for_rate,
    write_outputs,
)
from bitcell_sim.load.txlog import columns_of
from bitcell_sim.topology import (
    RateProfile,
    RateStage,
    apply_overrides,
    arrival_schedule,
    parse_topology,
)


def test_importing_load_does_not_import_locust_or_gevent() -> None:
    code = (
        "import sys, bitcell_sim.load, bitcell_sim.cli; "
        "print(sorted(m for m in ('locust', 'gevent') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_plan_from_rc3(rc3_path: Path) -> None:
    topology = parse_topology(rc3_path.read_text())
    plan = plan_from_topology(topology)
    assert len(plan.endpoints) == 7 and plan.endpoints[0].url == "http://127.0.0.1:8545"
    assert (plan.round_s, plan.stall_window_s, plan.drain_s) == (15.0, 60.0, 45.0)
    assert plan.poll_interval_s == 0.75 and plan.watch_node == "all"
    assert plan.watched == plan.endpoints
    assert plan_from_topology(topology, watch_node="us-west-2").watched[0].node == "us-west-2"
    assert plan.profile.mean_tps == 100 and plan.duration_s == 600
    assert plan.endpoint_for("us-west-2").url == "http://127.0.0.1:8548"
    assert LoadPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    # The plan's schedule is the model's.
    mine, model = plan.workload.draw(), arrival_schedule(topology)
    assert mine.submit_s.tolist() == model.submit_s.tolist()
    assert mine.node_names().tolist() == model.node_names().tolist()
    assert mine.gas_price.tolist() == model.gas_price.tolist()
    short_topology, _ = apply_overrides(topology, tps=20, load_duration_s=30)
    short = plan_from_topology(short_topology, senders="fresh", users=9)
    assert (short.profile.total_count, short.users) == (600, 9)
    assert short.users_at(0.0) == 9


def test_plan_errors_name_the_value(rc3_path: Path) -> None:
    topology = parse_topology(rc3_path.read_text())
    with pytest.raises(LoadError, match=r"genesis\.funded_accounts is 0"):
        plan_from_topology(topology, senders="funded")
    with pytest.raises(LoadError, match="watch node 'nowhere' is not in the topology"):
        plan_from_topology(topology, watch_node="nowhere")
    with pytest.raises(LoadError, match="host 'ftp://x' must be an http"):
        plan_from_host("ftp://x")
    with pytest.raises(LoadError, match="duration 'soon' is not valid"):
        parse_seconds("soon")


def test_plan_from_host() -> None:
    plan = plan_from_host("http://127.0.0.1:8545/", round_s=3)
    assert plan.endpoints[0].node == "127.0.0.1:8545" and plan.watch_node == "127.0.0.1:8545"
    assert plan.endpoints[0].url == "http://127.0.0.1:8545"
    assert (plan.profile.mean_tps, plan.duration_s) == (100.0, 60.0)
    assert (plan.stall_window_s, plan.drain_s, plan.poll_interval_s) == (12.0, 10.0, 0.15)
    assert parse_seconds("2 min") == 120 and parse_seconds("90") == 90


def test_plan_start_keeps_the_schedule_on_the_round_grid(rc3_path: Path) -> None:
    fast, _ = apply_overrides(parse_topology(rc3_path.read_text()), tps=10)
    plan = plan_from_topology(fast, genesis_unix_s=1000.0)  # rounds of 15 s, load from 0 s
    assert plan.start_unix_s(999.0) == 1000.0  # genesis still ahead: the scheduled times
    assert plan.start_unix_s(1000.0) == 1000.0
    assert plan.start_unix_s(1031.0) == 1045.0  # whole rounds later
    assert plan_from_host("http://127.0.0.1:1").start_unix_s(1031.0) == 1031.0


def test_users_for_rate() -> None:
    assert users_for_rate(100, nodes=4) == 50 + 8
    assert users_for_rate(100, nodes=4, processes=2) == 50 + 16
    assert users_for_rate(0, nodes=1) == 2


def records_for_test() -> list[TxRecord]:
    """Ten seconds at 10 TPS from run start 100 s: two pool-full, one unconfirmed."""
    out = []
    for i in range(100):
        submit = 100.0 + i * 0.1
        if i in (5, 6):
            out.append(TxRecord(f"{i:02x}", "n", submit, 0.01, False, -32603, "pool full"))
        elif i == 99:
            out.append(TxRecord(f"{i:02x}", "n", submit, 0.01, True))
        else:
            out.append(
                TxRecord(
                    f"{i:02x}", "n", submit, 0.01, True, None, None, submit + 1 + i / 100, 3, "bb"
                )
            )
    out.append(TxRecord("ff", "n", 99.0, None, False, None, "unreachable"))  # before the start
    return out  # fmt: skip


def test_summary_matches_the_records() -> None:
    records = records_for_test()
    profile = RateProfile.constant(10, 10)
    statuses = [{"not_submitted": {"no idle funded sender": 2}, "end_reason": "drain timeout"}]
    summary = summarize(columns_of(records), profile, 100.0, statuses, [0.0, 0.02, 0.001])
    assert summary["submitted"] == 101 and summary["achieved_tps"] == 10.0
    assert summary["hold"]["error_pct"] == 0.0
    assert (summary["accepted"], summary["rejected"]) == (98, 3)
    assert summary["rejected_by_reason"] == {"pool full": 2, "unreachable": 1}
    assert (summary["confirmed"], summary["unconfirmed"]) == (97, 1)
    latencies = [1 + i / 100 for i in range(99) if i not in (5, 6)]
    expected = {q: float(np.percentile(latencies, q)) for q in (50, 95, 99)}
    got = summary["confirmation_latency_s"]
    assert got["p50"] == pytest.approx(expected[50]) and got["p99"] == pytest.approx(expected[99])
    assert got["p95"] == pytest.approx(expected[95])
    # Confirmed inside the 10 s load window: submits at 100+0.1i confirm at 101+0.11i < 110.
    assert summary["confirmed_tps"] == pytest.approx(
        sum(1 + 0.11 * i < 10 for i in range(99) if i not in (5, 6)) / 10
    )
    assert summary["late_submissions"] == 1 and summary["not_submitted"] == {
        "no idle funded sender": 2
    }
    text = format_summary(summary)
    assert "rejected 3 (pool full: 2, unreachable: 1)" in text
    assert "not submitted: no idle funded sender: 2" in text  # fmt: skip


def test_summary_per_stage_and_empty() -> None:
    profile = RateProfile((RateStage(0, 10, 0, 20), RateStage(10, 20, 20, 20)))
    summary = summarize(columns_of([]), profile, 0.0)
    assert summary["submitted"] == 0 and summary["hold"]["target_tps"] == 20
    assert summary["stages"][0]["target_txs"] == 100 and summary["stages"][1]["target_txs"] == 200
    assert summary["confirmation_latency_s"] == distribution([])
    assert summary["confirmed_fraction"] is None
    assert "achieved 0.00 TPS" in format_summary(summary)


def test_outputs_round_trip(tmp_path: Path, rc3_path: Path) -> None:
    topology = parse_topology(rc3_path.read_text())
    run_dir = tmp_path / "run-1"
    prepare_run_dir(run_dir, topology)
    assert (run_dir / "topology.yaml").exists() and (run_dir / "load").is_dir()
    records = records_for_test()
    summary = summarize(columns_of(records), RateProfile.constant(10, 10), 100.0)
    write_outputs(run_dir, records, summary, {"mode": "local"})
    table, again, meta = read_outputs(run_dir)
    assert table.num_rows == 101 and again == json.loads(json.dumps(summary))
    assert table.column("submit_s").to_pylist() == sorted(r.submit_s for r in records)
    assert meta["mode"] == "local" and "python" in meta["software"]
    with pytest.raises(LoadError, match="already holds the records of a load run"):
        prepare_run_dir(run_dir, topology)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(ResultsError, match=r"is not a run folder .* notes\.txt"):
        prepare_run_dir(tmp_path / "other", None)


def locust_options(**given: object) -> argparse.Namespace:
    """The locustfile's options as Locust parses them (None: not given)."""
    names = (
        "topology", "tps", "duration", "senders", "arrival", "load_users", "poll_interval",
        "drain", "genesis_unix", "network", "round", "watch_node", "seed",
    )  # fmt: skip
    values: dict[str, object] = {n: None for n in names}
    return argparse.Namespace(**{**values, "stall_rounds": 4.0, **given})


def test_locust_options_override_the_topology_as_the_run_command_does(rc3_fast_path: Path) -> None:
    plan, topology = plan_from_options(
        locust_options(topology=str(rc3_fast_path), tps="40", duration="30", seed=5), None
    )
    assert topology is not None and topology.general.seed == 5
    assert topology.workload_stages() == ((10.0, 40.0, 40.0, 40.0),)  # workload.start kept
    assert plan.origin_s == 10.0 and plan.duration_s == 30.0
    model = arrival_schedule(topology)
    assert plan.workload.draw().submit_s.tolist() == model.submit_s.tolist()
    # -t shortens a longer workload when --duration is not given; a host run lasts -t.
    _, cut = plan_from_options(locust_options(topology=str(rc3_fast_path)), None, run_time_s=20)
    assert cut is not None and cut.workload_stages() == ((10.0, 30.0, 100.0, 100.0),)
    host, _ = plan_from_options(locust_options(tps="50 TPS"), "http://127.0.0.1:9", 12)
    assert (host.duration_s, host.profile.mean_tps, host.is_host) == (12.0, 50.0, True)
    with pytest.raises(LoadError, match="give --topology FILE or --host URL"):
        plan_from_options(locust_options(), None)
    with pytest.raises(LoadError, match="--tps 'fast' is not a rate"):
        plan_from_options(locust_options(tps="fast"), "http://127.0.0.1:9")
