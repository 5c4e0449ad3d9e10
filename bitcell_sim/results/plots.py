"""Plots of a run (PNG, drawn without a display), from its record tables.

:func:`write_plots` writes into a folder: ``height.png`` (chain height per node over time, fault
windows shaded), ``confirmation_cdf.png`` (the CDF of confirmation latency) and ``pool.png``
(pool size per node over time, with the capacity). Figures are built on
``matplotlib.figure.Figure`` directly, so no global pyplot state is touched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bitcell_sim.results.window import RunWindow
from bitcell_sim.topology import Topology

# One colour per fault kind for the shaded windows.
_FAULT_COLOURS = {
    "node_down": "tab:red",
    "region_down": "tab:purple",
    "partition": "tab:orange",
    "added_latency": "tab:olive",
    "cpu_throttle": "tab:cyan",
}
_DPI = 110


def _per_node(timeline: pa.Table, column: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    nodes = timeline.column("node").to_pylist()
    times = np.asarray(timeline.column("time_s").to_numpy(zero_copy_only=False))
    values = np.asarray(timeline.column(column).to_numpy(zero_copy_only=False))
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    names = np.asarray(nodes, dtype=object)
    for node in dict.fromkeys(nodes):
        mine = names == node
        out[node] = (times[mine], values[mine])
    return out


def shade_faults(axes: Axes, window: RunWindow) -> None:
    seen: set[str] = set()
    for fault in window.faults:
        target = "partition" if fault.kind == "partition" else fault.target
        label = f"{fault.kind} ({target})"
        axes.axvspan(
            fault.start_s,
            window.end_s if fault.end_s is None else fault.end_s,
            color=_FAULT_COLOURS.get(fault.kind, "grey"),
            alpha=0.15,
            label=None if label in seen else label,
        )
        seen.add(label)


def height_plot(topology: Topology, window: RunWindow, timeline: pa.Table, path: Path) -> Path:
    figure = Figure(figsize=(9, 4.5))
    axes = figure.add_subplot()
    for node, (times, heights) in _per_node(timeline, "height").items():
        axes.step(times, heights, where="post", label=node, linewidth=1)
    shade_faults(axes, window)
    axes.set_xlabel("time since genesis (s)")
    axes.set_ylabel("chain height")
    axes.set_title(f"{topology.general.name}: height per node")
    _legend(axes, len(topology.nodes) + len(window.faults))
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI)
    return path


def confirmation_cdf_plot(topology: Topology, transactions: pa.Table, path: Path) -> Path:
    submit = np.asarray(transactions.column("submit_s").to_numpy(zero_copy_only=False), float)
    confirm = np.asarray(transactions.column("confirm_s").to_numpy(zero_copy_only=False), float)
    done = ~np.isnan(confirm)
    latency = np.sort(confirm[done] - submit[done])
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    if latency.size:
        axes.plot(latency, np.arange(1, latency.size + 1) / latency.size, linewidth=1.5)
        for q, style in ((0.5, ":"), (0.95, "--"), (0.99, "-.")):
            value = float(np.quantile(latency, q))
            axes.axvline(value, color="grey", linestyle=style, linewidth=1, label=f"p{q * 100:g}")
        axes.legend(loc="lower right", fontsize="small")
    else:
        axes.text(0.5, 0.5, "no confirmed transactions", ha="center", transform=axes.transAxes)
    axes.set_xlabel("confirmation latency (s)")
    axes.set_ylabel("fraction of confirmed txs")
    axes.set_ylim(0, 1.02)
    axes.set_title(f"{topology.general.name}: confirmation latency CDF ({latency.size:,} txs)")
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI)
    return path


def pool_plot(topology: Topology, window: RunWindow, timeline: pa.Table, path: Path) -> Path:
    figure = Figure(figsize=(9, 4.5))
    axes = figure.add_subplot()
    for node, (times, sizes) in _per_node(timeline, "pool_size").items():
        axes.plot(times, sizes, label=node, linewidth=1)
    axes.axhline(
        topology.protocol.tx_pool_capacity,
        color="black",
        linestyle="--",
        linewidth=1,
        label="capacity",
    )
    shade_faults(axes, window)
    axes.set_xlabel("time since genesis (s)")
    axes.set_ylabel("txs in pool")
    axes.set_title(f"{topology.general.name}: pool size per node")
    _legend(axes, len(topology.nodes) + len(window.faults) + 1)
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI)
    return path


def _legend(axes: Axes, entries: int) -> None:
    # Large networks get no legend: 56 entries would hide the curves.
    if entries <= 16:
        axes.legend(loc="upper left", fontsize="x-small", ncol=2)


def write_plots(
    topology: Topology,
    tables: dict[str, pa.Table],
    folder: Path,
    window: RunWindow | None = None,
) -> list[Path]:
    """Write the three plots of a run into ``folder``; returns their paths. ``window`` gives
    the fault windows to shade (default: the topology's, as a prediction holds them)."""
    window = window or RunWindow.of_topology(topology)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        height_plot(topology, window, tables["node_timeline"], folder / "height.png"),
        confirmation_cdf_plot(topology, tables["transactions"], folder / "confirmation_cdf.png"),
        pool_plot(topology, window, tables["node_timeline"], folder / "pool.png"),
    ]
