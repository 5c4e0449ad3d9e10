"""compare on canned records: exact known errors, tolerances, three-valued verdicts, reports."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bitcell_sim.cli import app
from bitcell_sim.errors import ResultsError, TopologyError
from bitcell_sim.results import RunFolder, to_table
from bitcell_sim.results.compare import (
    FAIL,
    PASS,
    UNKNOWN,
    SideStats,
    compare,
    judge,
    overall_verdict,
)
from bitcell_sim.results.report import write_report
from bitcell_sim.results.runs import read_runs
from bitcell_sim.topology import parse_topology
from bitcell_sim.topology.schema import ToleranceSpec

TOPOLOGY = textwrap.dedent(
    """
    general: {name: canned, duration: 90 s}
    regions:
      r1: {rtt: {r1: 10 ms, r2: 100 ms}}
      r2: {rtt: {r2: 10 ms}}
    nodes: {a: {region: r1}, b: {region: r1}, c: {region: r2}}
    protocol: {commit: 5 s, reveal: 5 s, battle: 5 s}
    workload: {tps: 1, start: 0 s, duration: 45 s}
    faults:
      - {kind: node_down, target: c, start: 58 s, duration: 6 s}
    """
)
PRODUCERS = ["a", "b", "a", "b", "a"]  # blocks 1-5 at 15, 30, 45, 60, 75 s


def write_run(
    root: Path,
    name: str,
    *,
    local_s: float,
    remote_s: float,
    confirm_s: float,
    rpc_s: float,
    resync_s: float,
    validation: str = "",
    topology_text: str = TOPOLOGY,
) -> Path:
    """A run folder with hand-made records; every figure follows from the arguments.

    Blocks reach the producer's region-mate after ``local_s`` and c (the other region) after
    ``remote_s``; c is down 58-64 s and gets block 4 (produced at 60 s) ``resync_s`` after it
    is back. Four txs confirm ``confirm_s`` after submission; each RPC takes ``rpc_s``.
    """
    topology = parse_topology(topology_text + validation)
    folder = RunFolder.create(root, name, topology)
    hashes = [f"{h:02x}" for h in range(1, 6)]
    folder.write_records(
        "blocks",
        to_table(
            "blocks",
            {
                "block_hash": hashes,
                "height": [1, 2, 3, 4, 5],
                "parent_hash": ["00", *hashes[:-1]],
                "producer": PRODUCERS,
                "produced_s": [15.0, 30.0, 45.0, 60.0, 75.0],
                "tx_count": [2, 2, 0, 0, 0],
                "size_bytes": [753, 753, 365, 365, 365],
                "orphaned": [False] * 5,
            },
        ),
    )
    arrivals: list[tuple[str, str, float]] = []
    for h, producer, produced in zip(
        hashes, PRODUCERS, [15.0, 30.0, 45.0, 60.0, 75.0], strict=True
    ):
        mate = "b" if producer == "a" else "a"
        arrivals += [(h, producer, produced), (h, mate, produced + local_s)]
        arrivals.append((h, "c", 64.0 + resync_s if h == "04" else produced + remote_s))
    folder.write_records(
        "block_arrivals",
        to_table(
            "block_arrivals",
            {
                "block_hash": [a[0] for a in arrivals],
                "node": [a[1] for a in arrivals],
                "arrival_s": [a[2] for a in arrivals],
            },
        ),
    )
    submits = [1.0, 11.0, 21.0, 31.0]
    folder.write_records(
        "transactions",
        to_table(
            "transactions",
            {
                "tx_id": ["t1", "t2", "t3", "t4"],
                "node": ["a"] * 4,
                "submit_s": submits,
                "rpc_latency_s": [rpc_s] * 4,
                "accepted": [True] * 4,
                "reject_code": [None] * 4,
                "reject_reason": [None] * 4,
                "confirm_s": [s + confirm_s for s in submits],
                "height": [1, 1, 2, 2],
                "block_hash": ["01", "01", "02", "02"],
            },
        ),
    )
    folder.write_records(
        "node_timeline",
        to_table(
            "node_timeline",
            {
                "time_s": [0.0] * 3 + [20.0] * 3,
                "node": ["a", "b", "c"] * 2,
                "up": [True] * 6,
                "height": [0, 0, 0, 1, 1, 1],
                "tip_hash": ["", "", "", "01", "01", "01"],
                "pool_size": [0, 0, 0, 4, 3, 0],
                "peers": [2] * 6,
                "sync_progress": [100.0] * 6,
            },
        ),
    )
    folder.write_json("meta.json", {"kind": "canned"})
    return folder.path


PREDICTED = {"local_s": 0.010, "remote_s": 0.100, "confirm_s": 2.0, "rpc_s": 0.001}
MEASURED = {"local_s": 0.010, "remote_s": 0.110, "confirm_s": 2.5, "rpc_s": 0.0012, "resync_s": 3.0}


@pytest.fixture()
def sides(tmp_path: Path) -> tuple[Path, Path]:
    predicted = tmp_path / "predicted"
    write_run(predicted, "seed-1", **PREDICTED, resync_s=0.8)
    write_run(predicted, "seed-2", **PREDICTED, resync_s=1.2)
    write_run(tmp_path, "measured", **MEASURED)
    return predicted, tmp_path / "measured"


def test_known_errors_and_verdicts(sides: tuple[Path, Path]) -> None:
    comparison = compare(read_runs(sides[0]), read_runs(sides[1]))
    expected = {
        # name: (predicted mean, measured, relative error, verdict)
        "block_interval": (15.0, 15.0, 0.0, PASS),
        # four clear arrivals [10, 10, 100, 100] ms vs [10, 10, 110, 110] ms
        "block_propagation_p50": (0.055, 0.060, -1 / 12, PASS),
        "block_propagation_p95": (0.100, 0.110, -1 / 11, PASS),
        "block_propagation_p50[r1→r2]": (0.100, 0.110, -1 / 11, PASS),
        "block_propagation_p50[r1→r1]": (0.010, 0.010, 0.0, PASS),
        "confirmation_latency_p50": (2.0, 2.5, -0.2, FAIL),
        "confirmed_tps": (4 / 45, 4 / 45, 0.0, PASS),
        "rejection_rate": (0.0, 0.0, 0.0, PASS),
        "pool_peak": (4.0, 4.0, 0.0, PASS),
        "forks": (0.0, 0.0, 0.0, PASS),
        "rpc_latency_p50": (0.001, 0.0012, -1 / 6, PASS),
        # c back at 64 s, block 4 reaches it 0.8 / 1.2 s later (mean 1.0) vs 3.0 s measured:
        # allowed max(20 % of 3.0, 0.5 s) = 0.6 s, error -2.0 s
        "recovery[fault 1, c]": (1.0, 3.0, -2 / 3, FAIL),
        "reconvergence[fault 1]": (1.0, 3.0, -2 / 3, FAIL),
    }
    for name, (predicted, measured, relative, verdict) in expected.items():
        row = comparison.row(name)
        assert row.predicted.mean == pytest.approx(predicted), name
        assert row.measured.mean == pytest.approx(measured), name
        assert row.relative_error == pytest.approx(relative), name
        assert row.verdict == verdict, name
    band = comparison.row("recovery[fault 1, c]").predicted
    assert (band.low, band.high) == pytest.approx((0.82, 1.18))  # 5th / 95th of [0.8, 1.2]
    assert band.runs_with_data == band.runs == 2
    assert comparison.row("recovery[fault 1, c]").allowed == pytest.approx(0.6)
    names = [row.name for row in comparison.rows]
    assert "first_rejection" not in names  # no pool filled on either side: nothing to compare
    assert not any("r2→" in n for n in names)  # r2 produced nothing on either side
    assert comparison.verdict == FAIL


def test_empty_measured_side_is_unknown_never_pass(
    sides: tuple[Path, Path], tmp_path: Path
) -> None:
    empty = RunFolder.create(tmp_path, "empty", parse_topology(TOPOLOGY)).path
    comparison = compare(read_runs(sides[0]), read_runs(empty))
    assert comparison.rows
    for row in comparison.rows:
        assert row.verdict == UNKNOWN, row.name
        assert row.measured.mean is None
        assert row.note == "no measured data"
    assert comparison.verdict == UNKNOWN
    # The other way round, too.
    assert compare(read_runs(empty), read_runs(sides[1])).verdict == UNKNOWN


def test_tolerances_come_from_the_validation_section(tmp_path: Path) -> None:
    loose = (
        "validation:\n  confirmation_latency_p50: {relative: 25 %}\n"
        "  recovery: {relative: 10 %, absolute: 2.5 s}\n"
        "  reconvergence: {absolute: 2 s}\n"
    )
    write_run(tmp_path / "p", "seed-1", **PREDICTED, resync_s=1.0)
    write_run(tmp_path, "m", **MEASURED, validation=loose)
    comparison = compare(read_runs(tmp_path / "p"), read_runs(tmp_path / "m"))
    assert comparison.row("confirmation_latency_p50").verdict == PASS  # -20 % within 25 %
    assert comparison.row("recovery[fault 1, c]").verdict == PASS  # -2 s within 2.5 s
    assert comparison.row("reconvergence[fault 1]").verdict == PASS  # -2 s within exactly 2 s
    assert comparison.row("reconvergence[fault 1]").tolerance.relative == 0.0


def test_unknown_metric_name_in_validation_is_an_error() -> None:
    with pytest.raises(TopologyError) as err:
        parse_topology(TOPOLOGY + "validation:\n  block_latency_p50: {relative: 10 %}\n")
    assert "validation.block_latency_p50" in str(err.value)
    assert "unknown key" in str(err.value)
    with pytest.raises(TopologyError, match="percentage"):
        parse_topology(TOPOLOGY + "validation:\n  forks: {relative: ten}\n")


def test_judge_and_overall_verdict() -> None:
    tol = ToleranceSpec(relative=0.2, absolute=0.5)
    some, never, none = SideStats.of([1.0]), SideStats.of([math.inf]), SideStats.of([None])
    assert judge(some, SideStats.of([1.4]), tol)[0] == PASS  # 0.4 ≤ max(0.28, 0.5)
    assert judge(some, SideStats.of([1.6]), tol)[0] == FAIL
    assert judge(some, never, tol) == (FAIL, "measured: never within the run")
    assert judge(never, some, tol) == (FAIL, "predicted: never within the run")
    assert judge(never, never, tol)[0] == UNKNOWN
    assert judge(some, none, tol) == (UNKNOWN, "no measured data")
    assert SideStats.of([2.0, math.inf]).mean == math.inf
    assert SideStats.of([None, 2.0]).runs_with_data == 1
    assert overall_verdict([PASS, UNKNOWN, PASS]) == UNKNOWN
    assert overall_verdict([PASS, UNKNOWN, FAIL]) == FAIL
    assert overall_verdict([PASS, PASS]) == PASS
    assert overall_verdict([]) == UNKNOWN


def test_report_files_and_cli_check(sides: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app, ["compare", str(sides[0]), str(sides[1]), "--out", str(out), "--check"]
    )
    assert result.exit_code == 2, result.output
    assert "confirmation_latency_p50" in result.output
    markdown = (out / "report.md").read_text()
    assert "**Verdict: FAIL**" in markdown
    assert "| confirmation_latency_p50 | 2.000 s |" in markdown
    assert "−20.0 %" in markdown
    for plot in (
        "confirmation_cdf",
        "propagation_cdf",
        "height_lag",
        "pool",
        "tps",
        "propagation_heatmap",
    ):
        assert (out / "plots" / f"{plot}.png").stat().st_size > 1000
        assert f"plots/{plot}.png" in markdown
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 6
    assert "http://" not in page and "https://" not in page  # opens without a network
    data = json.loads((out / "comparison.json").read_text())
    assert data["verdict"] == FAIL
    assert data["counts"] == {PASS: 19, FAIL: 5, UNKNOWN: 0}  # 3 confirmation, 2 fault rows
    # Without --check the verdict does not set the exit status.
    again = CliRunner().invoke(app, ["compare", str(sides[0]), str(sides[1]), "--out", str(out)])
    assert again.exit_code == 0, again.output


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="neither a run folder"):
        read_runs(tmp_path)
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "x"), str(tmp_path)])
    assert result.exit_code == 1


def test_write_report_from_the_library(sides: tuple[Path, Path], tmp_path: Path) -> None:
    predicted, measured = read_runs(sides[0]), read_runs(sides[1])
    files = write_report(compare(predicted, measured), predicted, measured, tmp_path / "r")
    assert files.html.is_file() and files.markdown.is_file() and len(files.plots) == 6


def test_comparison_json_round_trip_and_the_docs_table(sides: tuple[Path, Path]) -> None:
    from bitcell_sim.results.compare import Comparison
    from bitcell_sim.results.report import TABLE_BEGIN, TABLE_END, splice_table, validation_table

    predicted, measured = read_runs(sides[0]), read_runs(sides[1])
    comparison = compare(predicted, measured)
    again = Comparison.from_json(json.loads(json.dumps(comparison.to_json())))
    assert again.to_json() == comparison.to_json()
    case = sides[1].parent / "validation" / "case"
    write_report(comparison, predicted, measured, case)
    table = validation_table([case])
    assert (
        "| **validation/case** | overall | | | | | **FAIL** (19 PASS, 5 FAIL, 0 UNKNOWN) |" in table
    )
    row = "| validation/case | confirmation_latency_p50 | 2.000 s (2.000 s – 2.000 s) | 2.500 s |"
    assert row + " −20.0 % | 10 % | FAIL |" in table
    assert "block_propagation_p50[r1→r2]" not in table  # a passing non-headline row
    assert "→" not in table  # region pairs stay in the case's own report
    doc = f"intro\n{TABLE_BEGIN}\nold\n{TABLE_END}\nrest\n"
    assert splice_table(doc, table) == f"intro\n{TABLE_BEGIN}\n{table}{TABLE_END}\nrest\n"


def test_metric_names_print_whole_in_the_terminal_table(
    sides: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A region pair's or a fault's bracket is part of the name, not rich markup; it is never
    cut, off a terminal (160 columns) or on a narrow one."""
    from bitcell_sim.cli.common import console

    for width in (160, 80):
        monkeypatch.setattr(console, "width", width)
        result = CliRunner().invoke(
            app, ["compare", str(sides[0]), str(sides[1]), "--out", str(tmp_path / "report")]
        )
        assert result.exit_code == 0, result.output
        names = [
            f"block_propagation_p{q}[{pair}]" for pair in ("r1→r1", "r1→r2") for q in (50, 95, 99)
        ]
        for name in [*names, "recovery[fault 1, c]", "reconvergence[fault 1]"]:
            assert name in result.output, (width, name)


@pytest.mark.parametrize(
    ("c_role", "per_node"), [("validator", False), ("full", True)], ids=["race", "no-race"]
)
def test_partition_recovery_per_node_only_when_one_side_alone_makes_blocks(
    tmp_path: Path, c_role: str, per_node: bool
) -> None:
    """Validators on both sides of a cut each make a block a round: which side keeps its chain
    at the heal is a tie-break, so only the slowest node's recovery is compared; with no
    validator on one side, that side catches up and each of its nodes' recovery is a shared
    figure."""
    text = TOPOLOGY.replace("c: {region: r2}", f"c: {{region: r2, role: {c_role}}}").replace(
        "{kind: node_down, target: c, start: 58 s, duration: 6 s}",
        "{kind: partition, groups: [[r1], [r2]], start: 58 s, duration: 6 s}",
    )
    assert "partition" in text and c_role in text
    for name in ("p", "m"):
        write_run(tmp_path, name, **PREDICTED, resync_s=1.0, topology_text=text)
    comparison = compare(read_runs(tmp_path / "p"), read_runs(tmp_path / "m"))
    names = {row.name for row in comparison.rows}
    assert "reconvergence[fault 1]" in names
    assert ("recovery[fault 1, c]" in names) is per_node
    assert ("recovery[fault 1]" in names) is not per_node
