"""Summary plots of a sweep: each headline figure against a grid key, with 95 % bands.

:func:`write_sweep_plots` takes the per-point intervals of a sweep (one row per point and figure:
``runs``, ``mean``, ``ci_low``, ``ci_high``, as the model's ``point_intervals`` makes them) and
draws one PNG per figure: the mean against the grid key with the most numeric values, one line
per combination of the other keys that vary, the 95 % interval over replications shaded (none
with one run per point). A sweep with no numeric key gets one bar per point with the interval
as an error bar.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

#: What each plotted figure is called on its axis.
PLOTTED = {
    "steady_confirmed_tps": "confirmed TPS (steady state)",
    "confirmation_p95_s": "p95 confirmation latency (s)",
    "rejection_rate": "rejected share of submitted txs",
    "forks": "forks (heights with two blocks)",
    "block_propagation_p95_s": "p95 block propagation (s)",
    "recovery_s": "worst fault recovery (s)",
}
#: Lines drawn at most per plot (the rest are left out and said so in the legend).
MAX_LINES = 10
_DPI = 110


def _numeric(values: pd.Series) -> bool:
    return bool(values.map(lambda v: isinstance(v, int | float) and not isinstance(v, bool)).all())


def x_key(points: pd.DataFrame, keys: list[str]) -> str | None:
    """The grid key to put on the x axis: numeric with the most values (None if none)."""
    numeric = [k for k in keys if _numeric(points[k]) and points[k].nunique() > 1]
    return max(numeric, key=lambda k: points[k].nunique(), default=None)


def write_sweep_plots(points: pd.DataFrame, keys: list[str], folder: Path) -> list[Path]:
    """One PNG per figure of :data:`PLOTTED` that the sweep measured; returns their paths."""
    written = []
    x = x_key(points, keys)
    for figure_name, label in PLOTTED.items():
        rows = points[points["figure"] == figure_name]
        if rows.empty:
            continue
        figure = Figure(figsize=(8, 4.5))
        axes = figure.add_subplot()
        if x is None:
            names = [", ".join(f"{k}={r[k]}" for k in keys) for _, r in rows.iterrows()]
            spread = (rows["ci_high"] - rows["mean"]).fillna(0).to_numpy()
            axes.bar(range(len(rows)), rows["mean"], yerr=spread, capsize=3)
            axes.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize="small")
        else:
            others = [k for k in keys if k != x and rows[k].nunique() > 1]
            groups = list(rows.groupby(others, sort=False)) if others else [((), rows)]
            for i, (values, line) in enumerate(groups[:MAX_LINES]):
                line = line.sort_values(x)
                values = values if isinstance(values, tuple) else (values,)
                name = ", ".join(f"{k}={v}" for k, v in zip(others, values, strict=True))
                drawn = axes.plot(line[x], line["mean"], marker="o", label=name or None)
                if line["ci_low"].notna().any():
                    axes.fill_between(
                        line[x].to_numpy(dtype=float),
                        line["ci_low"].to_numpy(dtype=float),
                        line["ci_high"].to_numpy(dtype=float),
                        color=drawn[0].get_color(),
                        alpha=0.2,
                        linewidth=0,
                    )
                if i == MAX_LINES - 1 and len(groups) > MAX_LINES:
                    axes.plot([], [], " ", label=f"({len(groups) - MAX_LINES} more not drawn)")
            axes.set_xlabel(x)
            if others:
                axes.legend(fontsize="x-small")
        runs = int(np.nanmax(rows["runs"])) if len(rows) else 0
        band = "mean and 95 % interval" if runs > 1 else "one run per point"
        axes.set_ylabel(label)
        axes.set_title(f"{label}: {band} over {runs} replication(s)", fontsize="medium")
        axes.grid(alpha=0.3)
        figure.tight_layout()
        path = folder / f"{figure_name}.png"
        figure.savefig(path, dpi=_DPI)
        written.append(path)
    return written
