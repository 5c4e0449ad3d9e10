"""The devnet against real node processes: rc3-fast up, transactions, faults, teardown.

One module devnet (rc3-fast, 7 nodes, 3 s rounds, ports shifted to a free block, state under
tmp) serves the tests in file order: convergence, a tx imported everywhere, the golden vector,
SIGKILL/restart under load, a partition with a fork and its heal, CPU throttle, the chaos
scheduler, and ``down`` leaving no process. Error paths start their own small devnets.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bitcell_sim.devnet import Devnet, ProcessRecord, cpu_seconds, down, is_running, up
from bitcell_sim.devnet.ports import relocated_copy
from bitcell_sim.devnet.processes import start_ticks
from bitcell_sim.devnet.state import EMULATOR
from bitcell_sim.errors import DevnetError, RpcError
from bitcell_sim.faults import (
    ChaosScheduler,
    DevnetFaults,
    read_events,
    read_tips,
    wait_for_common_tip,
    wait_until_caught_up,
)
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.rpc_client import RpcClient
from bitcell_sim.protocol.transaction import sign_transaction
from bitcell_sim.topology import RegionDown, parse_topology

pytestmark = [pytest.mark.real]

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_ID = "0x746f184b90bdbfc41b8d46dcd311ed75fd44131029190c2cf4e3dbb6b6d409ed"
RECIPIENT = KeyPair.from_seed("recipient").public_key
GOLDEN_SENDER = KeyPair.from_seed("test-seed")
US = ("us-east-1", "us-east-2", "us-west-1", "us-west-2")
EU_AP = ("eu-central-1", "eu-central-2", "ap-southeast-1")


def shifted_topology(source: Path, target: Path, keep: tuple[str, ...] | None = None) -> Path:
    """A copy of ``source`` whose every port lies in a fresh free block (optionally only the
    nodes in ``keep``, peered full mesh); the golden vector's sender is funded at genesis (its
    tx moves 1000 units)."""
    return relocated_copy(
        source,
        target,
        keep=keep,
        devnet={"genesis_delay": "2 s"},
        genesis={"accounts": {"0x" + GOLDEN_SENDER.public_key.hex(): 10**6}},
    )


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (a read-only check, nothing is signalled)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bitcell_sim", "devnet", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    folder = tmp_path_factory.mktemp("rc3fast")
    state_dir = folder / "state"
    try:
        for attempt in range(3):
            topology = shifted_topology(
                ROOT / "topologies" / "rc3-fast.yaml", folder / "rc3-fast.yaml"
            )
            try:
                started = up(topology, state_dir, timeout_s=90.0)
                break
            except DevnetError as exc:
                # Another process took a port of the chosen block first: pick another block.
                if "not free" not in str(exc) or attempt == 2:
                    raise
        yield started
    finally:
        down(state_dir, grace_s=3.0)


def urls(devnet: Devnet, names: tuple[str, ...] | None = None) -> dict[str, str]:
    return {
        name: endpoint.rpc_url
        for name, endpoint in devnet.endpoints.items()
        if names is None or name in names
    }


def fresh_tx(index: int) -> bytes:
    key = KeyPair.generate()
    # Amount 0: a fresh key has no balance, and only txs that apply are put in blocks.
    return sign_transaction(key, RECIPIENT, 0, 21000, 1_000_000_000 + index).encode()


def chain_hashes(url: str, up_to: int) -> list[str]:
    with RpcClient(url) as rpc:
        blocks = [rpc.get_block_by_number(height) for height in range(up_to + 1)]
    assert all(blocks), f"missing blocks below {up_to} at {url}"
    return [str(block["hash"]) for block in blocks if block]


def chain_tx_counts(url: str) -> tuple[int, dict[str, int]]:
    """The tip height and how many times each tx id appears in the chain at ``url``."""
    counts: dict[str, int] = {}
    with RpcClient(url) as rpc:
        height = rpc.block_number()
        for number in range(1, height + 1):
            block = rpc.get_block_by_number(number)
            assert block is not None
            for tx_id in block["transactions"]:
                counts[tx_id] = counts.get(tx_id, 0) + 1
    return height, counts


@dataclass
class Load:
    """A bounded open-loop sender of fresh-key txs (``tps``) over ``targets``."""

    targets: dict[str, str]
    tps: float
    duration_s: float
    acknowledged: dict[str, bytes] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        count = int(self.tps * self.duration_s)
        raws = [fresh_tx(i) for i in range(count)]
        clients = [RpcClient(url, timeout_s=2.0) for url in self.targets.values()]
        start = time.monotonic()
        try:
            for index, raw in enumerate(raws):
                if self._stop.is_set():
                    return
                delay = start + index / self.tps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                try:
                    tx_id = clients[index % len(clients)].send_raw_transaction(raw)
                    self.acknowledged[tx_id] = raw
                except RpcError as exc:
                    self.rejected.append(str(exc))
        finally:
            for client in clients:
                client.close()

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join(timeout=self.duration_s + 30)
        self._stop.set()


@pytest.mark.timeout(120)
def test_all_nodes_share_one_tip_and_links_go_through_the_emulator(devnet: Devnet) -> None:
    converged = wait_for_common_tip(urls(devnet), timeout_s=40.0, min_height=2)
    assert converged.tip.height >= 2
    with devnet.netem() as netem:
        links = netem.links()
    assert len(links) == 42
    # Every node dials every peer through its own directed link: all carry bytes.
    quiet = [link.name for link in links if link.counters.bytes_forward == 0]
    assert not quiet, quiet
    for name, endpoint in devnet.endpoints.items():
        health = devnet.health(name)
        assert health.ok and health.peer_count == endpoint.degree == 6


@pytest.mark.timeout(90)
def test_a_tx_sent_to_one_node_is_imported_by_all(devnet: Devnet) -> None:
    raw = fresh_tx(7)
    with RpcClient(devnet.endpoints["ap-southeast-1"].rpc_url) as rpc:
        tx_id = rpc.send_raw_transaction(raw)
    deadline = time.monotonic() + 40
    found: dict[str, str | None] = {}
    while time.monotonic() < deadline:
        for name, url in urls(devnet).items():
            with RpcClient(url) as rpc:
                tx = rpc.get_transaction_by_hash(tx_id)
            found[name] = tx["blockHash"] if tx else None
        if all(found.values()) and len(set(found.values())) == 1:
            break
        time.sleep(0.5)
    assert all(found.values()) and len(set(found.values())) == 1, found


@pytest.mark.timeout(60)
def test_cli_status_logs_and_fault_list(devnet: Devnet) -> None:
    state = str(devnet.state.root)
    status = cli("status", "--state-dir", state)
    assert status.returncode == 0, status.stderr
    for name in devnet.node_names:
        assert name in status.stdout
    assert "emulator: up" in status.stdout
    logs = cli("logs", "us-east-1", "-n", "3", "--state-dir", state)
    assert logs.returncode == 0 and 1 <= len(logs.stdout.splitlines()) <= 3, logs
    bad = cli("logs", "nobody", "--state-dir", state)
    assert bad.returncode == 1 and "unknown node 'nobody'" in bad.stderr
    listed = cli("fault", "list", "--state-dir", state)
    assert listed.returncode == 0 and "no active faults" in listed.stdout
    assert "readable by others" not in status.stderr + listed.stderr
    token = devnet.state.token_path
    token.chmod(0o644)
    try:
        warned = cli("status", "--state-dir", state)
        assert warned.returncode == 0
        assert "warning:" in warned.stderr and "is readable by others (mode 0644)" in warned.stderr
    finally:
        token.chmod(0o600)


@pytest.mark.timeout(30)
def test_the_golden_vector_is_accepted(devnet: Devnet) -> None:
    secret = KeyPair.from_seed("test-seed")
    golden = sign_transaction(secret, RECIPIENT, 1000, 21000, 1_000_000_000)
    assert golden.encode().hex().startswith("0000000000000000")
    with RpcClient(devnet.endpoints["eu-central-2"].rpc_url) as rpc:
        assert rpc.send_raw_transaction(golden.encode()) == GOLDEN_ID


@pytest.mark.timeout(30)
def test_a_second_up_is_refused(devnet: Devnet) -> None:
    with pytest.raises(DevnetError, match=r"a devnet is already running from .*devnet down"):
        up(devnet.meta.topology_source, devnet.state.root)


@pytest.mark.timeout(150)
def test_sigkill_under_load_then_restart_keeps_the_chain_and_syncs(devnet: Devnet) -> None:
    victim = "us-west-2"
    others = {n: u for n, u in urls(devnet).items() if n != victim}
    load = Load(others, tps=20, duration_s=20).start()
    time.sleep(3)
    wait_for_common_tip(urls(devnet), timeout_s=30.0)
    height_before = RpcClient(devnet.endpoints[victim].rpc_url).block_number()
    hashes_before = chain_hashes(devnet.endpoints[victim].rpc_url, height_before)
    faults = DevnetFaults(devnet)
    pid = devnet.record(victim).pid  # type: ignore[union-attr]
    faults.kill(victim)
    assert not devnet.is_running(victim)
    assert start_ticks(pid) is None  # gone, not a zombie: the devnet reaps its children
    time.sleep(7)  # a couple of rounds go by without it
    assert faults.restart(victim) == [victim]
    restarted = time.monotonic()
    deadline = restarted + 40
    health = devnet.health(victim)
    while not health.ok and time.monotonic() < deadline:
        time.sleep(0.2)
        health = devnet.health(victim)
    assert health.ok, health
    caught_up_s = wait_until_caught_up(devnet.endpoints[victim].rpc_url, others, timeout_s=40)
    assert chain_hashes(devnet.endpoints[victim].rpc_url, height_before) == hashes_before
    load.join()
    assert len(load.acknowledged) >= 0.9 * 20 * 20, (len(load.acknowledged), load.rejected[:3])
    events = read_events(devnet.state.faults_log_path)
    assert [(e.action, e.kind, e.target) for e in events][-2:] == [
        ("apply", "node_down", victim),
        ("revert", "node_down", victim),
    ]
    print(f"restarted {victim} back at the tip {caught_up_s:.2f} s after it was healthy")


@pytest.mark.timeout(180)
def test_partition_forks_then_heals_to_one_tip_losing_no_tx(devnet: Devnet) -> None:
    wait_for_common_tip(urls(devnet), timeout_s=30.0)
    faults = DevnetFaults(devnet)
    load = Load(urls(devnet), tps=10, duration_s=14).start()
    fault = faults.partition([["eu-central", "ap-southeast"]])
    assert len(fault.links) == 24
    try:
        time.sleep(13)  # four rounds
        us, eu_ap = read_tips(urls(devnet, US)), read_tips(urls(devnet, EU_AP))
    finally:
        faults.heal()
    healed = time.monotonic()
    assert None not in us.values() and None not in eu_ap.values()
    us_best = max(us.values(), key=lambda t: t.height)  # type: ignore[union-attr]
    eu_best = max(eu_ap.values(), key=lambda t: t.height)  # type: ignore[union-attr]
    assert us_best.hash != eu_best.hash, (us, eu_ap)  # type: ignore[union-attr]
    converged = wait_for_common_tip(urls(devnet), timeout_s=60.0)
    since_heal_s = time.monotonic() - healed
    print(f"one tip {since_heal_s:.2f} s after heal, at height {converged.tip.height}")
    load.join()

    _, counts = chain_tx_counts(devnet.endpoints["us-east-1"].rpc_url)
    assert all(n == 1 for n in counts.values()), {k: v for k, v in counts.items() if v > 1}
    missing = [tx_id for tx_id in load.acknowledged if tx_id not in counts]
    # Not in the chain: it must still be in some pool ("already in pool" on a resend).
    # Blocks keep coming meanwhile, so the chain is read again before judging.
    answers: dict[str, list[str]] = {}
    for tx_id in missing:
        answers[tx_id] = []
        for url in urls(devnet).values():
            try:
                with RpcClient(url) as rpc:
                    rpc.send_raw_transaction(load.acknowledged[tx_id])
                answers[tx_id].append("accepted")
            except RpcError as exc:
                answers[tx_id].append(str(exc))
                if "already in pool" in str(exc):
                    break
    _, counts_after = chain_tx_counts(devnet.endpoints["us-east-1"].rpc_url)
    lost = {
        tx_id: answer
        for tx_id, answer in answers.items()
        if tx_id not in counts_after and not any("already in pool" in a for a in answer)
    }
    assert not lost, f"{len(lost)} acknowledged tx(s) neither in the chain nor in a pool: {lost}"
    assert len(load.acknowledged) >= 100


@pytest.mark.timeout(60)
def test_cpu_throttle_on_a_node_and_undo(devnet: Devnet) -> None:
    faults = DevnetFaults(devnet)
    node = "eu-central-1"
    record = devnet.record(node)
    assert record is not None
    fault = faults.throttle(node, 0.05)
    try:
        before = cpu_seconds(record)
        time.sleep(3)
        after = cpu_seconds(record)
        assert before is not None and after is not None
        assert (after - before) / 3 < 0.15
        assert is_running(record)
    finally:
        faults.unthrottle(node)
    assert faults.active() == []
    assert fault.throttles[0]["backend"] in ("cgroup2", "cgroup1", "signals")
    assert devnet.health(node).status_code is not None


@pytest.mark.timeout(120)
def test_chaos_scheduler_plays_a_region_outage_and_reverts(devnet: Devnet) -> None:
    outage = RegionDown.model_validate(
        {"kind": "region_down", "target": "us-west", "start": 1.0, "duration": 5.0}
    )
    injector = DevnetFaults(devnet)
    report = ChaosScheduler(injector, [outage], origin_unix_s=time.time()).run(max_duration_s=30)
    assert not report.errors and not report.skipped
    assert [(s.action, s.fault.kind) for _, s in report.done] == [
        ("apply", "region_down"),
        ("revert", "region_down"),
    ]
    offsets = [offset for offset, _ in report.done]
    assert 0.9 < offsets[0] < 2.5 and 5.9 < offsets[1] < 8.0, offsets
    assert all(devnet.is_running(n) for n in ("us-west-1", "us-west-2"))
    wait_for_common_tip(urls(devnet), timeout_s=60.0)


def healths(devnet: Devnet) -> dict[str, tuple[str | None, int | None]]:
    return {
        name: (health.status, health.peer_count)
        for name in devnet.node_names
        for health in [devnet.health(name)]
    }


def wait_healths(devnet: Devnet, want: dict[str, tuple[str, int]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (seen := healths(devnet)) != want:
        assert time.monotonic() < deadline, seen
        time.sleep(0.3)


@pytest.mark.timeout(150)
def test_a_dead_emulator_is_reported_and_mended_without_restarting_nodes(
    devnet: Devnet,
) -> None:
    state = str(devnet.state.root)
    faults = DevnetFaults(devnet)
    cut = faults.partition([["ap-southeast-1"]])  # in force across the restart
    pids = {name: devnet.record(name).pid for name in devnet.node_names}  # type: ignore[union-attr]
    emulator = devnet.record(EMULATOR)
    assert emulator is not None
    os.kill(emulator.pid, signal.SIGKILL)
    # every link went through it: after a round alone each node says so on /health
    wait_healths(devnet, {name: ("isolated", 0) for name in devnet.node_names}, 30)
    assert all(devnet.health(name).status_code == 503 for name in devnet.node_names)
    status = cli("status", "--state-dir", state)
    assert status.returncode == 0, status.stderr
    assert "emulator: down" in status.stdout and "devnet restart-emulator" in status.stdout
    assert status.stdout.count("isolated") == len(devnet.node_names)

    mended = cli("restart-emulator", "--state-dir", state)
    assert mended.returncode == 0, mended.stderr
    others = {name: ("ok", 5) for name in devnet.node_names if name != "ap-southeast-1"}
    wait_healths(devnet, {**others, "ap-southeast-1": ("isolated", 0)}, 40)  # still cut
    faults.revert(cut.id)
    wait_healths(devnet, {name: ("ok", 6) for name in devnet.node_names}, 40)
    assert {name: devnet.record(name).pid for name in devnet.node_names} == pids  # type: ignore[union-attr]
    wait_for_common_tip(urls(devnet), timeout_s=60.0)


@pytest.mark.timeout(60)
def test_down_stops_every_process_it_started(devnet: Devnet) -> None:
    records: list[ProcessRecord] = list(devnet.state.records().values())
    assert len(records) >= 8  # emulator + 7 nodes
    result = down(devnet.state.root, grace_s=3.0)
    assert set(result.stopped) >= {"emulator", *devnet.node_names}
    for record in records:
        assert not is_running(record)
    assert processes_mentioning(str(devnet.state.root)) == []
    assert list(devnet.state.pids_dir.glob("*.json")) == []
    assert down(devnet.state.root).stopped == ()  # idempotent


# ---- error paths --------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_taken_port_is_a_clear_error_and_nothing_starts(tmp_path: Path) -> None:
    topology = shifted_topology(
        ROOT / "topologies" / "rc3-fast.yaml",
        tmp_path / "t.yaml",
        keep=("us-east-1", "eu-central-1"),
    )
    rpc_port = parse_topology(topology.read_text()).nodes["eu-central-1"].rpc_port
    state = tmp_path / "state"
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", rpc_port))
        blocker.listen(1)
        result = cli("up", str(topology), "--state-dir", str(state))
    assert result.returncode == 1
    assert f"node eu-central-1 rpc_port: 127.0.0.1:{rpc_port} already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert processes_mentioning(str(state)) == []


FAILING_NODE = """
import json, os, sys
config = sys.argv[-1]
if json.load(open(config))["node"] == "us-west-1":
    print("refusing to start: simulated crash", flush=True)
    sys.exit(3)
os.execv(sys.executable, [sys.executable, "-m", "bitcell_sim.node", "--config", config])
"""


@pytest.mark.timeout(90)
def test_a_node_that_fails_to_start_is_named_and_the_rest_is_stopped(tmp_path: Path) -> None:
    topology = shifted_topology(
        ROOT / "topologies" / "rc3-fast.yaml",
        tmp_path / "t.yaml",
        keep=("us-east-1", "us-west-1", "eu-central-1"),
    )
    state = tmp_path / "state"
    with pytest.raises(DevnetError) as caught:
        up(topology, state, node_command=[sys.executable, "-c", FAILING_NODE], timeout_s=40)
    message = str(caught.value)
    assert "node us-west-1 is not running" in message
    assert str(state / "logs" / "us-west-1.log") in message
    assert "simulated crash" in message
    assert processes_mentioning(str(state)) == []
    assert list((state / "pids").glob("*.json")) == []


@pytest.mark.timeout(30)
def test_cli_down_with_nothing_running_exits_0(tmp_path: Path) -> None:
    result = cli("down", "--state-dir", str(tmp_path / "x"))
    assert result.returncode == 0, result.stderr
    assert "nothing to stop" in result.stdout
