"""Finishing a measured run folder: its summary, its plots and the tables the CLI prints.

:func:`report_run` summarizes a run folder from its tables and ``meta.json`` (the same summary a
prediction gets), adds ``extra`` figures (a load's own), writes ``summary.json`` and the plots
and prints the tables; ``devnet collect`` and ``load`` end with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bitcell_sim.cli.common import console, err_console
from bitcell_sim.results import RunFolder, summarize
from bitcell_sim.results.table import summary_tables


def report_run(
    folder: RunFolder, extra: Mapping[str, Any] | None = None, plots: bool = True
) -> dict[str, Any]:
    """Summarize, write and print the run in ``folder``; return the summary."""
    topology, tables, window = folder.topology(), folder.read_tables(), folder.window()
    summary = summarize(topology, tables, window=window)
    summary.update(extra or {})
    folder.write_json("summary.json", summary)
    if plots:
        from bitcell_sim.results.plots import write_plots  # matplotlib: only when drawing

        write_plots(topology, tables, folder.subfolder("plots"), window)
    for table in summary_tables(summary):
        console.print(table)
    for warning in folder.read_json("meta.json").get("warnings", ()):
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    return summary
