"""The topology loader: the shipped files, derived views, and every bad-input message."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import networkx as nx
import pytest

from bitcell_sim.errors import TopologyError
from bitcell_sim.topology import (
    dump_topology,
    link_params,
    load_topology,
    parse_topology,
    partition_sides,
    peer_graph,
    to_gml,
)
from bitcell_sim.topology.loader import MAX_FILE_BYTES

from .conftest import TOPOLOGIES

MINIMAL = """
regions:
  a: {rtt: {a: 2 ms, b: 100 ms}}
  b: {rtt: {b: 4 ms}}
nodes:
  n1: {region: a}
  n2: {region: a}
  n3: {region: b}
"""


@pytest.mark.parametrize("path", sorted(TOPOLOGIES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_topologies_load_and_round_trip(path: Path) -> None:
    topo = load_topology(path)
    assert parse_topology(dump_topology(topo)) == topo


def test_rc3_is_the_seed_network(rc3_path: Path) -> None:
    topo = load_topology(rc3_path)
    assert len(topo.nodes) == 7
    assert {r: len(topo.nodes_in_region(r)) for r in topo.regions} == {
        "us-east": 2,
        "us-west": 2,
        "eu-central": 2,
        "ap-southeast": 1,
    }
    assert [n.rpc_port for n in topo.nodes.values()] == list(range(8545, 8552))
    assert topo.rtt_s("us-east-1", "eu-central-2") == pytest.approx(0.0915)
    assert topo.one_way_latency_s("us-east-1", "ap-southeast-1") == pytest.approx(0.106)
    assert topo.protocol.round_s == 15.0
    assert topo.protocol.capacity_tps == pytest.approx(66.667, rel=1e-3)
    assert topo.workload.tps == 100.0


def test_large_topology_has_50_plus_nodes_in_8_regions() -> None:
    topo = load_topology(TOPOLOGIES / "global-56.yaml")
    assert len(topo.nodes) >= 50
    assert len({n.region for n in topo.nodes.values()}) == 8
    assert nx.is_connected(peer_graph(topo))


def test_graph_latency_is_half_the_rtt() -> None:
    topo = parse_topology(MINIMAL)
    graph = peer_graph(topo)
    assert graph.number_of_edges() == 3
    assert graph.edges["n1", "n3"]["latency_s"] == pytest.approx(0.05)
    assert graph.edges["n1", "n2"]["latency_s"] == pytest.approx(0.001)
    assert graph.edges["n1", "n3"]["bandwidth_bps"] == 100e6
    link = link_params(topo, "n3", "n1")
    assert (link.latency_s, link.jitter_s) == (pytest.approx(0.05), 0.0)


def test_ports_default_to_base_plus_index() -> None:
    topo = parse_topology(MINIMAL)
    assert [n.rpc_port for n in topo.nodes.values()] == [20000, 20001, 20002]
    assert topo.nodes["n3"].metrics_port == 22002


def test_rtt_given_both_ways_uses_the_mean() -> None:
    topo = parse_topology(MINIMAL.replace("b: {rtt: {b: 4 ms}}", "b: {rtt: {b: 4 ms, a: 102 ms}}"))
    assert topo.rtt_s("n1", "n3") == pytest.approx(0.101)


def test_partition_with_one_group_cuts_it_from_the_rest() -> None:
    topo = parse_topology(
        MINIMAL + "faults:\n  - {kind: partition, groups: [[b]], start: 5 s, duration: 10 s}\n"
    )
    sides = partition_sides(topo, topo.faults[0].groups)  # type: ignore[union-attr]
    assert sides == (frozenset({"n3"}), frozenset({"n1", "n2"}))


def test_stages_ramp_from_the_previous_rate() -> None:
    topo = parse_topology(
        MINIMAL
        + textwrap.dedent(
            """
            workload:
              start: 10 s
              stages:
                - {duration: 30 s, tps: 100, ramp: true}
                - {duration: 60 s, tps: 100}
                - {duration: 10 s, tps: 300}
            """
        )
    )
    assert topo.workload_stages() == (
        (10.0, 40.0, 0.0, 100.0),
        (40.0, 100.0, 100.0, 100.0),
        (100.0, 110.0, 300.0, 300.0),
    )


def test_region_weights_default_to_node_share(rc3_path: Path) -> None:
    weights = load_topology(rc3_path).workload_region_weights()
    assert weights["us-east"] == pytest.approx(2 / 7)
    assert weights["ap-southeast"] == pytest.approx(1 / 7)


def test_gml_export_parses_with_latency_and_loss() -> None:
    topo = parse_topology(MINIMAL)
    graph = nx.parse_gml(to_gml(topo), label="id")
    assert graph.number_of_nodes() == 2
    assert graph.edges[0, 1]["latency"] == "50 ms"
    assert graph.edges[0, 1]["packet_loss"] == 0.0
    assert graph.edges[0, 0]["latency"] == "1 ms"  # self-loop: inside the region


def test_gml_latencies_have_whole_magnitudes(rc3_path: Path) -> None:
    # Shadow parses integer magnitudes: RC3's 91.5 ms RTT is a 45750 us one-way latency.
    graph = nx.parse_gml(to_gml(load_topology(rc3_path)), label="id")
    latencies = {edge["latency"] for _, _, edge in graph.edges(data=True)}
    assert "45750 us" in latencies
    assert all(re.fullmatch(r"\d+ (s|ms|us|ns)", text) for text in latencies)


# ---- bad input: each message pinned, with the field path -----------------------------------

BAD_CASES = {
    "unknown key": (
        "general: {seed: 1, duratoin: 5 s}",
        r"general\.duratoin \(line \d+\): unknown key 'duratoin' \(allowed: name, description, "
        r"seed, duration\)",
    ),
    "bad unit": (
        "protocol: {commit: 5 sec0nds}",
        r"protocol\.commit \(line \d+\): bad duration '5 sec0nds'",
    ),
    "missing unit": (
        "protocol: {commit: 5}",
        r"protocol\.commit \(line \d+\): duration 5 has no unit; write it like '64 ms'",
    ),
    "unknown fault target": (
        "faults: [{kind: node_down, target: n9, start: 1 s, duration: 5 s}]",
        r"faults\[0\]\.target \(line \d+\): unknown node 'n9' \(nodes: n1, n2, n3\)",
    ),
    "unknown fault kind": (
        "faults: [{kind: meteor, target: n1, start: 1 s, duration: 5 s}]",
        r"faults\[0\] \(line \d+\): unknown fault kind 'meteor'",
    ),
    "unknown region in partition": (
        "faults: [{kind: partition, groups: [[mars]], start: 1 s, duration: 5 s}]",
        r"faults\[0\]\.groups\[0\] \(line \d+\): unknown node or region 'mars'",
    ),
    "unknown key in fault": (
        "faults: [{kind: node_down, target: n1, start: 1 s, duration: 5 s, when: now}]",
        r"faults\[0\]\.when \(line \d+\): unknown key 'when' \(allowed: start, duration, label, "
        r"kind, target\)",
    ),
    "both profiles": (
        "workload: {tps: 10, stages: [{duration: 5 s, tps: 10}]}",
        r"workload \(line \d+\): give either 'stages' or 'tps' \+ 'duration', not both",
    ),
    "bad role": ("nodes: {n1: {region: a, role: miner}}", r"nodes\.n1\.role"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_topology_messages(case: str) -> None:
    extra, message = BAD_CASES[case]
    text = MINIMAL + extra + "\n"
    if extra.startswith("nodes:"):
        text = MINIMAL.split("nodes:")[0] + extra + "\n"
    with pytest.raises(TopologyError, match=message):
        parse_topology(text)


def test_overlapping_ports() -> None:
    text = MINIMAL.replace("n2: {region: a}", "n2: {region: a, p2p_port: 20000}")
    with pytest.raises(
        TopologyError,
        match=r"nodes\.n2\.p2p_port \(line \d+\): port 20000 is already used by "
        r"nodes\.n1\.rpc_port",
    ):
        parse_topology(text)


def test_disconnected_peer_graph() -> None:
    with pytest.raises(
        TopologyError,
        match=r"peers \(line \d+\): the peer graph is disconnected: n3 cannot be "
        r"reached from 'n1'",
    ):
        parse_topology(MINIMAL + "peers: [[n1, n2]]\n")


def test_missing_rtt_between_used_regions() -> None:
    text = MINIMAL.replace("a: {rtt: {a: 2 ms, b: 100 ms}}", "a: {rtt: {a: 2 ms}}")
    with pytest.raises(
        TopologyError, match=r"regions\.a\.rtt \(line \d+\): missing the RTT to region 'b'"
    ):
        parse_topology(text)


def test_every_problem_is_reported_at_once() -> None:
    text = MINIMAL + "general: {seed: -1, bogus: 1}\nprotocol: {reveal: soon}\n"
    with pytest.raises(TopologyError) as info:
        parse_topology(text)
    paths = [path for path, _ in info.value.problems]
    assert [p.split(" ")[0] for p in paths] == ["general.seed", "general.bogus", "protocol.reveal"]


def test_not_a_mapping_and_bad_yaml() -> None:
    with pytest.raises(TopologyError, match="a topology must be a mapping"):
        parse_topology("- just\n- a list\n")
    with pytest.raises(TopologyError, match=r"YAML syntax error at line 2, column 1"):
        parse_topology("a: [\n")


def test_missing_file() -> None:
    with pytest.raises(TopologyError, match=r"no such file: /nonexistent/t\.yaml"):
        load_topology("/nonexistent/t.yaml")


def check_cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bitcell_sim", "topology", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_check_exits_1_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL + "faults: [{kind: node_down, target: n9, start: 1 s, duration: 5 s}]\n")
    result = check_cli(bad)
    assert result.returncode == 1
    assert "faults[0].target" in result.stderr
    assert "unknown node 'n9'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_check_ok(rc3_path: Path) -> None:
    result = check_cli(rc3_path)
    assert result.returncode == 0, result.stderr
    assert "7 nodes (7 validators) in 4 regions, 21 peer links" in result.stdout


# ---- hostile and careless files: a clear error, never a traceback, never a silent merge ----


def problems_of(text: str) -> list[str]:
    with pytest.raises(TopologyError) as info:
        parse_topology(text)
    return [f"{path}: {message}" if path else message for path, message in info.value.problems]


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    node_twice = MINIMAL.replace("  n3: {region: b}\n", "  n3: {region: b}\n  n1: {region: b}\n")
    assert problems_of(node_twice) == ["nodes.n1 (line 9): duplicate key 'n1' (first at line 6)"]
    section_twice = MINIMAL + "protocol: {commit: 1 s}\nprotocol: {reveal: 1 s}\n"
    assert problems_of(section_twice) == [
        "protocol (line 10): duplicate key 'protocol' (first at line 9)"
    ]
    assert problems_of(MINIMAL + "general: {seed: 1, seed: 2}\n") == [
        "general.seed (line 9): duplicate key 'seed' (first at line 9)"
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("general: {duration: 1e308 h}", "bad duration '1e308 h': more than a year"),
        ("general: {duration: 400 days}", "bad duration '400 days': unknown unit"),
        ("general: {duration: 9000 h}", "bad duration '9000 h': more than a year"),
        ("links: {bandwidth: 1e300 Gbit}", "more than 1 Pbit/s"),
        ("links: {bandwidth: 0.001 bit}", "greater than or equal to 1"),
        ("workload: {tps: 1e20 TPS}", "bad rate '1e20 TPS': more than 10 million per second"),
        ("protocol: {commit: 1 ns}", "greater than or equal to 0.001"),
        ("protocol: {tx_pool_capacity: 1000000000000}", "less than or equal to 10000000"),
        ("general: {seed: 18446744073709551616}", "less than or equal to 18446744073709551615"),
        ("workload: {region_weights: {a: .inf}}", "'.inf' is not a finite number"),
        ("workload: {region_weights: {a: .nan}}", "'.nan' is not a finite number"),
        (
            "faults: [{kind: cpu_throttle, target: n1, share: 1.0e+999, "
            "start: 1 s, duration: 1 s}]",
            "'1.0e+999' is not a finite number",
        ),
    ],
)
def test_non_finite_and_absurd_quantities_are_refused(extra: str, message: str) -> None:
    problems = problems_of(MINIMAL + extra + "\n")
    assert any(message in p for p in problems), problems


def test_huge_integers_and_deep_nesting_are_clear_errors() -> None:
    digits = "9" * 5001
    assert problems_of(MINIMAL + f"general: {{seed: {digits}}}\n") == [
        "general.seed (line 9): an integer of 5,001 digits is too large for any field"
    ]
    deep = MINIMAL + "general: {description: " + "[" * 5000 + "]" * 5000 + "}\n"
    assert problems_of(deep) == ["the YAML is nested too deeply (more than 32 levels)"]
    nested = MINIMAL + "general: {description: " + "[" * 40 + "]" * 40 + "}\n"
    assert any("nested deeper than 32 levels" in p for p in problems_of(nested))


def test_alias_expansion_is_bounded() -> None:
    bomb = "x: &x [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    for name, previous in zip("yzuvw", "xyzuv", strict=True):
        bomb += f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]\n"
    problems = problems_of(
        MINIMAL.replace("regions:", "anchors:\n" + textwrap.indent(bomb, "  ") + "regions:")
    )
    assert any(
        p.startswith("the YAML expands to 1,") and p.endswith("at most 1,000,000") for p in problems
    ), problems


def test_a_fault_that_starts_after_the_run_is_refused() -> None:
    text = MINIMAL + (
        "general: {duration: 60 s}\n"
        "faults: [{kind: node_down, target: n1, start: 60 s, duration: 5 s}]\n"
    )
    assert problems_of(text) == [
        "faults[0].start (line 10): starts at 60 s, when the run is over (general.duration is 60 s)"
    ]
    parse_topology(text.replace("start: 60 s", "start: 59 s"))  # may run past the end


def test_files_over_the_size_limit_are_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(MINIMAL + "#" * MAX_FILE_BYTES + "\n")
    with pytest.raises(TopologyError, match=r"big\.yaml is 4,194,\d+ bytes: more than the 4 MiB"):
        load_topology(big)
    with pytest.raises(TopologyError, match="more than the 4 MiB"):
        parse_topology(big.read_text())


@pytest.mark.parametrize(
    "body",
    [
        MINIMAL + "nodes: {n9: {region: a}}\n",
        MINIMAL + "general: {seed: " + "7" * 5001 + "}\n",
        "a: " + "[" * 5000 + "]" * 5000 + "\n",
    ],
    ids=["duplicate", "huge-int", "deep"],
)
def test_cli_check_says_what_is_wrong_without_traceback(tmp_path: Path, body: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(body)
    result = check_cli(bad)
    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid topology")
    assert "Traceback" not in result.stderr + result.stdout
