"""``bitcell-sim monitoring render TOPOLOGY OUTDIR``: the monitoring files of a topology.

Writes prometheus.yml, alerts.yml, alertmanager.yml, haproxy.cfg and grafana-dashboard.json
(:mod:`bitcell_sim.monitoring`), then, unless ``--no-check``, holds each to its real tool
(promtool, amtool, haproxy -c).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bitcell_sim.cli.common import console
from bitcell_sim.monitoring import alert_rules, check_monitoring, prom_duration, render_monitoring
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
