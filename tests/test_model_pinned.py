"""The model's records, pinned: a change of any result is a deliberate re-pin.

Digests (SHA-256 of the Arrow IPC stream of each record table) of three runs: rc3-fast through
every fault kind, rc3 for 10 minutes and global-56 for 2 minutes. When a change alters the
model's output on purpose, recompute them (``python tests/test_model_pinned.py`` prints the new
table) and say in the commit, and in docs/model.md (Determinism), what changed and why.
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
        "blocks": "086b8a60c3791b21",
        "block_arrivals": "e7a3e29632a14aaa",
        "transactions": "2aa53c7f1d299dfb",
        "node_timeline": "9857226faa27e894",
    },
    "rc3": {
        "blocks": "e82b8fe336146d18",
        "block_arrivals": "84779503e2f716cb",
        "transactions": "cfde02efe184567c",
        "node_timeline": "7baa118e2f7c43ff",
    },
    "global-56": {
        "blocks": "1fd0336ce2320184",
        "block_arrivals": "a66b461790adba74",
        "transactions": "cde8839b8664ecaf",
        "node_timeline": "790286b34d83db6e",
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
