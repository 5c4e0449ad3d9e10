"""The comparison report: one self-contained HTML file and a markdown summary beside it.

:func:`write_report` writes into a folder ``report.html`` (verdict table first, then the overlay
plots embedded as PNG data, no network access needed), ``report.md`` (the same table, the plots
as files in ``plots/``) and ``comparison.json`` (every row, machine-readable). Numbers are
formatted by :func:`format_value` in the metric's unit (ms below a second).
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bitcell_sim.results.compare import FAIL, PASS, UNKNOWN, Comparison, MetricComparison
from bitcell_sim.results.metrics import GROUP_HEADLINE, GROUP_PAIRS
from bitcell_sim.results.overlay import PLOTS, write_overlay_plots
from bitcell_sim.results.runs import RunRecords

REPORT_HTML, REPORT_MD, COMPARISON_JSON = "report.html", "report.md", "comparison.json"
#: The page style and verdict colours of every HTML report (chaos verdicts use them too).
COLOURS = {PASS: "#1a7f37", FAIL: "#cf222e", UNKNOWN: "#9a6700"}


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    markdown: Path
    json: Path
    plots: tuple[Path, ...]


def format_value(value: float | None, unit: str) -> str:
    """A figure for the table: "—" for no data, "never" for inf, seconds below 1 s as ms."""
    if value is None:
        return "—"
    if math.isinf(value):
        return "never"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if abs(value) < 1 else f"{value:.3f} s"
    if unit == "":
        return f"{value:.4g}"
    if unit == "TPS":
        return f"{value:.2f} TPS"
    return f"{value:g}" if float(value).is_integer() else f"{value:.1f}"


def _band(row: MetricComparison) -> str:
    side = row.predicted
    if side.runs <= 1 or side.low is None or side.high is None:
        return ""
    return f"{format_value(side.low, row.unit)} – {format_value(side.high, row.unit)}"


def _relative(row: MetricComparison) -> str:
    rel = row.relative_error
    if rel is None:
        return "—" if row.error is None else format_value(row.error, row.unit)
    return f"{rel * 100:+.1f} %".replace("-", "−")


def _tolerance(row: MetricComparison) -> str:
    parts = []
    if row.tolerance.relative:
        parts.append(f"{row.tolerance.relative * 100:g} %")
    if row.tolerance.absolute:
        absolute = format_value(row.tolerance.absolute, row.unit).replace(" ", " ")
        parts.append(f"±{absolute}" if not row.tolerance.relative else absolute)
    return " or ".join(parts) if parts else "exact"


def table_cells(row: MetricComparison) -> list[str]:
    return [
        row.name,
        format_value(row.predicted.mean, row.unit),
        _band(row),
        format_value(row.measured.mean, row.unit),
        _relative(row),
        _tolerance(row),
        row.verdict,
        row.note,
    ]


TABLE_HEADER = [
    "metric",
    "predicted",
    "90 % band",
    "measured",
    "error",
    "tolerance",
    "verdict",
    "note",
]


def _counts_line(comparison: Comparison) -> str:
    counts = comparison.counts()
    return ", ".join(f"{counts[v]} {v}" for v in (PASS, FAIL, UNKNOWN))


def render_markdown(comparison: Comparison, plots: Sequence[Path], title: str) -> str:
    lines = [
        f"# {title}",
        "",
        f"**Verdict: {comparison.verdict}** ({_counts_line(comparison)})",
        "",
        f"Predicted: {', '.join(comparison.predicted_runs)}  ",
        f"Measured: {', '.join(comparison.measured_runs)}",
        "",
    ]
    for group, rows in comparison.groups():
        lines += [
            f"## {group}",
            "",
            "| " + " | ".join(TABLE_HEADER) + " |",
            "|" + "---|" * len(TABLE_HEADER),
        ]
        for row in rows:
            cells = table_cells(row)
            cells[6] = f"**{cells[6]}**" if row.verdict != PASS else cells[6]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    if comparison.faults:
        lines += [
            "## Faults (measured run)",
            "",
            "| id | kind | target | start | end |",
            "|---|---|---|---|---|",
        ]
        for fault in comparison.faults:
            lines.append(
                f"| {fault['id']} | {fault['kind']} | {fault['target']} | "
                f"{fault['start_s']:.2f} s | {fault['end_s']:.2f} s |"
            )
        lines.append("")
    lines += ["## Plots", ""]
    for path in plots:
        lines += [f"![{PLOTS[path.name]}](plots/{path.name})", "", f"*{PLOTS[path.name]}*", ""]
    return "\n".join(lines)


REPORT_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #1f2328; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 14px; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: right; }
th { background: #f6f8fa; }
td:first-child, th:first-child, td:last-child { text-align: left; }
td.verdict { font-weight: bold; color: white; text-align: center; }
.overall { font-size: 20px; padding: 6px 12px; color: white; display: inline-block; }
figure { margin: 1em 0 2em; }
figcaption { color: #57606a; font-size: 14px; }
img { max-width: 100%; border: 1px solid #d0d7de; }
"""


def render_html(comparison: Comparison, plots: Sequence[Path], title: str) -> str:
    esc = html.escape
    verdict = comparison.verdict
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{REPORT_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p><span class="overall" id="overall-verdict" style="background:{COLOURS[verdict]}">'
        f"{verdict}</span> {esc(_counts_line(comparison))}</p>",
        f"<p>Predicted: {esc(', '.join(comparison.predicted_runs))}<br>"
        f"Measured: {esc(', '.join(comparison.measured_runs))}</p>",
    ]
    for index, (group, rows) in enumerate(comparison.groups()):
        table_id = "verdicts" if index == 0 else f"verdicts-{index}"
        parts += [
            f"<h2>{esc(group)}</h2>",
            f'<table id="{table_id}" class="verdict-table">',
            "<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in TABLE_HEADER) + "</tr></thead>",
            "<tbody>",
        ]
        for row in rows:
            cells = table_cells(row)
            tds = [f"<td title='{esc(row.description)}'>{esc(cells[0])}</td>"]
            tds += [f"<td>{esc(c)}</td>" for c in cells[1:6]]
            tds.append(
                f'<td class="verdict" style="background:{COLOURS[row.verdict]}">{row.verdict}</td>'
            )
            tds.append(f"<td>{esc(cells[7])}</td>")
            parts.append(f'<tr data-metric="{esc(row.name)}">' + "".join(tds) + "</tr>")
        parts.append("</tbody></table>")
    if comparison.faults:
        parts += [
            "<h2>Faults (measured run)</h2><table><thead><tr><th>id</th><th>kind</th>"
            "<th>target</th><th>start</th><th>end</th></tr></thead><tbody>"
        ]
        for fault in comparison.faults:
            parts.append(
                f"<tr><td>{esc(fault['id'])}</td><td>{esc(fault['kind'])}</td>"
                f"<td>{esc(fault['target'])}</td><td>{fault['start_s']:.2f} s</td>"
                f"<td>{fault['end_s']:.2f} s</td></tr>"
            )
        parts.append("</tbody></table>")
    parts.append("<h2>Plots</h2>")
    for path in plots:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        caption = esc(PLOTS[path.name])
        parts.append(
            f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    comparison: Comparison,
    predicted: Sequence[RunRecords],
    measured: Sequence[RunRecords],
    folder: Path,
    title: str | None = None,
) -> ReportFiles:
    """Write ``report.html``, ``report.md``, ``comparison.json`` and ``plots/`` into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    title = title or f"{measured[0].topology.general.name}: predicted vs measured"
    plots = write_overlay_plots(predicted, measured, folder / "plots")
    html_path = folder / REPORT_HTML
    html_path.write_text(render_html(comparison, plots, title), encoding="utf-8")
    md_path = folder / REPORT_MD
    md_path.write_text(render_markdown(comparison, plots, title), encoding="utf-8")
    json_path = folder / COMPARISON_JSON
    json_path.write_text(json.dumps(comparison.to_json(), indent=2) + "\n", encoding="utf-8")
    return ReportFiles(html_path, md_path, json_path, tuple(plots))


#: The markers between which ``splice_table`` writes the table into a markdown file.
TABLE_BEGIN, TABLE_END = "<!-- validation-table:begin -->", "<!-- validation-table:end -->"


def validation_table(cases: Sequence[Path]) -> str:
    """One markdown table of the comparisons in ``cases`` (folders holding comparison.json):
    per case its verdict, then the headline figures and every other metric that is not PASS,
    but for the region pairs' propagation (one row per pair would bury the rest: each case's
    report has them)."""
    lines = [
        "| case | metric | predicted (90 % band) | measured | error | tolerance | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        data = json.loads((case / COMPARISON_JSON).read_text(encoding="utf-8"))
        comparison = Comparison.from_json(data)
        name = f"{case.parent.name}/{case.name}"
        lines.append(
            f"| **{name}** | overall | | | | | **{comparison.verdict}** "
            f"({_counts_line(comparison)}) |"
        )
        for row in comparison.rows:
            if row.group == GROUP_PAIRS or (row.group != GROUP_HEADLINE and row.verdict == PASS):
                continue
            cells = table_cells(row)
            predicted = cells[1] + (f" ({cells[2]})" if cells[2] else "")
            lines.append("| " + " | ".join([name, cells[0], predicted, *cells[3:7]]) + " |")
    return "\n".join(lines) + "\n"


def splice_table(markdown: str, table: str, name: str = "validation-table") -> str:
    """``markdown`` with the text between the ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``
    markers replaced by ``table``."""
    opening, closing = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    begin, end = markdown.find(opening), markdown.find(closing)
    if begin < 0 or end < begin:
        raise ValueError(f"no {opening} … {closing} markers")
    return markdown[: begin + len(opening)] + "\n" + table + markdown[end:]
