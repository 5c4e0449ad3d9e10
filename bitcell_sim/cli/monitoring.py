"""``bitcell-sim monitoring render|predict``: the monitoring files of a topology, and what the
stack does in a run.

``render TOPOLOGY OUTDIR`` writes prometheus.yml, alerts.yml, alertmanager.yml, haproxy.cfg and
grafana-dashboard.json and (unless ``--no-check``) holds each to its real tool; ``predict RUN``
prints the alert and front-door prediction of a run folder beside the pages it recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bitcell_sim.cli.common import console
from bitcell_sim.monitoring import (
    Window,
    alert_rules,
    check_monitoring,
    measured_pages_of_run,
    pages_side_by_side,
    predict_run,
    prom_duration,
    render_monitoring,
)
from bitcell_sim.monitoring.timing import ALERTS_FILE
from bitcell_sim.topology import load_topology

app = typer.Typer(
    help="Prometheus, Alertmanager and HAProxy around a network.", no_args_is_help=True
)


@app.command()
def render(
    topology: Annotated[Path, typer.Argument(help="Topology YAML file.", show_default=False)],
    outdir: Annotated[Path, typer.Argument(help="Folder for the files.", show_default=False)],
    check: Annotated[
        bool, typer.Option(help="Check every file with promtool, amtool and haproxy -c.")
    ] = True,
) -> None:
    """Write the monitoring files of TOPOLOGY into OUTDIR (and check them with the real tools)."""
    resolved = load_topology(topology)
    files = render_monitoring(resolved, outdir)
    for path in files.all():
        console.print(f"wrote {path}", highlight=False)
    rules = alert_rules(resolved)
    console.print(
        f"{len(rules)} alert rules: "
        + ", ".join(f"{r.name} ({prom_duration(r.for_s)})" for r in rules),
        highlight=False,
        soft_wrap=True,
    )
    if check:
        for result in check_monitoring(files):
            console.print(f"[green]ok[/] {' '.join(result.argv[:3])}", highlight=False)


def _window(window: Window | None) -> str:
    return "-" if window is None else f"{window.earliest_s:.1f}-{window.latest_s:.1f}"


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="A run folder (model or measured).")],
) -> None:
    """When each alert of RUN's node timeline fires, pages and resolves, and the front door's
    error windows; beside the pages its alerts.jsonl holds, if it has one (seconds since
    genesis)."""
    prediction = predict_run(run)
    measured = measured_pages_of_run(run) if (run / ALERTS_FILE).exists() else ()
    table = Table(title=f"alerts of {run.name}: predicted" + (" and measured" if measured else ""))
    columns = ["alert", "node / region", "fires", "condition", "firing", "page", "resolved"]
    columns += ["inhibited", "measured page", "in window"] if measured else ["inhibited"]
    for column in columns:
        table.add_column(column)
    rows = pages_side_by_side(prediction.alerts, measured)
    shown = {id(r.predicted) for r in rows}
    muted = [p for p in prediction.alerts if id(p) not in shown and p.fires != "no"]
    for row in rows:
        p, m = row.predicted, row.measured
        where = ", ".join(row.labels.values()) or "network"
        cells = [row.alert, where]
        if p is None:
            cells += ["-"] * 6
        else:
            cells += [p.fires, _window(p.condition), _window(p.firing), _window(p.page)]
            cells += [_window(p.resolved), p.inhibited if p.inhibited_by is None else
                      f"{p.inhibited} ({p.inhibited_by})"]  # fmt: skip
        if measured:
            paged = "-" if m is None or m.paged_s is None else f"{m.paged_s:.1f}"
            within = row.page_within_prediction
            cells += [paged, "-" if within is None else ("yes" if within else "[red]no[/]")]
        table.add_row(*cells)
    for p in muted:
        cells = [p.alert, ", ".join(p.labels.values()) or "network", p.fires, _window(p.condition),
                 _window(p.firing), _window(p.page), _window(p.resolved),
                 f"{p.inhibited} ({p.inhibited_by})"]  # fmt: skip
        table.add_row(*cells, *(["-", "-"] if measured else []))
    console.print(table)
    if not prediction.alerts:
        console.print("no alert condition in the node timeline")
    for outage in prediction.front_door:
        console.print(
            f"front door: {outage.node} down at {outage.starts_s:.1f} s: {outage.error_share:.0%} "
            f"of calls fail (each after ~{outage.failed_call_s:g} s of retries) until "
            f"{_window(outage.ends)} s; back in rotation {_window(outage.rejoins)} s",
            highlight=False,
        )
