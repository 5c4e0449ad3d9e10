"""``bitcell-sim load TOPOLOGY``: drive the running devnet's RPC with Locust; a measured run.

Checks that the devnet in ``--state-dir`` is up and runs the topology's network, creates the run
folder (the devnet's resolved topology with TOPOLOGY's workload, ``--tps``/``--duration``
applied as ``run`` applies them), starts Locust headless as a subprocess (``--workers N``: a
master and N workers), bounded in time, then collects the devnet's records of the load window
into the folder (blocks, arrivals, node timeline, the txs confirmed from the arrivals, the
monitoring's pages) and prints the run's summary with the load's own figures. A stalled chain
ends with the stall's message and exit 1, after the records are written. ``--via-lb`` sends
everything through the devnet's HAProxy front door instead of to the nodes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from bitcell_sim.cli.common import console, err_console, raise_on_sigterm
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
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Do not draw the plots.")] = False,
) -> None:
    """Run TOPOLOGY's workload against the running devnet with Locust; write a measured run
    folder and print its summary."""
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

    # The devnet's nodes and ports (it may run on shifted ports), TOPOLOGY's workload, with the
    # overrides in the run folder's topology: the model replays that very schedule.
    merged = devnet.topology.model_copy(update={"workload": wanted.workload})
    duration_s = parse_seconds(duration) if duration is not None else None
    drain_s = parse_seconds(drain) if drain is not None else None
    merged, changes = apply_overrides(merged, tps=tps, load_duration_s=duration_s)
    for change in changes:
        err_console.print(f"override {change}", highlight=False)
    if front_door is not None:
        plan = plan_from_host(front_door, topology=merged, users=users, drain_s=drain_s)
    else:
        plan = plan_from_topology(merged, users=users, drain_s=drain_s, watch_node=watch_node)
    folder = RunFolder.create(results_dir, run_id or new_run_id(merged, "load"), merged)
    folder.write_json(
        "meta.json",
        {
            "kind": "load",
            "topology_source": str(topology),
            "devnet_state_dir": str(state_dir),
            "via": front_door or "nodes",
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
        "host": front_door,
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
            argv = locust_argv(folder.path, role="worker", master_port=port, topology=topology_path)
            processes.append(LocustProcess(argv, load_dir / f"locust-worker-{i}.log"))
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
        collect(
            devnet,
            folder,
            since_s=start_s,
            until_s=wait_for_round_end(devnet),
            transactions=transactions,
            load_s=(start_s, start_s + summary["duration_s"]),
            peak_tps=max(max(s["tps_from"], s["tps_to"]) for s in summary["stages"]),
            meta={
                "topology_source": str(topology),
                "via": front_door or "nodes",
                "load": load_meta,
            },
        )
        report_run(folder, {"load": load_figures(summary)}, plots=not no_plots)
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
