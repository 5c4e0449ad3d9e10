"""Topologies for the model tests: the shipped files with a few keys changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bitcell_sim.topology import Topology, dump_topology, load_topology, parse_topology

TOPOLOGIES = Path(__file__).resolve().parent.parent / "topologies"


def variant(name: str, **sections: dict[str, Any] | list[Any]) -> Topology:
    """``topologies/<name>.yaml`` with the given sections merged in (lists replace)."""
    data = yaml.safe_load(dump_topology(load_topology(TOPOLOGIES / f"{name}.yaml")))
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **values}
        else:
            data[section] = values
    return parse_topology(yaml.safe_dump(data, sort_keys=False))
