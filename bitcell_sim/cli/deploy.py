"""``bitcell-sim deploy export TOPOLOGY --format compose|kubernetes|shadow OUTDIR``.

Writes the topology as a docker-compose project, Kubernetes manifests (with Chaos Mesh
experiments) or a Shadow simulation into a new folder, then lists what it wrote.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from bitcell_sim.cli.common import console, err_console
from bitcell_sim.deploy import FORMATS, PROGRAMS, export_deployment, node_program
from bitcell_sim.deploy.export import parse_genesis_time
from bitcell_sim.errors import DeployError
from bitcell_sim.topology import load_topology

app = typer.Typer(help="Export the topology as a real deployment.", no_args_is_help=True)


@app.command("export")
def export_command(
    topology: Annotated[Path, typer.Argument(help="Topology YAML file.", show_default=False)],
    outdir: Annotated[Path, typer.Argument(help="Folder to write (new or empty).")],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help=f"One of {', '.join(FORMATS)}.")
    ] = "compose",
    program: Annotated[
        str,
        typer.Option(help=f"Node program: {' or '.join(PROGRAMS)} (the real BitCell node)."),
    ] = "devnet",
    image: Annotated[
        str | None,
        typer.Option(
            help="Node image (default bitcell-sim-node:<version>, or bitcell-node:latest)."
        ),
    ] = None,
    command: Annotated[
        str | None,
        typer.Option(
            help="Command template replacing the program's, e.g. 'my-node --port {p2p_port}'."
        ),
    ] = None,
    genesis_time: Annotated[
        str | None,
        typer.Option(help="Genesis, Unix seconds or ISO 8601 (default: 5 min from now)."),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="Kubernetes namespace (default bitcell-<name>).")
    ] = None,
    single_cluster: Annotated[
        bool,
        typer.Option(
            "--single-cluster", help="Kubernetes: every region in one cluster (affinity preferred)."
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Write into a non-empty folder.")] = False,
) -> None:
    """Export TOPOLOGY as a deployment of one format into OUTDIR."""
    if fmt not in FORMATS:
        raise DeployError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    topo = load_topology(topology)
    genesis = parse_genesis_time(genesis_time, time.time())
    result = export_deployment(
        topo,
        fmt,
        outdir,
        node_program(program, image, command),
        genesis,
        namespace=namespace,
        single_cluster=single_cluster,
        overwrite=force,
    )
    stamp = datetime.fromtimestamp(genesis, UTC).isoformat().replace("+00:00", "Z")
    console.print(
        f"[green]wrote[/] {len(result.files)} files of the {fmt} export of "
        f"{topo.general.name} to {outdir} (genesis {stamp}); see {outdir / 'README.md'}",
        highlight=False,
        soft_wrap=True,
    )
    for item in result.left_out:
        err_console.print(f"[yellow]warning:[/] not expressible in {fmt}: {item}", highlight=False)
