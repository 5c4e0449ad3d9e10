"""Starting a devnet: ``up`` plans ports, writes the state folder, starts emulator and nodes.

``up(topology_path, state_dir)`` checks every planned port first (a taken one: DevnetError, nothing
started), writes the state folder (resolved topology, 0600 control token, links file, P2P keys,
one node.json + data dir + log per node), starts the link emulator, sets the genesis time to now +
the genesis delay, starts the timeline sampler and every node and waits until all are healthy
and peered, then the monitoring stack when asked. Any failure stops everything already started
before the error propagates. ``UpEvent`` reports progress.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bitcell_sim.devnet.cluster import (
    Devnet,
    ReadyProgress,
    reserved_name_problems,
    stop_recorded,
)
from bitcell_sim.devnet.monitor import (
    MONITORING_PROCESSES,
    monitoring_port_owners,
    prepare_monitoring,
    start_monitoring,
)
from bitcell_sim.devnet.plan import check_ports_free, link_specs, plan_devnet
from bitcell_sim.devnet.processes import ProcessRecord, is_running, spawn
from bitcell_sim.devnet.state import EMULATOR, SAMPLER, DevnetMeta, StateDir
from bitcell_sim.errors import DevnetError, NetemError
from bitcell_sim.netem import NetemClient, write_links_file
from bitcell_sim.topology import dump_topology, load_topology

NODE_MODULE = "bitcell_sim.node"
SAMPLER_MODULE = "bitcell_sim.devnet.sampler"
EMULATOR_READY_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class UpEvent:
    """One step of ``up``: ``stage`` is "ports", "emulator", "nodes", "ready" or
    "monitoring"."""

    stage: str
    done: int
    total: int
    detail: str = ""


def default_node_command(python: str = sys.executable) -> tuple[str, ...]:
    return (python, "-m", NODE_MODULE)


def find_running(state: StateDir) -> dict[str, ProcessRecord]:
    """Processes of a devnet in ``state`` that still run (verified by start time)."""
    return {name: r for name, r in state.records().items() if is_running(r)}


def _prepare_folder(state: StateDir) -> None:
    """Make ``state.root`` an empty state folder: a stale devnet's folder is cleared, any other
    non-empty folder is refused (so ``--purge`` can never delete someone's files)."""
    root = state.root
    if root.exists():
        if not root.is_dir():
            raise DevnetError(f"state folder {root} exists and is not a folder")
        ours = state.exists() or state.pids_dir.is_dir()
        entries = [p for p in root.iterdir() if p.name != ".lock"]
        if entries and not ours:
            raise DevnetError(
                f"state folder {root} is not empty and holds no devnet; choose another --state-dir"
            )
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    state.create()


def _wait_emulator(devnet: Devnet, record: ProcessRecord, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with NetemClient(devnet.meta.control_url, devnet.state.read_token(), timeout_s=1.0) as client:
        while True:
            if not is_running(record):
                raise DevnetError(
                    devnet.describe_failure(EMULATOR, "the link emulator exited during start-up")
                )
            try:
                client.health()
                return
            except NetemError:
                pass
            if time.monotonic() >= deadline:
                raise DevnetError(
                    devnet.describe_failure(
                        EMULATOR, f"the link emulator is not ready after {timeout_s:g} s"
                    )
                )
            time.sleep(0.05)


def start_emulator(devnet: Devnet, timeout_s: float = EMULATOR_READY_TIMEOUT_S) -> ProcessRecord:
    """Start the link emulator of ``devnet`` (its links file and token must be written) and
    wait until its control API answers; the pid file is saved before the wait."""
    state, plan = devnet.state, devnet.plan
    emulator = spawn(
        EMULATOR,
        [
            devnet.meta.python,
            "-m",
            "bitcell_sim.netem",
            "--links",
            str(state.links_path),
            "--control-port",
            str(plan.control_port),
            "--token-file",
            str(state.token_path),
        ],
        state.log_path(EMULATOR),
    )
    state.save_record(emulator)
    _wait_emulator(devnet, emulator, timeout_s)
    return emulator


def start_sampler(devnet: Devnet) -> ProcessRecord:
    """Start the timeline sampler of ``devnet`` (``devnet.sampler``); its pid file is saved."""
    state = devnet.state
    sampler = spawn(
        SAMPLER,
        [devnet.meta.python, "-m", SAMPLER_MODULE, "--state-dir", str(state.root)],
        state.log_path(SAMPLER),
    )
    state.save_record(sampler)
    return sampler


def up(
    topology_path: str | Path,
    state_dir: str | Path = ".devnet",
    *,
    genesis_delay_s: float | None = None,
    timeout_s: float = 60.0,
    node_command: Sequence[str] | None = None,
    python: str = sys.executable,
    on_event: Callable[[UpEvent], None] | None = None,
    monitoring: bool = False,
) -> Devnet:
    """Start the devnet of ``topology_path`` with its state in ``state_dir``; return it once
    every node is healthy and has all its peers (DevnetError otherwise, nothing left running).
    With ``monitoring`` also Prometheus, Alertmanager, the webhook receiver and HAProxy (their
    ports checked with the others, their configs and binaries before anything starts).

    ``node_command`` replaces ``python -m bitcell_sim.node`` (it gets ``--config PATH``
    appended), so any node implementation honouring that contract can be fronted.
    """
    topology = load_topology(topology_path)
    delay_s = topology.devnet.genesis_delay_s if genesis_delay_s is None else genesis_delay_s
    if delay_s < 0:
        raise DevnetError(f"genesis delay {delay_s!r} s must be >= 0")
    if timeout_s <= 0:
        raise DevnetError(f"timeout {timeout_s!r} s must be > 0")
    reserved = reserved_name_problems(topology.node_names)
    if reserved:
        raise DevnetError(
            f"node name(s) {', '.join(map(repr, reserved))} are reserved by the devnet "
            f"(emulator, chaos, throttle-*, or names with '/')"
        )

    def emit(stage: str, done: int, total: int, detail: str = "") -> None:
        if on_event is not None:
            on_event(UpEvent(stage, done, total, detail))

    state = StateDir(state_dir)
    with state.lock():
        running = find_running(state)
        if running:
            names = ", ".join(f"{n} (pid {r.pid})" for n, r in sorted(running.items()))
            raise DevnetError(
                f"a devnet is already running from {state.root}: {names}; stop it first with "
                f"'bitcell-sim devnet down --state-dir {state.root}'"
            )
        services = tuple(monitoring_port_owners(topology)) if monitoring else ()
        plan = plan_devnet(topology, services=services)
        emit("ports", 0, 1, f"checking {len(plan.ports())} ports")
        check_ports_free(plan)
        emit("ports", 1, 1)

        _prepare_folder(state)
        state.topology_path.write_text(dump_topology(topology), encoding="utf-8")
        state.write_token()
        state.write_p2p_keys(topology.node_names)
        write_links_file(state.links_path, link_specs(plan, topology.general.seed))
        meta = DevnetMeta(
            name=topology.general.name,
            topology_source=str(Path(topology_path).absolute()),
            host=plan.host,
            genesis_time_unix_s=0.0,  # set just before the nodes start
            control_url=f"http://{plan.host}:{plan.control_port}",
            created_unix_s=time.time(),
            python=python,
            node_command=tuple(node_command or default_node_command(python)),
        )
        state.write_meta(meta)
        devnet = Devnet(state, topology, meta)
        files = prepare_monitoring(devnet) if monitoring else None
        try:
            emit("emulator", 0, 1, f"{len(plan.links)} links")
            start_emulator(devnet)
            emit("emulator", 1, 1)

            meta = dataclasses.replace(meta, genesis_time_unix_s=time.time() + delay_s)
            state.write_meta(meta)
            devnet = Devnet(state, topology, meta)
            sampler = start_sampler(devnet)
            for index, node in enumerate(topology.node_names):
                devnet.write_node_config(node)
                devnet.start_node(node)
                emit("nodes", index + 1, len(topology.node_names), node)

            def ready(progress: ReadyProgress) -> None:
                emit("ready", progress.ready, progress.total, ", ".join(progress.waiting_for))

            devnet.wait_ready(timeout_s=timeout_s, on_progress=ready)
            if not is_running(sampler):
                raise DevnetError(
                    devnet.describe_failure(SAMPLER, "the timeline sampler exited during start-up")
                )
            if files is not None:
                total = len(MONITORING_PROCESSES)
                emit("monitoring", 0, total, MONITORING_PROCESSES[0])
                start_monitoring(
                    devnet, files, on_ready=lambda done, name: emit("monitoring", done, total, name)
                )
        except BaseException:
            stop_recorded(state, grace_s=2.0)
            raise
    return devnet
