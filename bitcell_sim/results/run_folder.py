"""A run folder: ``results/<run-id>/`` with the resolved topology, ``meta.json`` and records.

:class:`RunFolder` is the one writer of run folders, predictions (model) and measurements
(devnet + load) alike: ``create`` makes one (refusing to overwrite a run), ``open`` finds one,
and it writes and reads the record tables of :mod:`bitcell_sim.results.records`, JSON files
(``meta.json``, ``summary.json``, a load's ``load/summary.json``) and attached files (e.g. a
monitoring log), so compare reads one layout. Its errors are ``ResultsError``.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import time
from collections.abc import Collection
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa

from bitcell_sim.errors import ResultsError, TopologyError
from bitcell_sim.results.records import (
    TABLES,
    check_table,
    read_table,
    schema_of,
    write_table,
)
from bitcell_sim.results.window import RunWindow
from bitcell_sim.topology import Topology, dump_topology, load_topology

DEFAULT_RESULTS_DIR = Path("results")
TOPOLOGY_FILE = "topology.yaml"
META_FILE = "meta.json"
SUMMARY_FILE = "summary.json"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Files a run folder's own writers own: an attachment may not take their names.
_RESERVED = {TOPOLOGY_FILE, META_FILE, SUMMARY_FILE, *(f"{name}.parquet" for name in TABLES)}


def new_run_id(topology: Topology, kind: str) -> str:
    """``<topology>-<kind>-<UTC timestamp>``, e.g. ``rc3-model-20261129-221530``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{topology.general.name}-{kind}-{stamp}"


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise ResultsError(f"run id {run_id!r} may hold only letters, digits, '.', '_' and '-'")
    return run_id


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @classmethod
    def create(cls, root: Path, run_id: str, topology: Topology) -> RunFolder:
        """A new, empty run folder holding the resolved topology; refuses to overwrite a run."""
        path = root / check_run_id(run_id)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ResultsError(f"run folder {path} already exists and is not empty")
        try:
            path.mkdir(parents=True, exist_ok=True)
            (path / TOPOLOGY_FILE).write_text(dump_topology(topology))
        except OSError as exc:
            raise ResultsError(f"cannot create run folder {path}: {exc}") from None
        return cls(path)

    @classmethod
    def prepare(
        cls, path: Path, topology: Topology | None, *, may_hold: Collection[str] = ()
    ) -> RunFolder:
        """The run folder at ``path``: an existing one as it is, else a new one (with
        ``topology`` when there is one: a load against a bare endpoint has none). Refuses a
        folder that holds files but no topology, other than the entries ``may_hold`` (e.g. the
        folder a load's Locust reports already went to), so nothing of someone else's is mixed in.
        """
        if (path / TOPOLOGY_FILE).is_file():
            return cls(path)
        if path.exists() and not path.is_dir():
            raise ResultsError(f"{path} is not a folder")
        held = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
        others = [name for name in held if name not in may_hold]
        if others:
            raise ResultsError(
                f"{path} is not a run folder (no {TOPOLOGY_FILE}) and is not empty: "
                f"{', '.join(others[:5])}"
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
            if topology is not None:
                (path / TOPOLOGY_FILE).write_text(dump_topology(topology))
        except OSError as exc:
            raise ResultsError(f"cannot create run folder {path}: {exc}") from None
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        if not (path / TOPOLOGY_FILE).is_file():
            raise ResultsError(f"{path} is not a run folder (no {TOPOLOGY_FILE})")
        return cls(path)

    @property
    def run_id(self) -> str:
        return self.path.name

    def topology(self) -> Topology:
        """The run's resolved topology (ResultsError if it no longer loads)."""
        try:
            return load_topology(self.path / TOPOLOGY_FILE)
        except TopologyError as exc:
            raise ResultsError(f"{self.path}: {exc}") from None

    # ---- records ----------------------------------------------------------------------------
    def _file(self, name: str) -> Path:
        """``name`` (``a.json`` or ``sub/a.json``) inside the folder; never outside it."""
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ResultsError(f"{name!r} is not a file name inside the run folder")
        return self.path.joinpath(*relative.parts)

    def _records_file(self, name: str, subfolder: str | None) -> Path:
        schema_of(name)
        return self._file(f"{subfolder}/{name}.parquet" if subfolder else f"{name}.parquet")

    def write_records(self, name: str, table: pa.Table, subfolder: str | None = None) -> Path:
        """Write record table ``name`` (``subfolder``: e.g. a load's own ``load/`` view)."""
        check_table(name, table)
        target = self._records_file(name, subfolder)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_table(table, target)
        return target

    def read_records(self, name: str, subfolder: str | None = None) -> pa.Table:
        return read_table(self._records_file(name, subfolder), name)

    def has_records(self, name: str, subfolder: str | None = None) -> bool:
        return self._records_file(name, subfolder).is_file()

    def read_tables(self) -> dict[str, pa.Table]:
        """The four record tables (ResultsError naming the first one missing)."""
        missing = [n for n in TABLES if not self.has_records(n)]
        if missing:
            raise ResultsError(f"{self.path} lacks the record table(s) {', '.join(missing)}")
        return {name: self.read_records(name) for name in TABLES}

    # ---- JSON and attached files ------------------------------------------------------------
    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        target = self._file(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")
        return target

    def read_json(self, name: str) -> dict[str, Any]:
        path = self._file(name)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ResultsError(f"{path}: no such file") from None
        except (OSError, ValueError) as exc:
            raise ResultsError(f"{path}: cannot read JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ResultsError(f"{path}: expected a JSON object")
        return data

    def window(self) -> RunWindow:
        """What the records cover, from ``meta.json`` (a model run written before windows were
        recorded: its topology's)."""
        meta = self.read_json(META_FILE) if (self.path / META_FILE).is_file() else {}
        if "window_s" not in meta:
            return RunWindow.of_topology(self.topology())
        return RunWindow.from_meta(meta)

    def attach(self, source: Path, name: str | None = None) -> Path:
        """Copy ``source`` into the folder as ``name`` (default its file name; ``sub/x`` puts
        it in a subfolder): how a devnet's extra files, e.g. monitoring logs, join a run."""
        name = name or source.name
        if name in _RESERVED:
            raise ResultsError(f"cannot attach {source} as {name!r}: the run folder's own file")
        target = self._file(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(source, target)
        except OSError as exc:
            raise ResultsError(f"cannot attach {source} to {self.path}: {exc}") from None
        return target

    def subfolder(self, name: str) -> Path:
        sub = self._file(name)
        sub.mkdir(parents=True, exist_ok=True)
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
