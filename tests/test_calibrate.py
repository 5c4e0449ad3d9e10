"""calibrate: the node's real costs measured on this machine, written into a topology file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bitcell_sim.cli import app
from bitcell_sim.cli.calibrate import replace_processing
from bitcell_sim.topology import load_topology, parse_topology

LINE = "processing: {tx_validate: 120 us, block_import: 800 us}"


def test_replace_processing_keeps_the_rest_of_the_file(rc3_fast_path: Path) -> None:
    text = rc3_fast_path.read_text()
    block_style = text.replace(
        "  processing: {tx_validate: 100 us, block_import_per_tx: 50 us}\n",
        "  processing:\n    tx_validate: 100 us\n    block_import_per_tx: 50 us\n",
    )
    for original in (text, block_style):
        updated = replace_processing(original, LINE)
        assert f"  {LINE}\n\nworkload:" in updated
        assert updated.count("processing") == 1
        assert updated.splitlines()[0] == text.splitlines()[0]  # the comment stays
        topology = parse_topology(updated)
        assert topology.protocol.processing.tx_validate_s == pytest.approx(120e-6)
        assert topology.protocol.processing.block_import_per_tx_s == pytest.approx(50e-6)
        assert topology.protocol.processing.block_import_s == pytest.approx(800e-6)
    bare = "regions: {r: {rtt: {r: 1 ms}}}\nnodes: {a: {region: r}}\n"
    assert parse_topology(replace_processing(bare, LINE)).protocol.processing.block_import_s
    with_protocol = bare + "protocol:\n  commit: 1 s\n"
    added = parse_topology(replace_processing(with_protocol, LINE))
    assert added.protocol.commit_s == 1.0 and added.protocol.processing.tx_validate_s > 0


def test_write_needs_a_topology() -> None:
    result = CliRunner().invoke(app, ["calibrate", "--write"])
    assert result.exit_code == 2 and "--write needs a TOPOLOGY" in result.output


@pytest.mark.real
@pytest.mark.timeout(180)
def test_calibrate_measures_the_node_and_writes_the_topology(
    tmp_path: Path, rc3_fast_path: Path
) -> None:
    target = tmp_path / "rc3-fast.yaml"
    shutil.copy(rc3_fast_path, target)
    result = CliRunner().invoke(app, ["calibrate", str(target), "--write"])
    assert result.exit_code == 0, result.output
    processing = load_topology(target).protocol.processing
    # Plausible magnitudes on any machine: an ECDSA check is tens of µs to a few ms; a node
    # process starts in well under a minute but not instantly (imports, SQLite).
    assert 10e-6 < processing.tx_validate_s < 10e-3
    assert 0 < processing.block_import_per_tx_s < 10e-3
    assert 0 < processing.block_build_per_tx_s < 10e-3
    assert 0 < processing.rpc_service_s < 0.1
    assert 0.1 < processing.startup_s < 30
    assert target.read_text().startswith("# The RC3 network")
