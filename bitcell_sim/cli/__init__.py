"""The ``bitcell-sim`` command: the only place that prints, exits, and wires the parts together.

Each command group lives in its own module (``topology``, ``run``, ``sweep``, ``devnet``,
``monitoring``, ``load``, ``compare``, ``calibrate``, ``deploy``, ``validate``, ``chaos``,
``measure``);
:func:`main` (the console entry point) imports only the one named on the command line, so
``bitcell-sim run`` loads neither the devnet, the emulator nor the load side. Every
:class:`~bitcell_sim.errors.BitcellSimError` ends as a short message on stderr and exit 1.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import typer

from bitcell_sim.cli.common import run_app

# Command name -> (module, attribute, a group of subcommands or one command).
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "topology": ("bitcell_sim.cli.topology", "app", True),
    "devnet": ("bitcell_sim.cli.devnet", "app", True),
    "monitoring": ("bitcell_sim.cli.monitoring", "app", True),
    "deploy": ("bitcell_sim.cli.deploy", "app", True),
    "load": ("bitcell_sim.cli.load", "load", False),
    "run": ("bitcell_sim.cli.run", "run", False),
    "sweep": ("bitcell_sim.cli.sweep", "sweep_command", False),
    "compare": ("bitcell_sim.cli.compare", "compare_command", False),
    "calibrate": ("bitcell_sim.cli.calibrate", "calibrate_command", False),
    "validate": ("bitcell_sim.cli.validate", "validate_command", False),
    "chaos": ("bitcell_sim.cli.chaos", "chaos_command", False),
    "measure": ("bitcell_sim.cli.measure", "measure_command", False),
}


def build_app(names: Sequence[str] | None = None) -> typer.Typer:
    """The command with the groups ``names`` (default: all) registered."""
    app = typer.Typer(
        name="bitcell-sim",
        help="Predict, then measure, what a multi-region BitCell network does.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    @app.callback()
    def _group() -> None:
        """Predict, then measure, what a multi-region BitCell network does."""

    for name in names or COMMANDS:
        module, attribute, is_group = COMMANDS[name]
        target = getattr(importlib.import_module(module), attribute)
        if is_group:
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
    return app


def main() -> None:
    wanted = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in COMMANDS else None
    run_app(build_app([wanted] if wanted else None))


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole command, for tests and embedding
        return build_app()
    raise AttributeError(name)
