"""A sweep's run folder: the grid, the software, one Parquet file per run, the combined table.

``results/<sweep-id>/`` holds ``topology.yaml`` (the base topology), ``sweep.json`` (the grid,
the seeds, the software versions, when it started), ``runs/<key>.parquet`` (one row per finished
run, named by the hash of its resolved topology) and, when the sweep is done, ``sweep.parquet``
(every run), ``points.parquet`` (mean and 95 % interval per point and figure) and ``plots/``.
:class:`SweepFolder` creates one, or reopens it to resume when the same sweep asks again; it is
the model sweep's run store (``load``/``save``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from bitcell_sim.results.run_folder import RunFolder
from bitcell_sim.topology import Topology, dump_topology

SWEEP_FILE = "sweep.json"


@dataclass(frozen=True)
class SweepFolder:
    path: Path

    @classmethod
    def open_or_create(
        cls, root: Path, run_id: str, topology: Topology, spec: dict[str, Any]
    ) -> tuple[SweepFolder, bool]:
        """The sweep folder ``root/run_id`` for ``spec`` (grid, seeds, software); True if it
        already existed (a resume). Refuses a folder made for another sweep or topology, or by
        other software, so resumed runs never mix with runs of different inputs."""
        path = root / run_id
        if (path / SWEEP_FILE).is_file():
            recorded = json.loads((path / SWEEP_FILE).read_text())
            for field in ("grid", "seeds", "software"):
                if recorded.get(field) != spec.get(field):
                    raise ValueError(
                        f"{path} holds another sweep: its {field} is {recorded.get(field)} "
                        f"here {spec.get(field)}; choose another run id"
                    )
            if (path / "topology.yaml").read_text() != dump_topology(topology):
                raise ValueError(f"{path} holds a sweep of another topology; choose another run id")
            return cls(path), True
        folder = RunFolder.create(root, run_id, topology)
        folder.write_json(SWEEP_FILE, spec)
        (path / "runs").mkdir()
        return cls(path), False

    @property
    def runs_path(self) -> Path:
        return self.path / "runs"

    def has(self, key: str) -> bool:
        return (self.runs_path / f"{key}.parquet").is_file()

    def load(self, key: str) -> dict[str, Any] | None:
        """The figures of a finished run, or None."""
        file = self.runs_path / f"{key}.parquet"
        if not file.is_file():
            return None
        record: dict[str, Any] = pq.read_table(file).to_pylist()[0]  # keeps ints as ints
        return record

    def save(self, key: str, figures: dict[str, Any]) -> None:
        """Write one run's figures; atomically, so a kill never leaves half a file."""
        target = self.runs_path / f"{key}.parquet"
        partial = target.with_suffix(".partial")
        pd.DataFrame([figures]).to_parquet(partial, index=False)
        os.replace(partial, target)

    def finished_runs(self) -> int:
        return len(list(self.runs_path.glob("*.parquet")))

    def write_tables(self, runs: pd.DataFrame, points: pd.DataFrame) -> None:
        runs.to_parquet(self.path / "sweep.parquet", index=False)
        points.to_parquet(self.path / "points.parquet", index=False)

    def subfolder(self, name: str) -> Path:
        return RunFolder(self.path).subfolder(name)
