"""A run folder: ``results/<run-id>/`` with the resolved topology, ``meta.json`` and records.

:class:`RunFolder` creates the folder (``RunFolder.create``) or opens an existing one
(``RunFolder.open``), and writes and reads the record tables of
:mod:`bitcell_sim.results.records`, ``meta.json`` and ``summary.json``. Both predictions (model)
and measurements (devnet + load) use it, so compare reads one layout.
"""

from __future__ import annotations

import json
import platform
import re
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa

from bitcell_sim.results.records import TABLES, read_table, write_table
from bitcell_sim.topology import Topology, dump_topology

DEFAULT_RESULTS_DIR = Path("results")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def new_run_id(topology: Topology, kind: str) -> str:
    """``<topology>-<kind>-<UTC timestamp>``, e.g. ``rc3-model-20261129-221530``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{topology.general.name}-{kind}-{stamp}"


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @classmethod
    def create(cls, root: Path, run_id: str, topology: Topology) -> RunFolder:
        """A new, empty run folder holding the resolved topology; refuses to overwrite a run."""
        if not _RUN_ID.match(run_id):
            raise ValueError(f"run id {run_id!r} may hold only letters, digits, '.', '_' and '-'")
        path = root / run_id
        if path.exists() and any(path.iterdir()):
            raise FileExistsError(f"run folder {path} already exists and is not empty")
        path.mkdir(parents=True, exist_ok=True)
        (path / "topology.yaml").write_text(dump_topology(topology))
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        if not (path / "topology.yaml").is_file():
            raise FileNotFoundError(f"{path} is not a run folder (no topology.yaml)")
        return cls(path)

    @property
    def run_id(self) -> str:
        return self.path.name

    def write_records(self, name: str, table: pa.Table) -> Path:
        if name not in TABLES:
            raise ValueError(f"unknown record type {name!r} (one of {', '.join(TABLES)})")
        target = self.path / f"{name}.parquet"
        write_table(table, target)
        return target

    def read_records(self, name: str) -> pa.Table:
        return read_table(self.path / f"{name}.parquet", name)

    def has_records(self, name: str) -> bool:
        return (self.path / f"{name}.parquet").is_file()

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        target = self.path / name
        target.write_text(json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")
        return target

    def read_json(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.path / name).read_text())
        return data

    def subfolder(self, name: str) -> Path:
        sub = self.path / name
        sub.mkdir(exist_ok=True)
        return sub


def software_versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape results, for ``meta.json``."""
    versions = {"python": platform.python_version()}
    packages = ("bitcell-sim", "simpy", "networkx", "numpy", "numba", "pandas", "pyarrow")
    for package in (*packages, "dask", "distributed", "locust"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
