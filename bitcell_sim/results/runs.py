"""A run as compare reads it: the topology, the four record tables and ``meta.json``.

:meth:`RunRecords.read` opens one run folder of the shared format (a prediction or a
measurement); a record table the folder lacks is read as empty, so its metrics are UNKNOWN
rather than an error. :func:`read_runs` takes a run folder or a folder of run folders (the
seeds of a prediction) and returns every run in it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa

from bitcell_sim.errors import ResultsError
from bitcell_sim.results.records import TABLES, read_table
from bitcell_sim.results.window import RunWindow
from bitcell_sim.topology import Topology, load_topology

# Where a record table may sit in a run folder: top level, or the load test's subfolder.
_TABLE_DIRS = ("", "load")


@dataclass(frozen=True)
class RunRecords:
    """One run: its resolved topology, its record tables and its ``meta.json``."""

    name: str
    topology: Topology
    tables: Mapping[str, pa.Table]
    meta: Mapping[str, Any]
    path: Path | None = None

    @classmethod
    def read(cls, path: Path) -> RunRecords:
        if not (path / "topology.yaml").is_file():
            raise ResultsError(f"{path} is not a run folder (no topology.yaml)")
        topology = load_topology(path / "topology.yaml")
        tables = {}
        for name, schema in TABLES.items():
            found = next(
                (
                    path / d / f"{name}.parquet"
                    for d in _TABLE_DIRS
                    if (path / d / f"{name}.parquet").is_file()
                ),
                None,
            )
            try:
                tables[name] = schema.empty_table() if found is None else read_table(found, name)
            except (OSError, ValueError, pa.ArrowException) as exc:
                raise ResultsError(f"cannot read {found}: {exc}") from None
        meta: dict[str, Any] = {}
        if (path / "meta.json").is_file():
            try:
                meta = json.loads((path / "meta.json").read_text())
            except (OSError, ValueError) as exc:
                raise ResultsError(f"cannot read {path / 'meta.json'}: {exc}") from None
        return cls(name=path.name, topology=topology, tables=tables, meta=meta, path=path)

    @property
    def kind(self) -> str:
        """``model``, ``measured``, ... as ``meta.json`` says (``unknown`` without one)."""
        return str(self.meta.get("kind", "unknown"))

    @cached_property
    def window(self) -> RunWindow:
        """What the records cover: ``meta.json``'s window (every run written since windows
        exist), else the topology's as a prediction holds it."""
        if "window_s" in self.meta:
            return RunWindow.from_meta(self.meta)
        return RunWindow.of_topology(self.topology)


def read_runs(path: Path) -> list[RunRecords]:
    """The runs at ``path``: the run folder itself, or every run folder directly inside it."""
    if not path.is_dir():
        raise ResultsError(f"no such run folder: {path}")
    if (path / "topology.yaml").is_file():
        return [RunRecords.read(path)]
    inside = sorted(p for p in path.iterdir() if (p / "topology.yaml").is_file())
    if not inside:
        raise ResultsError(f"{path} is neither a run folder nor a folder of run folders")
    return [RunRecords.read(p) for p in inside]
