"""What every command shares: the consoles, common options, errors as a message and exit 1,
signals.

:func:`run_app` runs a Typer app so that a :class:`~bitcell_sim.errors.BitcellSimError` prints
as ``error: …`` on stderr with exit status 1 and no traceback.
:func:`raise_on_sigterm` makes SIGTERM unwind like Ctrl-C, so a command that started processes
stops them on its way out.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from bitcell_sim.errors import BitcellSimError

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns; tables read better wide.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)


#: Options shared by the commands that write run folders.
ResultsDirOption = Annotated[Path, typer.Option(help="Where run folders are created.")]
NoPlotsOption = Annotated[bool, typer.Option("--no-plots", help="Do not draw the PNG plots.")]


def raise_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so cleanup code runs as on Ctrl-C."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def run_app(app: typer.Typer) -> None:
    try:
        app(standalone_mode=True)
    except BitcellSimError as exc:
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
