"""``bitcell-sim compare PREDICTED_RUN MEASURED_RUN``: the comparison of two sets of run folders.

Each side is a run folder or a folder of run folders (the seeds of a prediction). Writes
``report.html``, ``report.md``, ``comparison.json`` and ``plots/`` into ``--out`` (default
``MEASURED_RUN/compare``), prints the verdict table, and with ``--check`` exits 2 unless the
overall verdict is PASS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bitcell_sim.cli.common import console, err_console
from bitcell_sim.results.compare import FAIL, PASS, Comparison, compare
from bitcell_sim.results.report import TABLE_HEADER, table_cells, write_report
from bitcell_sim.results.runs import read_runs

#: Exit status of ``--check`` when the overall verdict is not PASS.
NOT_PASSED_EXIT = 2
_STYLE = {PASS: "green", FAIL: "bold red"}


def verdict_tables(comparison: Comparison) -> list[Table]:
    """The verdict table, one rich table per group of metrics."""
    tables = []
    for group, rows in comparison.groups():
        # Escaped: rich would read the ``[us-east→ap-southeast]`` of a region pair's metric (or
        # the ``[fault 0, node]`` of a recovery) as markup and print the name without it.
        cells = [[escape(cell) for cell in table_cells(row)] for row in rows]
        table = Table(title=group, title_justify="left")
        for header in TABLE_HEADER:
            left = header in ("metric", "note")
            table.add_column(
                header,
                justify="left" if left else "right",
                no_wrap=header != "note",
                # The name tells the rows apart: on a narrow terminal the figures give way.
                min_width=max(len(row[0]) for row in cells) if header == "metric" else None,
            )
        for row, row_cells in zip(rows, cells, strict=True):
            style = _STYLE.get(row.verdict, "yellow")
            table.add_row(*row_cells[:6], f"[{style}]{row_cells[6]}[/]", row_cells[7])
        tables.append(table)
    return tables


def print_comparison(comparison: Comparison) -> None:
    for table in verdict_tables(comparison):
        console.print(table)
    counts = comparison.counts()
    style = _STYLE.get(comparison.verdict, "yellow")
    console.print(
        f"verdict: [{style}]{comparison.verdict}[/] "
        f"({counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['UNKNOWN']} UNKNOWN)",
        highlight=False,
    )


def compare_command(
    predicted_run: Annotated[
        Path, typer.Argument(help="Predicted run folder, or a folder of run folders (seeds).")
    ],
    measured_run: Annotated[
        Path, typer.Argument(help="Measured run folder, or a folder of run folders.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Report folder (default MEASURED_RUN/compare).", show_default=False),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 2 unless the overall verdict is PASS.")
    ] = False,
) -> None:
    """Compare two sets of run folders metric by metric, with errors, tolerances and verdicts."""
    predicted = read_runs(predicted_run)
    measured = read_runs(measured_run)
    comparison = compare(predicted, measured)
    folder = out or measured_run / "compare"
    files = write_report(comparison, predicted, measured, folder)
    print_comparison(comparison)
    err_console.print(f"report: {files.html} (and {files.markdown.name})", highlight=False)
    if check and comparison.verdict != PASS:
        raise typer.Exit(NOT_PASSED_EXIT)
