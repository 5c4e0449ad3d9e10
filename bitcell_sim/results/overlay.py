"""Overlay plots of a comparison: the predicted side against the measured side (PNG).

:func:`overlay_figures` draws (and :func:`write_overlay_plots` saves into a folder): the CDFs
of confirmation latency and of block propagation (the predicted runs' mean curve with their
band, the measured curve), height lag behind the best tip per node over time with fault windows
shaded (one panel per side), pool size, offered / accepted / confirmed TPS over time, and a
per-region-pair propagation heatmap for each side. Figures use ``matplotlib.figure.Figure``
directly (no pyplot state).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bitcell_sim.results.plots import shade_faults
from bitcell_sim.results.runs import RunRecords
from bitcell_sim.results.summary import propagation_samples

PREDICTED_COLOUR, MEASURED_COLOUR = "tab:blue", "tab:orange"
_DPI = 100
_QUANTILES = np.linspace(0.0, 1.0, 201)

#: The plot files, in report order, with their captions.
PLOTS = {
    "confirmation_cdf.png": "Confirmation latency: CDF, predicted (mean and band over runs) "
    "vs measured",
    "propagation_cdf.png": "Block propagation (blocks away from faults): CDF, predicted vs "
    "measured",
    "height_lag.png": "Blocks behind the best tip, per node, fault windows shaded",
    "pool.png": "Pool size (largest of any node) over time",
    "tps.png": "Offered, accepted and confirmed TPS over time (per round)",
    "propagation_heatmap.png": "Block propagation p50 by region pair (producer → receiver)",
}


def _floats(values: object) -> npt.NDArray[np.float64]:
    return np.asarray(values, dtype=np.float64)


def _confirmation_latencies(run: RunRecords) -> npt.NDArray[np.float64]:
    txs = run.tables["transactions"]
    submit = _floats(txs.column("submit_s").to_numpy(zero_copy_only=False))
    confirm = _floats(txs.column("confirm_s").to_numpy(zero_copy_only=False))
    done = ~np.isnan(confirm)
    return confirm[done] - submit[done]


def _propagation(run: RunRecords) -> npt.NDArray[np.float64]:
    samples = propagation_samples(
        run.topology, run.tables["blocks"], run.tables["block_arrivals"], run.window
    )
    return _floats([delay for _, _, delay, clear in samples if clear])


def _cdf_plot(
    axes: Axes,
    predicted: Sequence[npt.NDArray[np.float64]],
    measured: Sequence[npt.NDArray[np.float64]],
    scale: float,
) -> None:
    for values, colour, label in (
        (predicted, PREDICTED_COLOUR, "predicted"),
        (measured, MEASURED_COLOUR, "measured"),
    ):
        present = [v * scale for v in values if v.size]
        if not present:
            continue
        curves = np.array([np.quantile(v, _QUANTILES) for v in present])
        axes.plot(
            curves.mean(axis=0),
            _QUANTILES,
            color=colour,
            label=f"{label} ({len(present)} run{'s' if len(present) > 1 else ''})",
        )
        if len(present) > 1:
            axes.fill_betweenx(
                _QUANTILES,
                curves.min(axis=0),
                curves.max(axis=0),
                color=colour,
                alpha=0.2,
                linewidth=0,
            )
    axes.set_ylabel("fraction")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="lower right")
    else:
        axes.text(0.5, 0.5, "no data on either side", ha="center", transform=axes.transAxes)


def _lag_panel(axes: Axes, run: RunRecords, title: str) -> None:
    timeline = run.tables["node_timeline"]
    axes.set_title(title, fontsize=10)
    if not timeline.num_rows:
        axes.text(0.5, 0.5, "no timeline", ha="center", transform=axes.transAxes)
        return
    times = _floats(timeline.column("time_s").to_numpy(zero_copy_only=False))
    heights = _floats(timeline.column("height").to_numpy(zero_copy_only=False))
    up = np.asarray(timeline.column("up").to_numpy(zero_copy_only=False), dtype=bool)
    nodes = np.asarray(timeline.column("node").to_pylist(), dtype=object)
    sample_times, index = np.unique(times, return_inverse=True)
    best = np.zeros(sample_times.size)
    np.maximum.at(best, index[up], heights[up])
    for node in dict.fromkeys(nodes.tolist()):
        mine = nodes == node
        order = np.argsort(times[mine], kind="stable")
        lag = best[index[mine]][order] - heights[mine][order]
        axes.step(times[mine][order], lag, where="post", label=node, linewidth=1)
    shade_faults(axes, run.window)
    axes.set_ylabel("blocks behind")
    axes.grid(alpha=0.3)


def _pool_series(run: RunRecords) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    timeline = run.tables["node_timeline"]
    times = _floats(timeline.column("time_s").to_numpy(zero_copy_only=False))
    sizes = _floats(timeline.column("pool_size").to_numpy(zero_copy_only=False))
    sample_times, index = np.unique(times, return_inverse=True)
    peak = np.zeros(sample_times.size)
    np.maximum.at(peak, index, sizes)
    return sample_times, peak


def _rate(
    times: npt.NDArray[np.float64], bin_s: float, end_s: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    edges = np.arange(0.0, end_s + bin_s, bin_s)
    counts, _ = np.histogram(times[~np.isnan(times)], bins=edges)
    return edges[:-1], counts / bin_s


def _tps_panel(axes: Axes, run: RunRecords, style: str, side: str) -> None:
    txs = run.tables["transactions"]
    if not txs.num_rows:
        return
    submit = _floats(txs.column("submit_s").to_numpy(zero_copy_only=False))
    accepted = np.asarray(txs.column("accepted").to_numpy(zero_copy_only=False), dtype=bool)
    confirm = _floats(txs.column("confirm_s").to_numpy(zero_copy_only=False))
    round_s = run.topology.protocol.round_s
    end_s = float(np.nanmax(np.concatenate([submit, confirm])))
    for values, colour, what in (
        (submit, "tab:grey", "offered"),
        (submit[accepted], "tab:green", "accepted"),
        (confirm, "tab:red", "confirmed"),
    ):
        t, rate = _rate(values, round_s, end_s)
        axes.step(t, rate, where="post", linestyle=style, color=colour, label=f"{what} ({side})")


def _heatmap_panel(figure: Figure, axes: Axes, run: RunRecords, title: str) -> None:
    topology = run.topology
    regions = [r for r in topology.regions if topology.nodes_in_region(r)]
    region = {n: spec.region for n, spec in topology.nodes.items()}
    cells: dict[tuple[str, str], list[float]] = {}
    for producer, node, delay, clear in propagation_samples(
        topology, run.tables["blocks"], run.tables["block_arrivals"], run.window
    ):
        if clear:
            cells.setdefault((region[producer], region[node]), []).append(delay)
    grid = np.full((len(regions), len(regions)), np.nan)
    for (a, b), values in cells.items():
        grid[regions.index(a), regions.index(b)] = np.median(values) * 1000
    image = axes.imshow(grid, cmap="viridis")
    for i in range(len(regions)):
        for j in range(len(regions)):
            text = "—" if np.isnan(grid[i, j]) else f"{grid[i, j]:.0f}"
            axes.text(j, i, text, ha="center", va="center", color="white", fontsize=9)
    axes.set_xticks(range(len(regions)), regions, rotation=30, ha="right", fontsize=8)
    axes.set_yticks(range(len(regions)), regions, fontsize=8)
    axes.set_xlabel("receiving region")
    axes.set_ylabel("producing region")
    axes.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes, label="p50 ms", shrink=0.8)


def overlay_figures(
    predicted: Sequence[RunRecords], measured: Sequence[RunRecords]
) -> dict[str, Figure]:
    """Every plot of :data:`PLOTS`, keyed by its file name, in that order."""
    reference, observed = predicted[0], measured[0]
    figures: dict[str, Figure] = {}

    figure = Figure(figsize=(8, 4.2))
    axes = figure.add_subplot()
    _cdf_plot(
        axes,
        [_confirmation_latencies(r) for r in predicted],
        [_confirmation_latencies(r) for r in measured],
        1.0,
    )
    axes.set_xlabel("confirmation latency (s)")
    figures["confirmation_cdf.png"] = figure

    figure = Figure(figsize=(8, 4.2))
    axes = figure.add_subplot()
    _cdf_plot(
        axes, [_propagation(r) for r in predicted], [_propagation(r) for r in measured], 1000.0
    )
    axes.set_xlabel("block propagation (ms)")
    figures["propagation_cdf.png"] = figure

    figure = Figure(figsize=(10, 6), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    _lag_panel(top, reference, f"predicted ({reference.name})")
    _lag_panel(bottom, observed, f"measured ({observed.name})")
    bottom.set_xlabel("time since genesis (s)")
    handles, labels = top.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside right center", fontsize=8)
    figures["height_lag.png"] = figure

    figure = Figure(figsize=(8, 4))
    axes = figure.add_subplot()
    for runs, colour, side in (
        (predicted, PREDICTED_COLOUR, "predicted"),
        (measured, MEASURED_COLOUR, "measured"),
    ):
        for k, run in enumerate(runs):
            if run.tables["node_timeline"].num_rows:
                t, peak = _pool_series(run)
                axes.step(
                    t,
                    peak,
                    where="post",
                    color=colour,
                    alpha=1.0 if k == 0 else 0.3,
                    label=side if k == 0 else None,
                )
    axes.axhline(
        reference.topology.protocol.tx_pool_capacity, color="black", linestyle=":", label="capacity"
    )
    axes.set_xlabel("time since genesis (s)")
    axes.set_ylabel("txs in pool")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    figures["pool.png"] = figure

    figure = Figure(figsize=(9, 4.2))
    axes = figure.add_subplot()
    _tps_panel(axes, reference, "--", "predicted")
    _tps_panel(axes, observed, "-", "measured")
    axes.set_xlabel("time since genesis (s)")
    axes.set_ylabel("TPS")
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="upper left", fontsize=8, ncol=2)
    figures["tps.png"] = figure

    figure = Figure(figsize=(11, 4.6), layout="constrained")
    left, right = figure.subplots(1, 2)
    _heatmap_panel(figure, left, reference, f"predicted ({reference.name})")
    _heatmap_panel(figure, right, observed, f"measured ({observed.name})")
    figures["propagation_heatmap.png"] = figure

    return {name: figures[name] for name in PLOTS}


def write_overlay_plots(
    predicted: Sequence[RunRecords], measured: Sequence[RunRecords], folder: Path
) -> list[Path]:
    """Draw every plot of :data:`PLOTS` into ``folder``; returns their paths in that order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, figure in overlay_figures(predicted, measured).items():
        path = folder / name
        figure.savefig(path, dpi=_DPI, bbox_inches="tight")
        paths.append(path)
    return paths
