"""``bitcell-sim load TOPOLOGY``: drive the running devnet's RPC with Locust and summarise.

Checks that the devnet in ``--state-dir`` is up and runs the topology's network, creates the run
folder (the devnet's resolved topology with TOPOLOGY's workload, ``--tps``/``--duration``
applied as ``run`` applies them), starts Locust headless on it (``--workers N``: a master and N
workers), bounded in time, and prints the summary. A stalled chain ends with exit 1.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from bitcell_sim.cli.common import console, err_console
from bitcell_sim.devnet import Devnet
from bitcell_sim.errors import LoadError
from bitcell_sim.load.output import LOAD_DIR, SUMMARY_FILE
from bitcell_sim.load.plan import SENDERS, parse_seconds, plan_from_topology
from bitcell_sim.load.runner import STARTUP_MARGIN_S, LocustProcess, locust_argv
from bitcell_sim.load.summary import format_summary
from bitcell_sim.loopback import free_port
from bitcell_sim.results import RunFolder, new_run_id
from bitcell_sim.topology import apply_overrides, load_topology


def load(
    topology: Annotated[Path, typer.Argument(help="Topology YAML (its workload is run).")],
    tps: Annotated[float | None, typer.Option(help="Target TPS (default: the workload).")] = None,
    duration: Annotated[
        str | None, typer.Option(help="Load duration, e.g. 60 or '2 min' (default: workload).")
    ] = None,
    users: Annotated[
        int | None, typer.Option(help="Fixed Locust user count (default: enough for the rate).")
    ] = None,
    senders: Annotated[
        str | None, typer.Option(help="fresh or funded (default: workload).")
    ] = None,
    drain: Annotated[
        str | None,
        typer.Option(help="Wait for confirmations this long after the load (default 3 rounds)."),
    ] = None,
    watch_node: Annotated[
        str | None,
        typer.Option(help="Node the watcher follows, or 'all' (default: all)."),
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Locust worker processes (0: one local process).", min=0)
    ] = 0,
    run_id: Annotated[str | None, typer.Option(help="Run folder name.")] = None,
    results_dir: Annotated[Path, typer.Option(help="Where run folders go.")] = Path("results"),
    state_dir: Annotated[Path, typer.Option(help="The devnet's state folder.")] = Path(".devnet"),
) -> None:
    """Run TOPOLOGY's workload against the running devnet with Locust; print the summary."""
    if senders is not None and senders not in SENDERS:
        raise LoadError(f"--senders {senders!r} must be one of {', '.join(SENDERS)}")
    wanted = load_topology(topology)
    devnet = Devnet.open(state_dir)
    if devnet.meta.name != wanted.general.name:
        raise LoadError(
            f"the devnet in {state_dir} runs network {devnet.meta.name!r}, "
            f"not {wanted.general.name!r} of {topology}"
        )
    down = [n for n in devnet.node_names if not devnet.health(n).ok]
    if len(down) == len(devnet.node_names):
        raise LoadError(
            f"the devnet in {state_dir} is not up (no node answers /health); start it with "
            f"'bitcell-sim devnet up {topology} --state-dir {state_dir}'"
        )
    if down:
        err_console.print(f"[yellow]warning:[/] nodes not healthy: {', '.join(down)}")

    # The devnet's nodes and ports (it may run on shifted ports), TOPOLOGY's workload, with the
    # overrides in the run folder's topology: the model replays that very schedule.
    merged = devnet.topology.model_copy(update={"workload": wanted.workload})
    duration_s = parse_seconds(duration) if duration is not None else None
    drain_s = parse_seconds(drain) if drain is not None else None
    merged, changes = apply_overrides(merged, tps=tps, load_duration_s=duration_s)
    for change in changes:
        err_console.print(f"override {change}", highlight=False)
    plan = plan_from_topology(merged, users=users, drain_s=drain_s, watch_node=watch_node)
    folder = RunFolder.create(results_dir, run_id or new_run_id(merged, "load"), merged)
    folder.write_json(
        "meta.json",
        {
            "kind": "load",
            "topology_source": str(topology),
            "devnet_state_dir": str(state_dir),
            "genesis_time_unix_s": devnet.meta.genesis_time_unix_s,
            "created_unix_s": time.time(),
        },
    )
    topology_path = folder.path / "topology.yaml"
    common = {
        "topology": topology_path,
        "users": users,
        "senders": senders,
        "genesis_unix_s": devnet.meta.genesis_time_unix_s,
        "drain_s": drain_s,
        "watch_node": watch_node,
    }
    load_dir = folder.path / LOAD_DIR
    processes: list[LocustProcess] = []
    port = free_port() if workers else None
    main_argv = locust_argv(
        folder.path,
        role="master" if workers else "local",
        master_port=port,
        expect_workers=workers or None,
        **common,  # type: ignore[arg-type]
    )
    console.print(
        f"load: {plan.profile.mean_tps:.1f} TPS for {plan.duration_s:.0f} s (drain up to "
        f"{plan.drain_s:.0f} s) on {len(plan.endpoints)} nodes of {merged.general.name}; "
        f"run folder {folder.path}"
    )
    bound_s = plan.duration_s + plan.drain_s + STARTUP_MARGIN_S
    try:
        processes.append(LocustProcess(main_argv, load_dir / "locust.log"))
        for i in range(workers):
            argv = locust_argv(folder.path, role="worker", master_port=port, topology=topology_path)
            processes.append(LocustProcess(argv, load_dir / f"locust-worker-{i}.log"))
        status = processes[0].wait(bound_s)
        for worker in processes[1:]:
            worker.wait(30.0)
    finally:
        for process in processes:
            process.stop()
    summary_path = load_dir / SUMMARY_FILE
    if not summary_path.exists():
        raise LoadError(
            f"Locust exited with status {status} and wrote no summary; "
            f"log {processes[0].log_path}:\n{processes[0].log_tail()}"
        )
    summary = json.loads(summary_path.read_text())
    console.print(format_summary(summary), highlight=False, soft_wrap=True)
    console.print(f"records, summary and Locust's reports: {load_dir}")
    if summary.get("stall"):
        raise LoadError(summary["stall"]["message"])
    if status != 0:
        raise LoadError(f"Locust exited with status {status}; log {processes[0].log_path}")
    sys.stdout.flush()
