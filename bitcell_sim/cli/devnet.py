"""``bitcell-sim devnet up|status|logs|collect|down|restart-emulator|chaos|fault …``: run and
break a local devnet.

Thin wiring over :mod:`bitcell_sim.devnet` (start, inspect, collect a measured run folder, stop)
and :mod:`bitcell_sim.faults` (manual faults, the chaos scheduler, mending a dead emulator);
every command takes ``--state-dir`` (default .devnet) and warns when the emulator's token file is
readable by others.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from bitcell_sim.cli.common import console, err_console, raise_on_sigterm
from bitcell_sim.cli.report import report_run
from bitcell_sim.devnet import Devnet, UpEvent, devnet_status, down, read_peer_rtts, up
from bitcell_sim.devnet.collect import collect as collect_records
from bitcell_sim.devnet.collect import settled_until_s
from bitcell_sim.devnet.monitor import (
    MONITORING_PROCESSES,
    has_monitoring,
    monitoring_status,
    monitoring_urls,
)
from bitcell_sim.devnet.processes import tail_lines
from bitcell_sim.devnet.state import EMULATOR
from bitcell_sim.errors import DevnetError, FaultError
from bitcell_sim.faults import BACKENDS, ChaosScheduler, DevnetFaults, TimelineStep, describe
from bitcell_sim.results import RunFolder, new_run_id
from bitcell_sim.topology import load_topology
from bitcell_sim.topology.units import format_duration, parse_duration_arg

app = typer.Typer(help="Start, inspect, break and stop a local devnet.", no_args_is_help=True)
fault_app = typer.Typer(help="Apply and revert one fault by hand.", no_args_is_help=True)
app.add_typer(fault_app, name="fault")

StateDirOption = Annotated[
    Path, typer.Option("--state-dir", help="The devnet's state folder.", show_default=True)
]
DEFAULT_STATE_DIR = Path(".devnet")


def _open(state_dir: Path) -> Devnet:
    devnet = Devnet.open(state_dir)
    warning = devnet.state.token_warning()
    if warning:
        err_console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True, highlight=False)
    return devnet


_HEALTH_COLOURS = {"ok": "green", "starting": "yellow", "syncing": "yellow", "isolated": "red"}


def _duration(text: str, what: str) -> float:
    try:
        return parse_duration_arg(text)
    except ValueError as exc:
        raise DevnetError(f"{what}: {exc}") from None


# ---- up / status / logs / down ----------------------------------------------------------------


@app.command("up")
def up_command(
    topology: Annotated[Path, typer.Argument(help="Topology YAML file.", show_default=False)],
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    genesis_delay: Annotated[
        str | None,
        typer.Option(help="Genesis = now + this (default: the topology's devnet.genesis_delay)."),
    ] = None,
    timeout: Annotated[str, typer.Option(help="Give up if not all ready by then.")] = "60 s",
    monitoring: Annotated[
        bool,
        typer.Option(
            "--monitoring",
            help="Also start Prometheus, Alertmanager, the webhook receiver and HAProxy.",
        ),
    ] = False,
) -> None:
    """Start the topology's nodes and link emulator; wait until all are healthy and peered
    (with --monitoring, then the monitoring stack around them)."""
    delay_s = None if genesis_delay is None else _duration(genesis_delay, "--genesis-delay")
    timeout_s = _duration(timeout, "--timeout")
    raise_on_sigterm()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[detail]}"),
        console=err_console,
        transient=True,
    ) as progress:
        tasks: dict[str, TaskID] = {}
        labels = {
            "ports": "checking ports",
            "emulator": "link emulator",
            "nodes": "starting nodes",
            "ready": "healthy + peered",
            "monitoring": "monitoring",
        }

        def on_event(event: UpEvent) -> None:
            if event.stage not in tasks:
                tasks[event.stage] = progress.add_task(
                    labels.get(event.stage, event.stage), total=event.total, detail=""
                )
            progress.update(
                tasks[event.stage], completed=event.done, total=event.total, detail=event.detail
            )

        devnet = up(
            topology,
            state_dir,
            genesis_delay_s=delay_s,
            timeout_s=timeout_s,
            on_event=on_event,
            monitoring=monitoring,
        )
    status = devnet_status(devnet)
    table = Table(title=f"devnet {devnet.meta.name} is up ({state_dir})")
    for column in ("node", "region", "role", "RPC", "metrics", "height"):
        table.add_column(column, overflow="fold")
    for node in status.nodes:
        table.add_row(
            node.name,
            node.region,
            node.role,
            node.rpc_url,
            node.metrics_url,
            "-" if node.height is None else str(node.height),
        )
    console.print(table)
    if monitoring:
        _print_monitoring_urls(devnet)
    starts_in_s = devnet.meta.genesis_time_unix_s - time.time()
    when = f"in {starts_in_s:.1f} s" if starts_in_s > 0 else f"{-starts_in_s:.1f} s ago"
    console.print(
        f"genesis {when}; emulator control {devnet.meta.control_url} "
        f"(token in {devnet.state.token_path}); stop with: bitcell-sim devnet down"
        + (f" --state-dir {state_dir}" if state_dir != DEFAULT_STATE_DIR else ""),
        soft_wrap=True,
    )


def _print_monitoring_urls(devnet: Devnet) -> None:
    urls = monitoring_urls(devnet.topology, devnet.meta.host)
    console.print(
        f"monitoring: Prometheus {urls.prometheus}  Alertmanager {urls.alertmanager}  "
        f"RPC front door {urls.rpc}/rpc  HAProxy stats {urls.haproxy_stats}/  "
        f"notifications -> {devnet.state.alerts_path}",
        soft_wrap=True,
        highlight=False,
    )


def _print_monitoring(devnet: Devnet) -> None:
    """The stack's processes and URLs, Prometheus's targets, alerts and HAProxy's servers."""
    snapshot = monitoring_status(devnet)
    states = "  ".join(
        f"{name} {'[green]up[/]' if up else '[red]down[/]'}"
        for name, up in snapshot.processes.items()
    )
    console.print(f"monitoring: {states}", highlight=False)
    _print_monitoring_urls(devnet)
    for error in snapshot.errors:
        console.print(f"  [yellow]{error}[/]", soft_wrap=True)
    if snapshot.targets:
        table = Table(title="Prometheus targets")
        for column in ("job", "target", "health", "last error"):
            table.add_column(column, overflow="fold")
        for target in snapshot.targets:
            colour = "green" if target.health == "up" else "red"
            table.add_row(
                target.job,
                target.node or target.instance,
                f"[{colour}]{target.health}[/]",
                target.last_error,
            )
        console.print(table)
    alerts = sorted(snapshot.alerts, key=lambda a: (a.state != "firing", a.name))
    if not alerts and snapshot.processes.get("prometheus"):
        console.print("alerts: none pending or firing")
    for alert in alerts:
        where = ", ".join(
            f"{k}={v}" for k, v in sorted(alert.labels.items()) if k in ("node", "region", "peer")
        )
        colour = "red" if alert.state == "firing" else "yellow"
        console.print(
            f"  [{colour}]{alert.state}[/] {alert.name} {where} (since {alert.active_at})",
            highlight=False,
        )
    down_servers = [f"{b}/{s}: {st}" for (b, s), st in snapshot.servers.items() if st != "UP"]
    if snapshot.servers:
        console.print(
            f"HAProxy: {len(snapshot.servers) - len(down_servers)} of {len(snapshot.servers)} "
            "servers UP" + (f"; {', '.join(down_servers)}" if down_servers else ""),
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"webhook notifications: {snapshot.notifications}")


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def _peer_rtt_table(devnet: Devnet) -> Table:
    """Per directed peer link: RTT configured, in force (faults), and measured by the node."""
    table = Table(title="peer round trips (ms): Ping -> Pong measured by each node")
    columns = ["node", "peer", "configured", "in force", "measured", "last", "min", "n"]
    columns += ["error", "error %"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("node", "peer") else "right")
    for rtt in read_peer_rtts(devnet):
        m = rtt.measured
        error_s, error_pct = rtt.error_s, rtt.error_pct
        colour = "green" if rtt.within() else "red"
        error_ms = "-" if error_s is None else f"[{colour}]{error_s * 1000:+.1f}[/]"
        verdict = "-" if error_pct is None else f"[{colour}]{error_pct:+.1f}%[/]"
        if rtt.partitioned:
            verdict = "[yellow]partitioned[/]"
        table.add_row(
            rtt.node,
            rtt.peer,
            _ms(rtt.configured_rtt_s),
            _ms(rtt.in_force_rtt_s),
            _ms(None if m is None else m.ewma_s),
            _ms(None if m is None else m.last_s),
            _ms(None if m is None else m.min_s),
            "-" if m is None else str(m.samples),
            error_ms,
            verdict,
        )
    return table


@app.command()
def status(
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    peers: Annotated[
        bool,
        typer.Option(
            "--peers",
            help="Also show each node's measured round-trip time to each peer against the links.",
        ),
    ] = False,
) -> None:
    """Each node's process, chain, peers, phase, pool and sync; the emulator's live faults;
    the monitoring stack's URLs, target health and alerts (with --peers: the RTT each node
    measures to each peer against the links)."""
    devnet = _open(state_dir)
    snapshot = devnet_status(devnet)
    table = Table(title=f"devnet {snapshot.name}")
    columns = ("node", "region", "state", "health", "height", "tip", "peers", "phase", "pool")
    for column in (*columns, "sync"):
        table.add_column(column, overflow="fold")
    for node in snapshot.nodes:
        state = "[green]up[/]" if node.up else "[red]down[/]"
        if node.up and node.error:
            state = "[yellow]up, no answer[/]"
        health = node.health or "-"
        if node.health in _HEALTH_COLOURS:
            health = f"[{_HEALTH_COLOURS[node.health]}]{node.health}[/]"
        table.add_row(
            node.name,
            node.region,
            state,
            health,
            "-" if node.height is None else str(node.height),
            (node.tip_hash or "-")[:12],
            "-" if node.peers is None else str(node.peers),
            node.phase or "-",
            "-" if node.pool_size is None else str(node.pool_size),
            "-" if node.sync_pct is None else f"{node.sync_pct:.0f}%",
        )
    console.print(table)
    if snapshot.emulator_up:
        console.print("emulator: [green]up[/]", highlight=False)
    else:
        console.print(
            "emulator: [red]down[/]: every P2P link goes through it, so the nodes cannot reach "
            "each other (their chains fork); mend it with: bitcell-sim devnet restart-emulator"
            + (f" --state-dir {state_dir}" if state_dir != DEFAULT_STATE_DIR else ""),
            highlight=False,
            soft_wrap=True,
        )
    if snapshot.emulator_error:
        console.print(f"  [yellow]{snapshot.emulator_error}[/]", soft_wrap=True)
    for fault in snapshot.link_faults:
        parts = []
        if fault.partitioned:
            parts.append("partitioned")
        if fault.extra_latency_s > 0:
            parts.append(f"+{format_duration(fault.extra_latency_s)}")
        if fault.bandwidth_bps != fault.configured_bandwidth_bps:
            parts.append(f"bandwidth {fault.bandwidth_bps or 'unlimited'} bit/s")
        console.print(f"  link {fault.link}: {', '.join(parts)}", highlight=False)
    active = DevnetFaults(devnet).active()
    for item in active:
        console.print(f"  fault #{item.id} {item.kind} {item.target}", highlight=False)
    if has_monitoring(devnet):
        _print_monitoring(devnet)
    if peers:
        console.print(_peer_rtt_table(devnet))


@app.command()
def logs(
    name: Annotated[
        str,
        typer.Argument(
            help="A node name, 'emulator', or one of the monitoring stack's: "
            + ", ".join(MONITORING_PROCESSES)
            + ".",
            show_default=False,
        ),
    ],
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="Lines to show.")] = 40,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
) -> None:
    """Print the last lines of a node's (or the emulator's) log."""
    devnet = Devnet.open(state_dir)
    if name != EMULATOR and name not in MONITORING_PROCESSES:
        devnet.check_node(name)
    path = devnet.state.log_path(name)
    if not path.exists():
        raise DevnetError(f"no log for {name} yet ({path})")
    for line in tail_lines(path, lines):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if not follow:
        return
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            while True:
                chunk = handle.readline()
                if chunk:
                    console.print(
                        chunk.decode(errors="replace").rstrip("\n"),
                        markup=False,
                        highlight=False,
                        soft_wrap=True,
                    )
                else:
                    time.sleep(0.2)
    except KeyboardInterrupt:
        return


@app.command()
def collect(
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    since: Annotated[
        str | None,
        typer.Option(help="Start of the interval, in seconds since genesis (default 0)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="End of the interval since genesis (default: the last round end)."),
    ] = None,
    last: Annotated[
        str | None, typer.Option(help="The interval is this long, up to its end (not --since).")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option(help="Run folder name (default <network>-devnet-<UTC time>).")
    ] = None,
    results_dir: Annotated[Path, typer.Option(help="Where run folders are created.")] = Path(
        "results"
    ),
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Do not draw the plots.")] = False,
) -> None:
    """Write a measured run folder of the devnet's records in an interval (blocks, arrivals,
    node timeline; faults from the journal) and print its summary."""
    if since is not None and last is not None:
        raise DevnetError("give --since or --last, not both")
    devnet = Devnet.open(state_dir)
    until_s = settled_until_s(devnet) if until is None else _duration(until, "--until")
    since_s = 0.0 if since is None else _duration(since, "--since")
    if last is not None:
        since_s = max(until_s - _duration(last, "--last"), 0.0)
    folder = RunFolder.create(
        results_dir, run_id or new_run_id(devnet.topology, "devnet"), devnet.topology
    )
    collected = collect_records(devnet, folder, since_s=since_s, until_s=until_s)
    report_run(folder, plots=not no_plots)
    rows = ", ".join(f"{name} {count:,}" for name, count in collected.rows.items())
    console.print(
        f"collected {since_s:.1f}-{until_s:.1f} s since genesis ({rows}); run folder: "
        f"{folder.path}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("down")
def down_command(
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    purge: Annotated[bool, typer.Option(help="Also delete the state folder.")] = False,
    grace: Annotated[str, typer.Option(help="SIGTERM, then SIGKILL after this.")] = "5 s",
) -> None:
    """Stop exactly the processes the devnet started (by verified pid); idempotent."""
    result = down(state_dir, grace_s=_duration(grace, "--grace"), purge=purge)
    if result.stopped:
        console.print(
            f"stopped {len(result.stopped)} process(es): {', '.join(result.stopped)}",
            soft_wrap=True,
        )
    elif not result.found:
        console.print(f"no devnet in {result.state_dir}; nothing to stop")
    else:
        console.print(f"the devnet in {result.state_dir} is not running; nothing to stop")
    if result.purged:
        console.print(f"deleted {result.state_dir}")


@app.command("restart-emulator")
def restart_emulator(state_dir: StateDirOption = DEFAULT_STATE_DIR) -> None:
    """Start the link emulator again (stopping it first if it still runs), with the link faults
    in force; the nodes keep running and reconnect by themselves."""
    devnet = _open(state_dir)
    was_running = DevnetFaults(devnet).restart_emulator()
    console.print(
        f"link emulator {'restarted' if was_running else 'started again'} "
        f"({devnet.meta.control_url}); nodes reconnect within ~2 s"
    )


# ---- chaos ----------------------------------------------------------------------------------


@app.command()
def chaos(
    topology: Annotated[
        Path | None,
        typer.Argument(help="Take the faults from here (default: the devnet's own topology)."),
    ] = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    from_now: Annotated[
        bool, typer.Option(help="Count fault start times from now instead of from genesis.")
    ] = False,
    max_duration: Annotated[
        str | None, typer.Option(help="Stop (and revert) after this long at most.")
    ] = None,
    throttle_backend: Annotated[
        str, typer.Option(help=f"CPU throttle backend: auto, {', '.join(BACKENDS)}.")
    ] = "auto",
) -> None:
    """Play a topology's fault list on the running devnet; revert everything at the end."""
    devnet = _open(state_dir)
    faults_source = load_topology(topology).faults if topology else devnet.topology.faults
    if not faults_source:
        raise FaultError(f"{topology or devnet.state.topology_path} has no faults to play")
    limit_s = None if max_duration is None else _duration(max_duration, "--max-duration")
    injector = DevnetFaults(devnet, throttle_backend=throttle_backend)
    scheduler = ChaosScheduler(
        injector, faults_source, origin_unix_s=time.time() if from_now else None
    )
    last_s = max(f.end_s for f in faults_source)
    console.print(
        f"playing {len(faults_source)} fault(s) until t = {last_s:g} s after "
        f"{'now' if from_now else 'genesis'}; Ctrl-C reverts everything"
    )
    raise_on_sigterm()

    def on_step(offset_s: float, step: TimelineStep) -> None:
        console.print(
            f"t={offset_s:8.2f} s  {step.action:6}  {describe(step.fault)}", highlight=False
        )

    report = scheduler.run(max_duration_s=limit_s, on_step=on_step)
    for step in report.skipped:
        console.print(f"[yellow]skipped (already over):[/] {describe(step.fault)}")
    for error in report.errors:
        err_console.print(f"[red]error:[/] {error}", soft_wrap=True)
    if report.interrupted:
        console.print("interrupted: every applied fault was reverted")
    if report.errors:
        raise typer.Exit(1)


# ---- manual faults --------------------------------------------------------------------------


def _faults(state_dir: Path, backend: str = "auto") -> DevnetFaults:
    return DevnetFaults(_open(state_dir), throttle_backend=backend)


@fault_app.command()
def kill(node: str, state_dir: StateDirOption = DEFAULT_STATE_DIR) -> None:
    """SIGKILL a node (it stays down until 'restart')."""
    fault = _faults(state_dir).kill(node)
    console.print(f"fault #{fault.id}: killed {node}")


@fault_app.command()
def restart(node: str, state_dir: StateDirOption = DEFAULT_STATE_DIR) -> None:
    """Start a node again with its node.json and data dir."""
    started = _faults(state_dir).restart(node)
    console.print(f"restarted {node}" if started else f"{node} was already running")


@fault_app.command("region-down")
def region_down(region: str, state_dir: StateDirOption = DEFAULT_STATE_DIR) -> None:
    """SIGKILL every node of a region."""
    fault = _faults(state_dir).region_down(region)
    console.print(f"fault #{fault.id}: killed {', '.join(fault.nodes)}")


@fault_app.command("region-up")
def region_up(region: str, state_dir: StateDirOption = DEFAULT_STATE_DIR) -> None:
    """Start the nodes of a region again."""
    started = _faults(state_dir).region_up(region)
    console.print(f"started {', '.join(started) or 'nothing (all were running)'}")


@fault_app.command()
def partition(
    groups: Annotated[
        list[str],
        typer.Argument(
            help="Groups of comma-separated nodes/regions; one group: cut from the rest."
        ),
    ],
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Cut every link between the groups, in the emulator."""
    parsed = [[name.strip() for name in group.split(",") if name.strip()] for group in groups]
    fault = _faults(state_dir).partition(parsed)
    console.print(f"fault #{fault.id}: cut {len(fault.links)} directed link(s)")


@fault_app.command()
def heal(state_dir: StateDirOption = DEFAULT_STATE_DIR) -> None:
    """Undo every partition."""
    ids = _faults(state_dir).heal()
    console.print(f"healed {len(ids)} partition(s)")


@fault_app.command()
def latency(
    target: Annotated[str, typer.Argument(help="A node or region.")],
    amount: Annotated[
        str, typer.Argument(help="Extra one-way latency, e.g. '100 ms'; '0 ms' clears.")
    ],
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Add one-way latency to every link in and out of a node or region."""
    latency_s = _duration(amount, "latency")
    faults = _faults(state_dir)
    if latency_s == 0:
        ids = faults.clear_latency(target)
        console.print(f"removed {len(ids)} added latency fault(s) on {target}")
        return
    fault = faults.add_latency(target, latency_s)
    console.print(f"fault #{fault.id}: +{format_duration(latency_s)} on {len(fault.links)} link(s)")


@fault_app.command()
def throttle(
    node: str,
    share: Annotated[float, typer.Argument(help="CPU share of one core, in (0, 1].")],
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    backend: Annotated[str, typer.Option(help=f"auto, {', '.join(BACKENDS)}.")] = "auto",
) -> None:
    """Limit a node's CPU (cgroup quota where writable, else a SIGSTOP/SIGCONT duty cycle)."""
    fault = _faults(state_dir, backend).throttle(node, share)
    how = fault.throttles[0]["backend"] if fault.throttles else "?"
    console.print(f"fault #{fault.id}: {node} limited to {share:g} CPU ({how})")


@fault_app.command()
def unthrottle(node: str, state_dir: StateDirOption = DEFAULT_STATE_DIR) -> None:
    """Remove a node's CPU limit."""
    ids = _faults(state_dir).unthrottle(node)
    console.print(f"removed {len(ids)} throttle(s) on {node}")


@fault_app.command("list")
def list_faults(state_dir: StateDirOption = DEFAULT_STATE_DIR) -> None:
    """The faults in force."""
    active = _faults(state_dir).active()
    if not active:
        console.print("no active faults")
    for fault in active:
        age_s = time.time() - fault.applied_unix_s
        console.print(
            f"#{fault.id} {fault.kind} {fault.target} (for {age_s:.0f} s)", highlight=False
        )


@fault_app.command()
def revert(
    fault_id: Annotated[int | None, typer.Argument(help="Fault id (see 'fault list').")] = None,
    all_faults: Annotated[bool, typer.Option("--all", help="Revert every active fault.")] = False,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Undo one fault, or all of them."""
    faults = _faults(state_dir)
    if all_faults == (fault_id is not None):
        raise FaultError("give a fault id or --all (not both)")
    if all_faults:
        ids = faults.revert_all()
        console.print(f"reverted {len(ids)} fault(s)")
        return
    assert fault_id is not None
    started = faults.revert(fault_id)
    console.print(
        f"reverted fault #{fault_id}" + (f"; restarted {', '.join(started)}" if started else "")
    )
