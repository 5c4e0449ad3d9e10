"""``bitcell-sim load TOPOLOGY``: drive the running devnet's RPC with Locust; a measured run.

Checks that the devnet in ``--state-dir`` is up and runs the topology's network, creates the run
folder (the devnet's resolved topology with TOPOLOGY's workload, ``--tps``/``--duration``
applied as ``run`` applies them), starts Locust headless as a subprocess (``--workers N``: a
master and N workers), bounded in time, then collects the devnet's records of the load window
into the folder (blocks, arrivals, node timeline, the txs confirmed from the arrivals, the
monitoring's pages) and prints the run's summary with the load's own figures. A stalled chain
ends with the stall's message and exit 1, after the records are written. ``--via-lb`` sends
everything through the devnet's HAProxy front door instead of to the nodes. ``--endpoints FILE``
loads a deployment instead (TOPOLOGY as deployed, the file's RPC URLs) and measures its records
from outside while Locust runs, as ``measure`` does.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from bitcell_sim.cli.common import console, err_console, raise_on_sigterm
from bitcell_sim.cli.measure import print_measured, watch_options
from bitcell_sim.cli.report import report_run
from bitcell_sim.devnet import Devnet
from bitcell_sim.devnet.collect import collect, wait_for_round_end
from bitcell_sim.devnet.monitor import HAPROXY, monitoring_urls
from bitcell_sim.errors import LoadError
from bitcell_sim.load.output import LOAD_DIR, SUMMARY_FILE, read_outputs
from bitcell_sim.load.plan import SENDERS, parse_seconds, plan_from_host, plan_from_topology
from bitcell_sim.load.runner import STARTUP_MARGIN_S, LocustProcess, locust_argv
from bitcell_sim.load.summary import format_load_figures, format_summary, load_figures
from bitcell_sim.loopback import free_port
from bitcell_sim.measure import DEFAULT_POLL_INTERVAL_S, Watch, write_measured_run
from bitcell_sim.results import RunFolder, new_run_id
from bitcell_sim.topology import Topology, apply_overrides, load_topology


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
    via_lb: Annotated[
        bool,
        typer.Option(
            "--via-lb",
            help="Send everything through the HAProxy front door of 'devnet up --monitoring', "
            "so the load goes on across node failures.",
        ),
    ] = False,
    records: Annotated[
        bool,
        typer.Option(
            help="Collect the devnet's records into the run folder (--no-records: only the "
            "load's own view, in load/)."
        ),
    ] = True,
    endpoints_file: Annotated[
        Path | None,
        typer.Option(
            "--endpoints",
            help="Load a deployment instead of the devnet: each node's rpc and metrics URL "
            "(YAML/JSON, as for measure); its records are measured from outside meanwhile.",
        ),
    ] = None,
    interval: Annotated[
        str, typer.Option(help="With --endpoints: the tip poll interval of the measurement.")
    ] = f"{DEFAULT_POLL_INTERVAL_S:g}",
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Do not draw the plots.")] = False,
) -> None:
    """Run TOPOLOGY's workload against the running devnet (or the deployment of --endpoints)
    with Locust; write a measured run folder and print its summary."""
    if senders is not None and senders not in SENDERS:
        raise LoadError(f"--senders {senders!r} must be one of {', '.join(SENDERS)}")
    wanted = load_topology(topology)
    if endpoints_file is not None:
        if via_lb:
            raise LoadError("--via-lb is the devnet's HAProxy front door; not with --endpoints")
        _, watch, genesis_source = watch_options(endpoints_file, wanted, interval, None)
        deployment = _Target(wanted, watch.genesis_unix_s, None, watch, genesis_source)
    else:
        deployment = _devnet_target(wanted, topology, state_dir, via_lb, watch_node)
    _run(deployment, topology, endpoints_file, records, no_plots, tps=tps, duration=duration,
         users=users, senders=senders, drain=drain, watch_node=watch_node, workers=workers,
         run_id=run_id, results_dir=results_dir, state_dir=state_dir)  # fmt: skip


@dataclass(frozen=True)
class _Target:
    """What the load goes to: the topology as deployed (nodes, ports), its genesis, and either
    the devnet (its records collected) or a watch on the deployment's endpoints."""

    topology: Topology
    genesis_unix_s: float
    devnet: Devnet | None
    watch: Watch | None = None
    genesis_source: str = ""
    front_door: str | None = None


def _devnet_target(
    wanted: Topology, topology: Path, state_dir: Path, via_lb: bool, watch_node: str | None
) -> _Target:
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
    front_door = None
    if via_lb:
        if watch_node is not None:
            raise LoadError(
                "--watch-node does not apply with --via-lb (every call goes to HAProxy)"
            )
        if not devnet.is_running(HAPROXY):
            raise LoadError(
                f"--via-lb needs the HAProxy front door, which the devnet in {state_dir} does not "
                f"run; start it with 'bitcell-sim devnet up {topology} --monitoring'"
            )
        front_door = monitoring_urls(devnet.topology, devnet.meta.host).rpc
    # The devnet's nodes and ports (it may run on shifted ports), TOPOLOGY's workload.
    merged = devnet.topology.model_copy(update={"workload": wanted.workload})
    return _Target(merged, devnet.meta.genesis_time_unix_s, devnet, front_door=front_door)


def _watch_during(watch: Watch, locust: LocustProcess, bound_s: float, round_s: float) -> int:
    """Watch the deployment while Locust runs and until the round end after it exits (so its
    last blocks are settled), at most ``bound_s``; Locust's exit status."""
    deadline_unix_s = time.time() + bound_s
    settle_unix_s: list[float] = []

    def done() -> bool:
        if locust.process.poll() is None:
            return False
        if not settle_unix_s:
            rounds = math.floor((time.time() - watch.genesis_unix_s) / round_s) + 1
            settle_unix_s.append(
                watch.genesis_unix_s + rounds * round_s + 2 * watch.poll_interval_s
            )
        return time.time() >= settle_unix_s[0]

    asyncio.run(watch.run_until(deadline_unix_s + round_s, done))
    return locust.wait(max(deadline_unix_s - time.time(), 1.0))


def _run(
    target: _Target,
    topology: Path,
    endpoints_file: Path | None,
    records: bool,
    no_plots: bool,
    *,
    tps: float | None,
    duration: str | None,
    users: int | None,
    senders: str | None,
    drain: str | None,
    watch_node: str | None,
    workers: int,
    run_id: str | None,
    results_dir: Path,
    state_dir: Path,
) -> None:
    # The overrides go into the run folder's topology: the model replays that very schedule.
    devnet, front_door, watch = target.devnet, target.front_door, target.watch
    duration_s = parse_seconds(duration) if duration is not None else None
    drain_s = parse_seconds(drain) if drain is not None else None
    merged, changes = apply_overrides(target.topology, tps=tps, load_duration_s=duration_s)
    for change in changes:
        err_console.print(f"override {change}", highlight=False)
    if front_door is not None:
        plan = plan_from_host(front_door, topology=merged, users=users, drain_s=drain_s)
    else:
        rpc_urls = (
            None if watch is None else {n: u.rpc_url for n, u in watch.endpoints.nodes.items()}
        )
        plan = plan_from_topology(
            merged, users=users, drain_s=drain_s, watch_node=watch_node, rpc_urls=rpc_urls
        )
    folder = RunFolder.create(results_dir, run_id or new_run_id(merged, "load"), merged)
    folder.write_json(
        "meta.json",
        {
            "kind": "load",
            "topology_source": str(topology),
            "devnet_state_dir": None if devnet is None else str(state_dir),
            "endpoints_file": None if endpoints_file is None else str(endpoints_file),
            "via": front_door or "nodes",
            "genesis_time_unix_s": target.genesis_unix_s,
            "created_unix_s": time.time(),
        },
    )
    topology_path = folder.path / "topology.yaml"
    common = {
        "topology": topology_path,
        "users": users,
        "senders": senders,
        "genesis_unix_s": target.genesis_unix_s,
        "drain_s": drain_s,
        "watch_node": watch_node,
        "host": front_door,
        "endpoints": endpoints_file,
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
        f"{plan.drain_s:.0f} s) "
        + (f"through HAProxy {front_door}" if front_door else f"on {len(plan.endpoints)} nodes")
        + f" of {merged.general.name}; "
        f"run folder {folder.path}"
    )
    bound_s = plan.duration_s + plan.drain_s + STARTUP_MARGIN_S
    raise_on_sigterm()  # SIGTERM ends Locust too (the finally below); SIGKILL: see LocustProcess
    try:
        processes.append(LocustProcess(main_argv, load_dir / "locust.log"))
        for i in range(workers):
            argv = locust_argv(
                folder.path, role="worker", master_port=port, topology=topology_path,
                endpoints=endpoints_file,
            )  # fmt: skip
            processes.append(LocustProcess(argv, load_dir / f"locust-worker-{i}.log"))
        if watch is not None and records:
            status = _watch_during(watch, processes[0], bound_s, merged.protocol.round_s)
        else:
            status = processes[0].wait(bound_s)
        for worker in processes[1:]:
            worker.wait(30.0)
    finally:
        for process in processes:
            process.stop()
    if not (folder.path / SUMMARY_FILE).exists():
        raise LoadError(
            f"Locust exited with status {status} and wrote no summary; "
            f"log {processes[0].log_path}:\n{processes[0].log_tail()}"
        )
    transactions, summary, load_meta = read_outputs(folder.path)
    if records:
        # Collect once the last block the load saw has settled everywhere.
        start_s = summary["run_start_s"]
        window = {
            "since_s": start_s,
            "transactions": transactions,
            "load_s": (start_s, start_s + summary["duration_s"]),
            "peak_tps": max(max(s["tps_from"], s["tps_to"]) for s in summary["stages"]),
        }
        meta = {"topology_source": str(topology), "via": front_door or "nodes", "load": load_meta}
        if devnet is not None:
            collect(devnet, folder, until_s=wait_for_round_end(devnet), meta=meta, **window)
            measured = None
        else:
            assert watch is not None and endpoints_file is not None
            meta.update(endpoints_file=str(endpoints_file), genesis_source=target.genesis_source)
            measured = write_measured_run(merged, watch, folder, meta=meta, **window)
        report_run(folder, {"load": load_figures(summary)}, plots=not no_plots)
        if measured is not None:
            print_measured(measured, target.genesis_source)
        console.print(format_load_figures(summary), highlight=False, soft_wrap=True)
        console.print(f"run folder: {folder.path} (the load's own view and Locust's: {load_dir})")
    else:
        console.print(format_summary(summary), highlight=False, soft_wrap=True)
        console.print(f"records, summary and Locust's reports: {load_dir}")
    if summary.get("stall"):
        raise LoadError(summary["stall"]["message"])
    if status != 0:
        raise LoadError(f"Locust exited with status {status}; log {processes[0].log_path}")
    sys.stdout.flush()
