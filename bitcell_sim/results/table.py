"""The summary of a run as rich terminal tables.

:func:`summary_tables` renders a :func:`~bitcell_sim.results.summary.summarize` dict as up to
three ``rich.table.Table`` objects: the headline predictions, the faults (recovery and
reconvergence) and the expectations with PASS/FAIL. The CLI prints them; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

from bitcell_sim.results.summary import FAIL, PASS


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


def _number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _percentiles(dist: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    return " / ".join(_seconds(dist.get(k)) for k in keys)


def headline_table(summary: Mapping[str, Any]) -> Table:
    blocks = summary["blocks"]
    txs = summary["transactions"]
    put = summary["throughput"]
    pool = summary["pool"]
    table = Table(title=f"{summary['topology']}: headline figures", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    interval = blocks["interval_s"]
    table.add_row(
        "block interval mean / p50",
        f"{_seconds(interval['mean'])} / {_seconds(interval['p50'])}",
    )
    table.add_row(
        "block propagation p50 / p95 / p99 / max",
        _percentiles(summary["block_propagation_clear_s"], ("p50", "p95", "p99", "max")),
    )
    if summary["block_propagation_s"]["count"] != summary["block_propagation_clear_s"]["count"]:
        table.add_row(
            "  … including blocks around faults",
            _percentiles(summary["block_propagation_s"], ("p50", "p95", "p99", "max")),
        )
    table.add_row(
        "confirmation latency p50 / p95 / p99",
        _percentiles(summary["confirmation_latency_s"], ("p50", "p95", "p99")),
    )
    table.add_row(
        "confirmed TPS (load window / steady state)",
        f"{_number(put['confirmed_tps'])} / {_number(put['steady_state_confirmed_tps'])}",
    )
    table.add_row(
        "offered TPS / capacity TPS",
        f"{_number(put['offered_tps'])} / {_number(put['capacity_tps'])}",
    )
    reasons = ", ".join(f"{k}: {v:,}" for k, v in txs["rejected_by_reason"].items()) or "none"
    table.add_row(
        "submitted / accepted / confirmed",
        f"{txs['submitted']:,} / {txs['accepted']:,} / {txs['confirmed']:,}",
    )
    table.add_row("rejection rate (by reason)", f"{txs['rejection_rate'] * 100:.2f} % ({reasons})")
    table.add_row(
        "pool peak (node)", f"{pool['peak']:,} of {pool['capacity']:,} ({pool['peak_node']})"
    )
    first = pool["first_rejection_after_load_start_s"]
    estimate = pool["fill_estimate_s"]
    table.add_row(
        "first 'pool full' after load start (estimate)",
        f"{_seconds(first)} ({_seconds(estimate)})",
    )
    table.add_row(
        "blocks produced / orphaned / forks",
        f"{blocks['produced']:,} / {blocks['orphaned']:,} / {blocks['forks']:,}",
    )
    return table


def faults_table(summary: Mapping[str, Any]) -> Table | None:
    faults = summary["faults"]
    if not faults:
        return None
    table = Table(title="faults", title_justify="left")
    for column in ("kind", "target", "window", "back at tip after end", "one tip after end"):
        table.add_column(column, justify="right" if "after" in column else "left")
    for fault in faults:
        table.add_row(
            fault["kind"],
            fault["target"],
            f"{fault['start_s']:g}-{fault['end_s']:g} s"
            if fault["end_s"] is not None
            else f"{fault['start_s']:g} s-, still in force",
            _seconds(fault["recovery_s"]) if fault["recovery_s"] is not None else "never",
            (
                _seconds(fault["reconvergence_s"])
                if fault["reconvergence_s"] is not None
                else "never"
            ),
        )
    return table


def expectations_table(summary: Mapping[str, Any]) -> Table | None:
    rows = summary["expectations"]
    if not rows:
        return None
    table = Table(title="expectations", title_justify="left")
    for column in ("expectation", "limit", "value", "result"):
        table.add_column(column, justify="left" if column == "expectation" else "right")
    for row in rows:
        unit = row["unit"]
        style = {PASS: "green", FAIL: "bold red"}.get(row["status"], "yellow")
        suffix = f" {unit}" if unit and unit != "s" else ""
        table.add_row(
            row["name"],
            f"{_expectation_value(row['limit'], unit)}{suffix}",
            f"{_expectation_value(row['value'], unit)}{suffix}",
            f"[{style}]{row['status']}[/]",
        )
    return table


def _expectation_value(value: float | None, unit: str) -> str:
    if unit == "s":
        return _seconds(value)
    return _number(value, 1 if unit else 3)


def summary_tables(summary: Mapping[str, Any]) -> list[Table]:
    """The tables to print for a summary, in order."""
    tables = [headline_table(summary), faults_table(summary), expectations_table(summary)]
    return [t for t in tables if t is not None]
