"""The verdict of a chaos scenario: ``verdict.json``, ``verdict.md`` and ``verdict.html``.

:func:`write_verdict` writes the expectations (measured, predicted, limit, verdict), the
transaction ledger (measured and predicted counts per class), the faults as they happened, the
alerts that paged beside the predicted ones (when the monitoring ran) and the timeline plots of
the comparison (embedded in the HTML). :func:`chaos_table` gathers verdicts into one markdown
table for the docs.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bitcell_sim.results.chaos import EXPECTATIONS, Verdict, scenario_verdict
from bitcell_sim.results.ledger import CLASSES, Ledger
from bitcell_sim.results.report import COLOURS, REPORT_CSS, format_value

VERDICT_JSON, VERDICT_MD, VERDICT_HTML = "verdict.json", "verdict.md", "verdict.html"
_MIN_NAMES = {e.key for e in EXPECTATIONS if e.kind == "min"}
_HEADER = ("expectation", "measured", "predicted", "limit", "verdict", "detail")


@dataclass(frozen=True)
class ChaosResult:
    """Everything the verdict files show of one scenario."""

    scenario: str
    verdicts: tuple[Verdict, ...]
    measured_ledger: Ledger | None
    predicted_ledger: Mapping[str, float]  # class -> mean count over the seeds
    faults: tuple[Mapping[str, Any], ...] = ()
    alerts: tuple[Mapping[str, Any], ...] = ()  # alert, labels, predicted, paged_s, resolved_s
    plots: tuple[Path, ...] = ()
    predict_only: bool = False

    @property
    def verdict(self) -> str:
        return scenario_verdict(self.verdicts)

    def to_json(self) -> dict[str, Any]:
        measured = self.measured_ledger
        return {
            "scenario": self.scenario,
            "verdict": self.verdict,
            "predict_only": self.predict_only,
            "expectations": [v.to_json() for v in self.verdicts],
            "ledger": {
                "measured": None if measured is None else measured.to_json(),
                "predicted_mean": dict(self.predicted_ledger),
            },
            "faults": list(self.faults),
            "alerts": list(self.alerts),
        }


def _value(value: float | str | None, unit: str) -> str:
    if value is None or isinstance(value, str):
        return "—" if value is None else value
    if unit == "%":
        return f"{value * 100:+.1f} %"
    if unit in ("rounds", "txs"):
        return f"{value:.3g} {unit}"
    return format_value(value, unit)


def _limit(v: Verdict) -> str:
    if isinstance(v.limit, str):
        return v.limit
    sign = "≥" if v.name in _MIN_NAMES else "≤"
    return f"{sign} {_value(v.limit, v.unit)}"


def verdict_cells(v: Verdict) -> list[str]:
    return [v.name, _value(v.measured, v.unit), _value(v.predicted, v.unit), _limit(v),
            v.verdict, v.message]  # fmt: skip


def _ledger_rows(result: ChaosResult) -> list[list[str]]:
    measured = result.measured_ledger
    rows = []
    for name, meaning in CLASSES.items():
        got = "—" if measured is None else str(measured.counts[name])
        predicted = result.predicted_ledger.get(name)
        rows.append([name, got, "—" if predicted is None else f"{predicted:.1f}", meaning])
    return rows


def _alert_rows(result: ChaosResult) -> list[list[str]]:
    def t(value: Any) -> str:
        return "—" if value is None else f"{float(value):.1f} s"

    return [
        [a["alert"], ", ".join(f"{k}={v}" for k, v in a.get("labels", {}).items()),
         str(a.get("predicted") or "—"), t(a.get("paged_s")), t(a.get("resolved_s"))]
        for a in result.alerts
    ]  # fmt: skip


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cell(c) for c in row) + " |" for row in rows),
    ]


def render_markdown(result: ChaosResult) -> str:
    lines = [f"# chaos: {result.scenario}", "", f"**{result.verdict}**", ""]
    if result.predict_only:
        lines += ["Prediction only: the model's values are judged; no devnet ran.", ""]
    lines += _md_table(_HEADER, [verdict_cells(v) for v in result.verdicts])
    lines += ["", "## Transaction ledger", ""]
    lines += _md_table(("class", "measured", "predicted (mean)", "meaning"), _ledger_rows(result))
    if result.measured_ledger is not None and result.measured_ledger.rejected_by_reason:
        reasons = ", ".join(
            f"{k}: {v}" for k, v in result.measured_ledger.rejected_by_reason.items()
        )
        lines += ["", f"Rejected by reason: {reasons}"]
    if result.faults:
        lines += ["", "## Faults as they happened", ""]
        lines += _md_table(("kind", "target", "start", "end"),
                           [[f["kind"], f["target"], _value(f["start_s"], "s"),
                             _value(f["end_s"], "s")] for f in result.faults])  # fmt: skip
    if result.alerts:
        lines += ["", "## Alerts", ""]
        lines += _md_table(("alert", "labels", "predicted", "paged", "resolved"),
                           _alert_rows(result))  # fmt: skip
    if result.plots:
        lines += ["", "## Timeline", ""]
        lines += [f"![{p.stem}](compare/plots/{p.name})" for p in result.plots]
    return "\n".join(lines) + "\n"


def _html_table(table_id: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = html.escape
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"
    body = []
    for row in rows:
        cells = []
        for c in row:
            style = f' class="verdict" style="background:{COLOURS[c]}"' if c in COLOURS else ""
            cells.append(f"<td{style}>{esc(c)}</td>")
        body.append(f'<tr data-name="{esc(row[0])}">' + "".join(cells) + "</tr>")
    rows_html = "".join(body)
    return f'<table id="{table_id}"><thead>{head}</thead><tbody>{rows_html}</tbody></table>'


def render_html(result: ChaosResult) -> str:
    esc = html.escape
    title = f"chaos: {result.scenario}"
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{REPORT_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p><span class="overall" id="overall-verdict" '
        f'style="background:{COLOURS[result.verdict]}">{result.verdict}</span></p>',
        "<h2>Expectations</h2>",
        _html_table("expectations", _HEADER, [verdict_cells(v) for v in result.verdicts]),
        "<h2>Transaction ledger</h2>",
        _html_table("ledger", ("class", "measured", "predicted (mean)", "meaning"),
                    _ledger_rows(result)),
    ]  # fmt: skip
    if result.alerts:
        parts += ["<h2>Alerts</h2>", _html_table("alerts", ("alert", "labels", "predicted",
                                                            "paged", "resolved"),
                                                 _alert_rows(result))]  # fmt: skip
    for path in result.plots:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f'<figure><img alt="{esc(path.stem)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{esc(path.stem)}</figcaption></figure>")  # fmt: skip
    parts.append("</body></html>")
    return "\n".join(parts)


def write_verdict(result: ChaosResult, folder: Path) -> tuple[Path, Path, Path]:
    """Write ``verdict.json``, ``verdict.md`` and ``verdict.html`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = (folder / VERDICT_JSON, folder / VERDICT_MD, folder / VERDICT_HTML)
    paths[0].write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    paths[1].write_text(render_markdown(result), encoding="utf-8")
    paths[2].write_text(render_html(result), encoding="utf-8")
    return paths


def chaos_table(folders: Sequence[Path]) -> str:
    """One markdown table of the verdicts in ``folders`` (each holding ``verdict.json``): per
    scenario its verdict, then each expectation and the ledger's anomalies."""
    lines = _md_table(("scenario", "expectation", "measured", "predicted", "limit", "verdict"), [])
    for folder in folders:
        data = json.loads((folder / VERDICT_JSON).read_text(encoding="utf-8"))
        name = data["scenario"]
        lines.append(f"| **{name}** | overall | | | | **{data['verdict']}** |")
        for entry in data["expectations"]:
            v = Verdict(**entry)
            cells = verdict_cells(v)
            lines.append("| " + " | ".join([name, *cells[:5]]).replace("\n", " ") + " |")
        measured = data["ledger"]["measured"]
        if measured is not None:
            counts = ", ".join(f"{c} {n}" for c, n in measured["counts"].items() if n)
            predicted = ", ".join(
                f"{c} {n:.0f}" for c, n in data["ledger"]["predicted_mean"].items() if n
            )
            lines.append(f"| {name} | ledger | {counts} | {predicted} | | |")
    return "\n".join(lines) + "\n"
