"""Record tables and run folders: schemas enforced, equal records give equal bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bitcell_sim.results import RunFolder, to_table
from bitcell_sim.topology import load_topology

ARRIVALS = {"block_hash": ["aa", "bb"], "node": ["n1", "n2"], "arrival_s": [1.5, 2.25]}


def test_equal_records_write_equal_bytes(tmp_path: Path, rc3_path: Path) -> None:
    topo = load_topology(rc3_path)
    paths = []
    for run in ("one", "two"):
        folder = RunFolder.create(tmp_path, run, topo)
        paths.append(folder.write_records("block_arrivals", to_table("block_arrivals", ARRIVALS)))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    again = RunFolder.open(tmp_path / "one").read_records("block_arrivals")
    assert again.column("arrival_s").to_pylist() == [1.5, 2.25]


def test_schema_is_enforced() -> None:
    with pytest.raises(ValueError, match=r"block_arrivals: missing columns \['arrival_s'\]"):
        to_table("block_arrivals", {"block_hash": [], "node": []})


def test_run_folder_refuses_to_overwrite(tmp_path: Path, rc3_path: Path) -> None:
    topo = load_topology(rc3_path)
    RunFolder.create(tmp_path, "r1", topo)
    with pytest.raises(FileExistsError, match="already exists"):
        RunFolder.create(tmp_path, "r1", topo)
    with pytest.raises(ValueError, match=r"run id '\.\./x' may hold only"):
        RunFolder.create(tmp_path, "../x", topo)
