"""The ``bitcell-sim`` command: the only place that prints, exits, and wires the parts together.

Each command group lives in its own module (``topology``, ``run``, ``sweep``, ``devnet``,
``load``, ``compare``, ``deploy``) and is registered on :data:`app` here. :func:`main` is the
console entry point; every :class:`~bitcell_sim.errors.BitcellSimError` ends as a short message
on stderr and exit 1.
"""

from __future__ import annotations

import typer

from bitcell_sim.cli import compare as compare_command
from bitcell_sim.cli import deploy as deploy_commands
from bitcell_sim.cli import devnet as devnet_commands
from bitcell_sim.cli import load as load_commands
from bitcell_sim.cli import run as run_command
from bitcell_sim.cli import sweep as sweep_command
from bitcell_sim.cli import topology as topology_commands
from bitcell_sim.cli.common import run_app

app = typer.Typer(
    name="bitcell-sim",
    help="Predict, then measure, what a multi-region BitCell network does.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(topology_commands.app, name="topology")
app.add_typer(devnet_commands.app, name="devnet")
app.add_typer(deploy_commands.app, name="deploy")
app.command("load")(load_commands.load)
app.command("run")(run_command.run)
app.command("sweep")(sweep_command.sweep_command)
app.command("compare")(compare_command.compare_command)


def main() -> None:
    run_app(app)
