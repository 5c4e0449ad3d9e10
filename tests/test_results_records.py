"""Record tables and run folders: schemas enforced, equal records give equal bytes, and every
failure is a ResultsError that names what was wrong."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from bitcell_sim.errors import ResultsError
from bitcell_sim.results import (
    TABLES,
    FaultWindow,
    RunFolder,
    RunWindow,
    check_table,
    read_table,
    to_table,
    write_table,
)
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


def test_schema_is_enforced(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match=r"block_arrivals: missing columns \['arrival_s'\]"):
        to_table("block_arrivals", {"block_hash": [], "node": []})
    with pytest.raises(ResultsError, match=r"block_arrivals.arrival_s: not double"):
        to_table("block_arrivals", {**ARRIVALS, "arrival_s": ["soon", "later"]})
    with pytest.raises(ResultsError, match=r"non-nullable column\(s\) node"):
        to_table("block_arrivals", {**ARRIVALS, "node": ["n1", None]})
    with pytest.raises(ResultsError, match="unknown record type 'forks'"):
        to_table("forks", ARRIVALS)
    # A file of another table, or one written without the schema, is refused when read back.
    write_table(pa.table({"block_hash": ["aa"], "x": [1]}), tmp_path / "other.parquet")
    with pytest.raises(ResultsError, match=r"other\.parquet: does not hold blocks records"):
        read_table(tmp_path / "other.parquet", "blocks")
    with pytest.raises(ResultsError, match="no such record file"):
        read_table(tmp_path / "absent.parquet", "blocks")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match="cannot read Parquet"):
        read_table(tmp_path / "junk.parquet", "blocks")
    for name, schema in TABLES.items():
        check_table(name, schema.empty_table())


def test_run_folder_refuses_to_overwrite(tmp_path: Path, rc3_path: Path) -> None:
    topo = load_topology(rc3_path)
    RunFolder.create(tmp_path, "r1", topo)
    with pytest.raises(ResultsError, match="already exists"):
        RunFolder.create(tmp_path, "r1", topo)
    with pytest.raises(ResultsError, match=r"run id '\.\./x' may hold only"):
        RunFolder.create(tmp_path, "../x", topo)
    with pytest.raises(ResultsError, match="is not a run folder"):
        RunFolder.open(tmp_path / "nothing")


def test_run_folder_files_stay_inside_and_attachments_keep_out_of_records(
    tmp_path: Path, rc3_path: Path
) -> None:
    folder = RunFolder.create(tmp_path, "r", load_topology(rc3_path))
    with pytest.raises(ResultsError, match="not a file name inside the run folder"):
        folder.write_json("../escape.json", {})
    with pytest.raises(ResultsError, match="no such file"):
        folder.read_json("meta.json")
    (folder.path / "meta.json").write_text("[1, 2]")
    with pytest.raises(ResultsError, match="expected a JSON object"):
        folder.read_json("meta.json")
    folder.write_records("block_arrivals", to_table("block_arrivals", ARRIVALS), "load")
    assert folder.has_records("block_arrivals", "load") and not folder.has_records("blocks")
    with pytest.raises(ResultsError, match="lacks the record table"):
        folder.read_tables()
    log = tmp_path / "alerts.jsonl"
    log.write_text('{"alert": 1}\n')
    assert folder.attach(log, "monitoring/alerts.jsonl").read_text() == log.read_text()
    with pytest.raises(ResultsError, match="the run folder's own file"):
        folder.attach(log, "blocks.parquet")
    with pytest.raises(ResultsError, match="cannot attach"):
        folder.attach(tmp_path / "absent.jsonl")


def test_run_window_round_trips_through_meta(rc3_path: Path) -> None:
    chaos = load_topology(rc3_path.with_name("rc3-chaos.yaml"))
    window = RunWindow.of_topology(chaos)
    assert window.start_s == 0.0 and window.end_s == chaos.general.duration_s
    assert RunWindow.from_meta(window.to_meta()) == window
    region = next(f for f in window.faults if f.kind == "region_down")
    assert {node for node, _, _ in region.down} == set(region.nodes)
    partition = next(f for f in window.faults if f.kind == "partition")
    assert partition.nodes == chaos.node_names and partition.down == ()
    still_down = FaultWindow("node_down", "a", 5.0, None, ("a",), down=(("a", 5.0, None),))
    open_window = RunWindow(0.0, 30.0, faults=(still_down,))
    assert open_window.down_windows(["a", "b"]) == {"a": [(5.0, 30.0)], "b": []}
    with pytest.raises(ResultsError, match="no window_s"):
        RunWindow.from_meta({"kind": "model"})
    with pytest.raises(ResultsError, match="bad fault window"):
        RunWindow.from_meta({"window_s": [0, 1], "faults": [{"kind": "node_down"}]})
    with pytest.raises(ResultsError, match="before its start"):
        RunWindow(10.0, 5.0)
