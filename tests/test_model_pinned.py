"""The model's records, pinned: a change of any result is a deliberate re-pin.

Digests (SHA-256 of the Arrow IPC stream of each record table) of three runs: rc3-fast through
every fault kind, rc3 for 10 minutes and global-56 for 2 minutes. When a change alters the
model's output on purpose, recompute them (``python -m tests.test_model_pinned`` prints the
new table) and say in the commit, and in docs/model.md (Determinism), what changed and why.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from bitcell_sim.model import apply_overrides, simulate
from bitcell_sim.topology import Topology, load_topology
from tests.model_topologies import TOPOLOGIES, variant
from tests.test_model_determinism import FAULTS

PINNED = {
    "faults": {
        "blocks": "d213ec2ce5d405c2",
        "block_arrivals": "c300b6111187a8d1",
        "transactions": "0c105b446ed86fa8",
        "node_timeline": "22ef882d9972ef66",
    },
    "rc3": {
        "blocks": "ec6f26c3b13c4881",
        "block_arrivals": "fd9d3cdb7336c70e",
        "transactions": "fe955c16621bc815",
        "node_timeline": "ee99be37f881ffac",
    },
    "global-56": {
        "blocks": "eb08a40b9897fc1f",
        "block_arrivals": "3d302344b410f364",
        "transactions": "2da788d8f6abebae",
        "node_timeline": "325d5aad2496a84b",
    },
}


def case(name: str) -> Topology:
    if name == "faults":
        return variant(
            "rc3-fast",
            general={"seed": 11, "duration": "75 s"},
            workload={"tps": 400, "start": "2 s", "duration": "70 s"},
            faults=FAULTS,
        )
    duration_s = {"rc3": 600.0, "global-56": 120.0}[name]
    return apply_overrides(load_topology(TOPOLOGIES / f"{name}.yaml"), duration_s=duration_s)[0]


def digests(topology: Topology) -> dict[str, str]:
    out = {}
    for name, table in simulate(topology).tables.items():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        out[name] = hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:16]
    return out


@pytest.mark.parametrize("name", list(PINNED))
def test_records_are_the_pinned_ones(name: str) -> None:
    assert digests(case(name)) == PINNED[name]


if __name__ == "__main__":
    for name in PINNED:
        print(f'    "{name}": {digests(case(name))},')
