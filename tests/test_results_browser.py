"""The comparison report in a real headless Chromium: it renders; the verdict table reads back."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bitcell_sim.results.compare import compare
from bitcell_sim.results.report import write_report
from bitcell_sim.results.runs import read_runs
from tests.test_results_compare import MEASURED, PREDICTED, write_run

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/bootstrap)"),
]
# No network, no first-run or background work: the page must render from the file alone.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


class VerdictTable(HTMLParser):
    """Rows of the table with id "verdicts": (metric, verdict) from the rendered DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, str]] = []
        self.overall = ""
        self._in_table = self._in_overall = self._in_verdict = False
        self._metric = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self._in_table = attributes.get("id") == "verdicts"
        elif tag == "tr" and self._in_table and attributes.get("data-metric"):
            self._metric = attributes["data-metric"] or ""
        elif tag == "td" and self._in_table and attributes.get("class") == "verdict":
            self._in_verdict = True
        elif tag == "span" and attributes.get("id") == "overall-verdict":
            self._in_overall = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_table = False
        if tag in ("td", "span"):
            self._in_verdict = self._in_overall = False

    def handle_data(self, data: str) -> None:
        if self._in_verdict and data.strip():
            self.rows.append((self._metric, data.strip()))
        if self._in_overall and data.strip():
            self.overall = data.strip()


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    write_run(tmp_path / "p", "seed-1", **PREDICTED, resync_s=0.8)
    write_run(tmp_path / "p", "seed-2", **PREDICTED, resync_s=1.2)
    write_run(tmp_path, "m", **MEASURED)
    predicted, measured = read_runs(tmp_path / "p"), read_runs(tmp_path / "m")
    comparison = compare(predicted, measured)
    files = write_report(comparison, predicted, measured, tmp_path / "report")
    url = files.html.resolve().as_uri()

    shot = tmp_path / "shot.png"
    chromium(tmp_path / "profile-1", f"--screenshot={shot}", "--window-size=1280,2400", url)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2400, 1280)
    assert pixels.std() > 10  # not a blank page: text, coloured verdicts, plots
    assert (pixels < 100).mean() > 0.01  # dark ink covers some of it

    dom = chromium(tmp_path / "profile-2", "--dump-dom", url).stdout
    table = VerdictTable()
    table.feed(dom)
    headline = {r.name: r.verdict for r in comparison.rows if r.group == "headline"}
    assert dict(table.rows) == headline
    assert table.rows[0] == ("block_interval", "PASS")
    assert ("confirmation_latency_p50", "FAIL") in table.rows
    assert table.overall == "FAIL"
    assert dom.count("data:image/png;base64,") == 6
