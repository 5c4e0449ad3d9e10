"""Chaos scenarios on crafted records: the ledger's classes, the expectations' figures and
verdicts (FAIL with the measured value, UNKNOWN without data), the scenario section's errors,
the shipped scenario files, and ``chaos --predict-only`` on the model alone."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bitcell_sim.cli import app
from bitcell_sim.errors import TopologyError
from bitcell_sim.results import FAIL, PASS, UNKNOWN, RunFolder, to_table
from bitcell_sim.results.chaos import judge_scenario, scenario_values, scenario_verdict
from bitcell_sim.results.chaos_report import ChaosResult, chaos_table, write_verdict
from bitcell_sim.results.ledger import EndState, Restart, ledger, tx_inclusions
from bitcell_sim.results.runs import RunRecords
from bitcell_sim.topology import Topology, load_topology, parse_topology
from bitcell_sim.topology.schema import ScenarioSpec
from bitcell_sim.topology.scope import fault_scope
from tests.conftest import TOPOLOGIES

SCENARIOS = TOPOLOGIES / "scenarios"
NETWORK = """
general: {name: crafted, duration: 60 s}
regions:
  r1: {rtt: {r1: 10 ms, r2: 100 ms}}
  r2: {rtt: {r2: 10 ms}}
nodes: {a: {region: r1}, b: {region: r1}, c: {region: r2}}
protocol: {commit: 1 s, reveal: 1 s, battle: 1 s}
workload: {tps: 1, start: 0 s, duration: 54 s}
"""
SCENARIO = (
    NETWORK
    + """
faults:
  - {kind: node_down, target: c, start: 30 s, duration: 9 s}
scenario:
  baseline: 15 s
  expect:
    recovery_max: 10 s
    progress_gap_max: 2
    block_interval_increase_max: 10 %
    confirmed_tps_min_during: 0.5
"""
)


def _topology(text: str = SCENARIO) -> Topology:
    return parse_topology(textwrap.dedent(text))


def spec(run: RunRecords, **expect: object) -> ScenarioSpec:
    """The run's scenario section, with ``expect`` fields replaced."""
    scenario = run.topology.scenario
    assert scenario is not None
    return scenario.model_copy(update={"expect": scenario.expect.model_copy(update=expect)})


def crafted_run(root: Path, *, gap_at_s: float | None = 33.0, txs: bool = True) -> RunRecords:
    """Blocks every 3 s from 3 s to 57 s, produced by a and b (c is down 30-39 s), but none at
    ``gap_at_s`` (a missed round); c gets block 13 (39 s) 1.5 s after it is back; one tx
    submitted each 2 s, confirmed 4 s later, each 10th sent to c and rejected."""
    topology = _topology()
    folder = RunFolder.create(root, "measured", topology)
    times = [3.0 * k for k in range(1, 20) if 3.0 * k != gap_at_s]
    hashes = [f"{i + 1:02x}" for i in range(len(times))]
    producers = ["a" if i % 2 else "b" for i in range(len(times))]
    folder.write_records("blocks", to_table("blocks", {
        "block_hash": hashes, "height": list(range(1, len(times) + 1)),
        "parent_hash": ["00", *hashes[:-1]], "producer": producers, "produced_s": times,
        "tx_count": [0] * len(times), "size_bytes": [365] * len(times),
        "orphaned": [False] * len(times)}))  # fmt: skip
    arrivals = []
    for h, producer, t in zip(hashes, producers, times, strict=True):
        arrivals += [(h, producer, t), (h, "b" if producer == "a" else "a", t + 0.01)]
        if not 30.0 <= t < 39.0:
            arrivals.append((h, "c", t + (1.5 if t == 39.0 else 0.05)))
        elif t >= 30.0:
            arrivals.append((h, "c", 40.5))  # synced once back
    folder.write_records("block_arrivals", to_table("block_arrivals", {
        "block_hash": [a[0] for a in arrivals], "node": [a[1] for a in arrivals],
        "arrival_s": [a[2] for a in arrivals]}))  # fmt: skip
    submits = [float(s) for s in range(1, 50, 2)] if txs else []
    nodes = ["c" if i % 10 == 9 else "a" for i in range(len(submits))]
    accepted = [n != "c" for n in nodes]
    folder.write_records("transactions", to_table("transactions", {
        "tx_id": [f"t{i}" for i in range(len(submits))], "node": nodes, "submit_s": submits,
        "rpc_latency_s": [0.002] * len(submits), "accepted": accepted,
        "reject_code": [None if ok else -32603 for ok in accepted],
        "reject_reason": [None if ok else "pool full" for ok in accepted],
        "confirm_s": [s + 4.0 if ok else None for s, ok in zip(submits, accepted, strict=True)],
        "height": [None] * len(submits), "block_hash": [None] * len(submits)}))  # fmt: skip
    folder.write_records("node_timeline", to_table("node_timeline", {
        "time_s": [0.0] * 3, "node": ["a", "b", "c"], "up": [True] * 3, "height": [0] * 3,
        "tip_hash": [""] * 3, "pool_size": [0] * 3, "peers": [2] * 3,
        "sync_progress": [100.0] * 3}))  # fmt: skip
    folder.write_json("meta.json", {"kind": "canned"})
    return RunRecords.read(folder.path)


# ---- the ledger ------------------------------------------------------------------------------


def _txs(rows: list[tuple[str, str, float, bool, str | None, float | None]]):
    return to_table("transactions", {
        "tx_id": [r[0] for r in rows], "node": [r[1] for r in rows],
        "submit_s": [r[2] for r in rows], "rpc_latency_s": [0.001] * len(rows),
        "accepted": [r[3] for r in rows], "reject_code": [None] * len(rows),
        "reject_reason": [r[4] for r in rows], "confirm_s": [r[5] for r in rows],
        "height": [None] * len(rows), "block_hash": [None] * len(rows)})  # fmt: skip


def _end(final: dict[str, int], orphaned=(), pooled=()) -> EndState:
    return EndState(final_counts=final, orphaned=frozenset(orphaned), pooled=frozenset(pooled),
                    tips={"a": "01", "b": "01"}, running={"a": True, "b": True})  # fmt: skip


def test_ledger_puts_every_submission_in_one_class() -> None:
    txs = _txs([
        ("ok1", "a", 1.0, True, None, 4.0),        # confirmed
        ("reorg", "a", 2.0, True, None, 9.0),      # confirmed after a reorg
        ("pool", "a", 3.0, True, None, None),      # still pending
        ("gone", "a", 4.0, True, None, None),      # lost
        ("crash", "b", 5.0, True, None, None),     # lost, b was killed after it
        ("twice", "a", 6.0, True, None, 9.0),      # duplicated
        ("full", "a", 7.0, False, "pool full", None),
        ("late", "a", 8.0, False, "timeout", None),  # info that landed
        ("never", "a", 9.0, False, "unreachable", None),
        ("odd", "a", 10.0, False, "Invalid nonce", None),  # a definite fail that landed
    ])  # fmt: skip
    end = _end({"ok1": 1, "reorg": 1, "twice": 2, "late": 1, "odd": 1, "ghost": 1},
               orphaned={"reorg"}, pooled={"pool"})  # fmt: skip
    result = ledger(txs, end, {"b": [(20.0, 30.0)]})
    expected = {
        "confirmed": ["ok1"], "confirmed_after_reorg": ["reorg"], "pending": ["pool"],
        "lost": ["gone"], "lost_by_crash": ["crash"], "duplicated": ["twice"],
        "rejected": ["full"], "recovered": ["late"], "indeterminate": ["never"],
        "rejected_but_confirmed": ["odd"], "unexpected": ["ghost"],
    }  # fmt: skip
    assert {c: list(ids) for c, ids in result.ids.items()} == expected
    assert sum(result.counts.values()) == 11  # ten submissions and one never submitted
    assert result.operations == {"ok": 6, "fail": 2, "info": 2}
    assert result.rejected_by_reason == {"pool full": 1}
    assert result.anomalies() == {"lost": 1, "duplicated": 1, "rejected_but_confirmed": 1,
                                  "unexpected": 1}  # fmt: skip


def test_one_lost_and_one_duplicated_tx_fail_the_scenario_naming_both(tmp_path: Path) -> None:
    run = crafted_run(tmp_path)
    txs = run.tables["transactions"]
    ids = txs.column("tx_id").to_pylist()
    accepted = txs.column("accepted").to_pylist()
    final = {t: 1 for t, ok in zip(ids, accepted, strict=True) if ok}
    final["t3"] = 2  # duplicated
    del final["t5"]  # lost: in no block and no pool
    book = ledger(txs, _end(final))
    verdicts = {v.name: v for v in judge_scenario(spec(run), run, [], book,
                                                  _end(final))}  # fmt: skip
    assert verdicts["ledger.lost"].verdict == FAIL and "t5" in verdicts["ledger.lost"].message
    assert verdicts["ledger.duplicated"].verdict == FAIL
    assert "t3" in verdicts["ledger.duplicated"].message
    assert verdicts["ledger.unexpected"].verdict == PASS


def test_a_lost_tx_the_scenario_allows_passes(tmp_path: Path) -> None:
    run = crafted_run(tmp_path)
    scenario = spec(run, lost_max=1)
    txs = run.tables["transactions"]
    final = {t: 1 for t in txs.column("tx_id").to_pylist()[1:]}
    end = _end(final)
    verdicts = {v.name: v.verdict for v in judge_scenario(scenario, run, [], ledger(txs, end), end)}
    assert verdicts["ledger.lost"] == PASS


def test_tx_inclusions_count_final_blocks_and_orphans() -> None:
    counts, orphaned = tx_inclusions([(True, ["x", "y"]), (False, ["y", "z"]), (True, ["x"])])
    assert counts == {"x": 2, "y": 1} and orphaned == {"y", "z"}


def test_end_state_round_trips_through_json() -> None:
    end = EndState({"x": 1}, frozenset({"y"}), frozenset(), {"a": "01", "b": None},
                   {"a": True, "b": False},
                   (Restart("b", 4, "04", "05", pre_kill_tip_orphaned=False),))  # fmt: skip
    assert EndState.from_json(json.loads(json.dumps(end.to_json()))) == end
    assert not end.restarts[0].chain_kept


# ---- expectations ----------------------------------------------------------------------------


def test_scenario_values_follow_from_the_crafted_records(tmp_path: Path) -> None:
    values = scenario_values(crafted_run(tmp_path))
    # Last block before the fault at 30 s, none at 33 s: 36 - 30 = 6 s = 2 rounds of 3 s.
    assert values["progress_gap_max"] == pytest.approx(2.0)
    # c gets 39 s's block at 40.5 s, 1.5 s after the fault's end at 39 s.
    assert values["recovery_max"] == pytest.approx(1.5)
    # Baseline 15-30 s: blocks every 3 s; during 30-39 s: 30, 36, 39 -> mean gap 4.5 s.
    assert values["block_interval_increase_max"] == pytest.approx(0.5)
    # Confirmations at submit + 4 s, one each 2 s: 30-39 s holds 5 (31, 33, 35, 37, 39 s).
    assert values["confirmed_tps_min_during"] == pytest.approx(5 / 9)
    assert values["rejection_rate_max"] == pytest.approx(2 / 25)


def test_an_impossible_expectation_fails_with_the_measured_value(tmp_path: Path) -> None:
    run = crafted_run(tmp_path)
    scenario = spec(run, recovery_max_s=0.01)
    verdicts = {v.name: v for v in judge_scenario(scenario, run, [run])}
    recovery = verdicts["recovery_max"]
    assert recovery.verdict == FAIL
    assert recovery.measured == pytest.approx(1.5) and recovery.predicted == pytest.approx(1.5)
    assert "1.5 s" in recovery.message and "0.01 s" in recovery.message
    assert verdicts["block_interval_increase_max"].verdict == FAIL  # +50 % > 10 %
    assert verdicts["progress_gap_max"].verdict == PASS
    assert scenario_verdict(list(verdicts.values())) == FAIL


def test_an_empty_measurement_is_unknown_never_pass(tmp_path: Path) -> None:
    run = crafted_run(tmp_path, txs=False)
    empty = RunRecords(run.name, run.topology, {**run.tables, **{
        name: run.tables[name].schema.empty_table() for name in ("blocks", "block_arrivals")
    }}, run.meta, run.path)  # fmt: skip
    verdicts = judge_scenario(spec(run), empty, [], None, None)
    by_name = {v.name: v.verdict for v in verdicts}
    assert by_name["recovery_max"] == UNKNOWN
    assert by_name["progress_gap_max"] == UNKNOWN
    assert by_name["confirmed_tps_min_during"] == UNKNOWN
    assert by_name["ledger.lost"] == UNKNOWN and by_name["one_tip_at_end"] == UNKNOWN
    assert PASS not in by_name.values()
    assert scenario_verdict(verdicts) == UNKNOWN
    assert scenario_verdict([]) == UNKNOWN


def test_end_checks_catch_a_split_tip_a_dead_node_and_a_lost_chain(tmp_path: Path) -> None:
    run = crafted_run(tmp_path)
    end = EndState({}, frozenset(), frozenset(), {"a": "01", "b": "02", "c": None},
                   {"a": True, "b": True, "c": False},
                   (Restart("b", 3, "03", "13", pre_kill_tip_orphaned=False),))  # fmt: skip
    predicted_only = {v.name for v in judge_scenario(spec(run), None, [run])}
    assert "one_tip_at_end" not in predicted_only  # only a devnet has an end state
    checks = {v.name: v for v in judge_scenario(spec(run), run, [], None, end)}
    assert checks["one_tip_at_end"].verdict == FAIL
    assert checks["no_unexpected_death"].verdict == FAIL
    assert "['c']" in checks["no_unexpected_death"].message
    assert checks["chain_survived_restart"].verdict == FAIL
    kept = EndState({}, frozenset(), frozenset(), {"a": "01"}, {"a": True},
                    (Restart("a", 3, "03", "13", pre_kill_tip_orphaned=True),))  # fmt: skip
    checks = {v.name: v for v in judge_scenario(spec(run), run, [], None, kept)}
    assert checks["one_tip_at_end"].verdict == PASS
    assert checks["chain_survived_restart"].verdict == PASS  # the network orphaned that tip


def test_verdict_files_and_the_docs_table(tmp_path: Path) -> None:
    run = crafted_run(tmp_path)
    verdicts = judge_scenario(spec(run), run, [run])
    result = ChaosResult("crafted", tuple(verdicts), None, {"confirmed": 24.0})
    json_path, md_path, html_path = write_verdict(result, tmp_path / "v")
    data = json.loads(json_path.read_text())
    assert data["verdict"] == result.verdict == FAIL  # no end state: UNKNOWN rows, one FAIL
    assert "| recovery_max | 1.500 s | 1.500 s | ≤ 10.000 s | PASS |" in md_path.read_text()
    assert 'id="expectations"' in html_path.read_text()
    table = chaos_table([tmp_path / "v"])
    assert "| **crafted** | overall | | | | **FAIL** |" in table


# ---- the scenario section --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "path", "words"),
    [
        ("scenario: {baseline: 40 s}", "scenario.baseline", "do not fit"),
        ("scenario: {expect: {recovery: 1 s}}", "scenario.expect.recovery", "unknown key"),
        ("scenario: {expect: {recovery_max: soon}}", "scenario.expect.recovery_max", "soon"),
        ("scenario: {expect: {lost_max: -1}}", "scenario.expect.lost_max", "greater than"),
    ],
)
def test_bad_scenario_sections_name_their_field(extra: str, path: str, words: str) -> None:
    text = NETWORK + "faults:\n  - {kind: node_down, target: c, start: 30 s, duration: 9 s}\n"
    with pytest.raises(TopologyError) as caught:
        _topology(text + extra)
    assert any(p.split(" (")[0] == path and words in m for p, m in caught.value.problems), (
        caught.value.problems
    )


def test_a_scenario_needs_faults_and_a_bridge_must_be_known() -> None:
    with pytest.raises(
        TopologyError, match=r"scenario \(line \d+\): a chaos scenario needs at least one fault"
    ):
        _topology(NETWORK + "scenario: {}")
    bad = NETWORK + ("faults:\n  - {kind: partition, groups: [[a]], bridges: [zz], "
                     "start: 30 s, duration: 9 s}\n")  # fmt: skip
    with pytest.raises(TopologyError, match=r"faults\[0\]\.bridges\[0\].*: unknown node 'zz'"):
        _topology(bad)


def test_a_bridge_keeps_its_links_to_both_sides() -> None:
    topology = _topology(NETWORK + "faults:\n  - {kind: partition, groups: [[a]], bridges: [b], "
                         "start: 30 s, duration: 9 s}\n")  # fmt: skip
    scope = fault_scope(topology, topology.faults[0])
    assert scope.sides == (frozenset({"a"}), frozenset({"c"}))
    assert set(scope.links) == {("a", "c"), ("c", "a")}


def test_every_shipped_scenario_loads_with_a_fast_variant() -> None:
    names = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))
    full = [n for n in names if not n.endswith("-fast")]
    assert len(full) >= 9
    for name in full:
        assert f"{name}-fast" in names
        for variant in (name, f"{name}-fast"):
            topology = load_topology(SCENARIOS / f"{variant}.yaml")
            assert topology.scenario is not None and topology.faults, variant


def test_predict_only_judges_the_model_and_writes_the_verdict(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "chaos", str(SCENARIOS / "node_failure-fast.yaml"), "--predict-only", "--seeds", "1",
        "--results-dir", str(tmp_path), "--run-id", "p"])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "p/chaos/node_failure-fast/verdict.json").read_text())
    assert data["predict_only"] and data["verdict"] == PASS
    assert {e["name"] for e in data["expectations"]} == {"recovery_max", "reconvergence_max"}
    assert all(e["measured"] is None and e["predicted"] is not None for e in data["expectations"])


def test_chaos_arguments_are_checked(tmp_path: Path) -> None:
    runner = CliRunner()
    both = runner.invoke(app, ["chaos", str(SCENARIOS / "node_failure-fast.yaml"), "--all"])
    assert both.exit_code == 2 and "not both" in both.output
    plain = tmp_path / "plain.yaml"
    plain.write_text((TOPOLOGIES / "rc3-fast.yaml").read_text())
    none = runner.invoke(app, ["chaos", str(plain), "--predict-only"])
    assert none.exit_code == 1


def test_the_verdict_lists_the_pages_the_webhook_got_beside_the_prediction(
    tmp_path: Path,
) -> None:
    from bitcell_sim.cli.chaos import alert_rows

    run = crafted_run(tmp_path)
    assert alert_rows(run) == ()  # no monitoring: no alert rows
    assert run.path is not None
    (run.path / "meta.json").write_text(json.dumps({"genesis_time_unix_s": 1000.0}))

    def note(t: float, status: str) -> str:
        alert = {"status": status, "labels": {"alertname": "NodeDown", "node": "c"}}
        payload = {"receiver": "oncall", "status": status, "groupKey": "g", "alerts": [alert]}
        return json.dumps({"received_unix_s": 1000.0 + t, "payload": payload})

    (run.path / "alerts.jsonl").write_text(note(35.0, "firing") + "\n" + note(41.0, "resolved"))
    rows = alert_rows(RunRecords.read(run.path))
    assert [(r["alert"], r["labels"], r["paged_s"], r["resolved_s"]) for r in rows] == [
        ("NodeDown", {"node": "c"}, 35.0, 41.0)
    ]
    # c was never sampled down in the timeline: the prediction has no NodeDown page.
    assert rows[0]["predicted"] is None
    result = ChaosResult("crafted", (), None, {}, alerts=rows)
    assert (
        "| NodeDown | node=c | — | 35.0 s | 41.0 s |"
        in write_verdict(result, tmp_path / "v")[1].read_text()
    )
