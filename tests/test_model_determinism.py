"""Same topology and seed, byte-identical record files; another seed, other records."""

from __future__ import annotations

from pathlib import Path

from bitcell_sim.model import simulate
from bitcell_sim.results import TABLES, RunFolder
from tests.model_topologies import variant

FAULTS = [
    {"kind": "node_down", "target": "us-west-1", "start": "20 s", "duration": "6 s"},
    {"kind": "partition", "groups": [["ap-southeast"]], "start": "35 s", "duration": "9 s"},
    {
        "kind": "cpu_throttle",
        "target": "eu-central-1",
        "start": "10 s",
        "duration": "20 s",
        "share": 0.05,
    },
    {
        "kind": "added_latency",
        "target": "us-east",
        "start": "50 s",
        "duration": "10 s",
        "latency": "400 ms",
    },
]


def _write(tmp_path: Path, run_id: str, seed: int) -> dict[str, bytes]:
    topology = variant(
        "rc3-fast",
        general={"seed": seed, "duration": "75 s"},
        workload={"tps": 400, "start": "2 s", "duration": "70 s"},
        faults=FAULTS,
    )
    folder = RunFolder.create(tmp_path, run_id, topology)
    result = simulate(topology)
    return {name: folder.write_records(name, result.tables[name]).read_bytes() for name in TABLES}


def test_same_seed_same_bytes_other_seed_other_records(tmp_path: Path) -> None:
    first = _write(tmp_path, "a", seed=11)
    again = _write(tmp_path, "b", seed=11)
    other = _write(tmp_path, "c", seed=12)
    assert first == again
    for name in TABLES:
        assert first[name] != other[name], name
