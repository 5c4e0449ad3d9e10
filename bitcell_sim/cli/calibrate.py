"""``bitcell-sim calibrate [TOPOLOGY] [--write]``: this machine's node costs as topology values.

Measures the node code (:mod:`bitcell_sim.node.calibrate`) and prints the
``protocol.processing`` mapping; with ``--write`` it replaces that mapping in TOPOLOGY (the
rest of the file, comments included, is kept) and checks that the file still loads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from bitcell_sim.cli.common import console, err_console
from bitcell_sim.errors import TopologyError
from bitcell_sim.node.calibrate import Calibration, calibrate
from bitcell_sim.topology import load_topology, parse_topology
from bitcell_sim.topology.units import format_duration


def processing_line(calibration: Calibration) -> str:
    """The flow mapping for ``protocol.processing``, each value rounded to 3 digits."""
    parts = []
    for key, seconds in calibration.processing().items():
        microseconds = float(f"{seconds * 1e6:.3g}")
        parts.append(f"{key}: {format_duration(microseconds / 1e6)}")
    return "processing: {" + ", ".join(parts) + "}"


_SECTION = re.compile(r"^(?P<name>[A-Za-z_]+):")


def replace_processing(text: str, line: str) -> str:
    """``text`` with ``protocol.processing`` set to ``line`` (added when the file has none)."""
    lines = text.splitlines()
    protocol = next((i for i, t in enumerate(lines) if t.rstrip() == "protocol:"), None)
    if protocol is None:
        return text.rstrip("\n") + f"\n\nprotocol:\n  {line}\n"
    end = next((i for i in range(protocol + 1, len(lines)) if _SECTION.match(lines[i])), len(lines))
    for i in range(protocol + 1, end):
        match = re.match(r"^(\s+)processing:", lines[i])
        if match is None:
            continue
        indent = match.group(1)
        stop = i + 1  # a block mapping continues on deeper-indented lines
        while stop < end and (
            not lines[stop].strip() or len(lines[stop]) - len(lines[stop].lstrip()) > len(indent)
        ):
            stop += 1
        while stop > i + 1 and not lines[stop - 1].strip():
            stop -= 1  # blank lines after the mapping stay
        lines[i:stop] = [indent + line]
        return "\n".join(lines) + "\n"
    lines.insert(protocol + 1, "  " + line)
    return "\n".join(lines) + "\n"


def calibrate_command(
    topology: Annotated[
        Path | None,
        typer.Argument(
            help="Topology to write the values into (with --write).", show_default=False
        ),
    ] = None,
    write: Annotated[
        bool, typer.Option("--write", help="Replace protocol.processing in TOPOLOGY.")
    ] = False,
) -> None:
    """Measure this machine's node costs and print them as protocol.processing values."""
    if write and topology is None:
        raise typer.BadParameter("--write needs a TOPOLOGY file", param_hint="--write")
    if topology is not None:
        load_topology(topology)  # a broken file fails before minutes of measuring
    calibration = calibrate(lambda step: err_console.print(f"measuring {step} …", highlight=False))
    line = processing_line(calibration)
    console.print(line, highlight=False, soft_wrap=True)  # one line, to paste as it is
    if write and topology is not None:
        updated = replace_processing(topology.read_text(encoding="utf-8"), line)
        try:
            parse_topology(updated, source=str(topology))
        except TopologyError as exc:
            raise TopologyError(exc.problems, f"{topology} after calibration") from None
        topology.write_text(updated, encoding="utf-8")
        err_console.print(f"wrote protocol.processing into {topology}", highlight=False)
