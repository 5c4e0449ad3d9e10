"""Node-to-node round trips measured by the nodes themselves, through the real emulator.

A four-node rc3-fast devnet (us-east-1, us-east-2, eu-central-1, ap-southeast-1: RTTs of
4.3, 91.5, 157.5 and 212 ms, 2 ms normal jitter per direction) runs as real processes; each node
times its keepalive Ping -> Pong to each peer and exports it on /metrics. Every one of the 12
directed links must measure its configured RTT within 10 % (or 5 ms); 50 ms added on
eu-central-1 must raise its six links by ~100 ms (50 ms each way of each round trip) and
leave the others alone; reverting must bring them back. 50 ms added on the two-node region
us-east must raise its eight boundary links and leave the link inside the region alone, as the
model does (tests/test_model_delivery.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitcell_sim.devnet import Devnet, down, up
from bitcell_sim.devnet.ports import relocated_copy
from bitcell_sim.devnet.rtt import (
    PeerRtt,
    mean_rtts_between,
    read_peer_rtts,
    wait_for_peer_rtts,
)
from bitcell_sim.errors import DevnetError
from bitcell_sim.faults import DevnetFaults

pytestmark = [pytest.mark.real]

ROOT = Path(__file__).resolve().parent.parent
NODES = ("us-east-1", "us-east-2", "eu-central-1", "ap-southeast-1")
SLOWED = "eu-central-1"
CONFIGURED_MS = {
    frozenset(("us-east-1", "us-east-2")): 4.0,
    frozenset(("us-east-1", "eu-central-1")): 91.5,
    frozenset(("us-east-2", "eu-central-1")): 91.5,
    frozenset(("us-east-1", "ap-southeast-1")): 212.0,
    frozenset(("us-east-2", "ap-southeast-1")): 212.0,
    frozenset(("eu-central-1", "ap-southeast-1")): 157.5,
}


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    folder = tmp_path_factory.mktemp("rtt")
    state_dir = folder / "state"
    try:
        for attempt in range(3):
            topology = relocated_copy(
                ROOT / "topologies" / "rc3-fast.yaml",
                folder / "rc3-fast.yaml",
                keep=NODES,
                devnet={"genesis_delay": "1 s"},
            )
            try:
                started = up(topology, state_dir, timeout_s=30.0)
                break
            except DevnetError as exc:
                # Another process took a port of the chosen block first: pick another block.
                if "not free" not in str(exc) or attempt == 2:
                    raise
        yield started
    finally:
        down(state_dir, grace_s=3.0)


def table(rtts: list[PeerRtt]) -> str:
    return "\n".join(
        f"{r.link:32} configured {r.configured_rtt_s * 1000:6.1f} ms  "
        f"in force {r.expected_rtt_s * 1000:6.1f} ms  measured "
        + ("-" if r.measured is None else f"{r.measured.ewma_s * 1000:6.1f} ms")
        for r in rtts
    )


@pytest.mark.timeout(60)
def test_every_link_measures_its_configured_rtt(devnet: Devnet) -> None:
    rtts = wait_for_peer_rtts(devnet, timeout_s=25.0, min_samples=4)
    print("\n" + table(rtts))
    assert len(rtts) == 12
    for rtt in rtts:
        assert rtt.in_force_rtt_s == rtt.configured_rtt_s
        nominal_ms = CONFIGURED_MS[frozenset((rtt.node, rtt.peer))]
        # The links file's RTT is the topology's; inside a region the jitter's clip at 0 adds
        # a little to its mean.
        assert nominal_ms <= rtt.configured_rtt_s * 1000 <= nominal_ms + 0.5
        assert rtt.within(0.10, 0.005), table(rtts)
        assert rtt.measured is not None and rtt.measured.samples >= 4
        # The window minimum is a round trip too: never below the configured one by more
        # than the jitter can take off.
        assert rtt.measured.min_s >= rtt.configured_rtt_s - 0.015


def interval_means(devnet: Devnet, settle_s: float, measure_s: float) -> dict[str, float]:
    """Mean RTT per link over ``measure_s`` seconds, after ``settle_s`` for the Pings already
    in flight (sent under the old link parameters) to come back."""
    time.sleep(settle_s)
    first = read_peer_rtts(devnet)
    time.sleep(measure_s)
    means = mean_rtts_between(first, read_peer_rtts(devnet))
    assert None not in means.values(), means
    return {link: mean for link, mean in means.items() if mean is not None}


@pytest.mark.timeout(60)
def test_added_latency_raises_both_directions_by_two_one_way_delays(devnet: Devnet) -> None:
    wait_for_peer_rtts(devnet, timeout_s=20.0)
    configured = {r.link: r.configured_rtt_s for r in read_peer_rtts(devnet)}
    before = interval_means(devnet, 0.0, 4.0)
    faults = DevnetFaults(devnet)
    fault = faults.add_latency(SLOWED, 0.050)
    try:
        touched = set(fault.links)
        assert len(touched) == 6  # three peers, both directions
        slowed = interval_means(devnet, 1.5, 5.0)
        in_force = {r.link: r.in_force_rtt_s for r in read_peer_rtts(devnet)}
    finally:
        faults.revert(fault.id)
    restored = interval_means(devnet, 1.5, 4.0)
    lines = [
        f"{link:30} configured {configured[link] * 1000:6.1f}  before {before[link] * 1000:6.1f}"
        f"  +50 ms on {SLOWED} {slowed[link] * 1000:6.1f}  reverted {restored[link] * 1000:6.1f}"
        for link in configured
    ]
    print("\nmean RTT (ms) over each interval\n" + "\n".join(lines))
    for link, expected_s in configured.items():
        rise_s = slowed[link] - before[link]
        if link in touched:
            assert SLOWED in link.split("->")
            assert in_force[link] == pytest.approx(expected_s + 0.100)
            assert 0.085 <= rise_s <= 0.115, (link, rise_s)
        else:
            assert in_force[link] == pytest.approx(expected_s)
            assert abs(rise_s) <= 0.010, (link, rise_s)
        for measured_s in (before[link], slowed[link] - (0.100 if link in touched else 0.0)):
            assert abs(measured_s - expected_s) <= max(0.1 * expected_s, 0.005), (link, measured_s)
        assert abs(restored[link] - expected_s) <= max(0.1 * expected_s, 0.005), link


@pytest.mark.timeout(60)
def test_added_latency_on_a_two_node_region_leaves_the_link_inside_it_alone(
    devnet: Devnet,
) -> None:
    wait_for_peer_rtts(devnet, timeout_s=20.0)
    configured = {r.link: r.configured_rtt_s for r in read_peer_rtts(devnet)}
    before = interval_means(devnet, 0.0, 4.0)
    faults = DevnetFaults(devnet)
    fault = faults.add_latency("us-east", 0.050)
    try:
        slowed = interval_means(devnet, 1.5, 5.0)
    finally:
        faults.revert(fault.id)
    inside = {"us-east-1->us-east-2", "us-east-2->us-east-1"}
    boundary = {
        link for link in configured if sum(n.startswith("us-east") for n in link.split("->")) == 1
    }
    assert set(fault.links) == boundary and len(boundary) == 8
    lines = [
        f"{link:30} before {before[link] * 1000:6.1f}  +50 ms on us-east {slowed[link] * 1000:6.1f}"
        for link in configured
    ]
    print("\nmean RTT (ms)\n" + "\n".join(lines))
    for link in configured:
        rise_s = slowed[link] - before[link]
        if link in boundary:
            assert 0.085 <= rise_s <= 0.115, (link, rise_s)
        else:
            assert abs(rise_s) <= 0.010, (link, rise_s)
    for link in inside:
        assert abs(slowed[link] - configured[link]) <= 0.005, link


@pytest.mark.timeout(30)
def test_cli_status_peers_shows_every_link(devnet: Devnet) -> None:
    state = str(devnet.state.root)
    result = subprocess.run(
        [sys.executable, "-m", "bitcell_sim", "devnet", "status", "--peers", "--state-dir", state],
        capture_output=True,
        text=True,
        timeout=25,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    assert "peer round trips (ms)" in result.stdout
    second_table = result.stdout.split("peer round trips (ms)", 1)[1]
    rows = [line for line in second_table.splitlines() if line.count("│") == 11]
    assert len(rows) == 12, result.stdout
    rtts = {(r.node, r.peer): r for r in read_peer_rtts(devnet)}
    for line in rows:
        cells = [c.strip() for c in line.split("│")[1:-1]]
        rtt = rtts[(cells[0], cells[1])]
        assert cells[2] == f"{rtt.configured_rtt_s * 1000:.1f}"
        assert cells[4] != "-" and cells[-1].endswith("%")
