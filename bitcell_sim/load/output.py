"""Where a load run's files go: ``<run-dir>/load/`` inside a run folder.

:func:`prepare_run_dir` makes ``<run-dir>`` a run folder (with the resolved ``topology.yaml``
when the run has a topology) and its ``load/`` subfolder; :func:`write_outputs` writes
``transactions.parquet`` (the shared ``TRANSACTIONS`` records), ``summary.json`` and
``meta.json`` there, beside Locust's own ``--csv``/``--html`` files. :func:`read_outputs` reads
them back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from bitcell_sim.errors import LoadError
from bitcell_sim.load.txlog import TxRecord, columns_of
from bitcell_sim.results import read_table, to_table, write_table
from bitcell_sim.results.run_folder import software_versions
from bitcell_sim.topology import Topology, dump_topology

LOAD_DIR = "load"
RECORDS_FILE = "transactions.parquet"
SUMMARY_FILE = "summary.json"
META_FILE = "meta.json"
LOCUST_CSV_PREFIX = "locust"
LOCUST_HTML = "locust.html"


def prepare_run_dir(run_dir: Path, topology: Topology | None) -> Path:
    """Create ``run_dir`` (a run folder) and ``run_dir/load``; return the latter.

    An existing run folder (one with ``topology.yaml``, e.g. made by ``bitcell-sim load``) is
    reused; a new one gets the topology. Refuses a folder that holds load results already, or
    other files but no topology.
    """
    load_dir = run_dir / LOAD_DIR
    if (load_dir / RECORDS_FILE).exists():
        raise LoadError(f"{load_dir} already holds the records of a load run")
    if run_dir.exists() and not (run_dir / "topology.yaml").exists():
        others = [p.name for p in run_dir.iterdir() if p.name != LOAD_DIR]
        if others:
            raise LoadError(
                f"{run_dir} is not a run folder (no topology.yaml) and is not empty: "
                f"{', '.join(sorted(others)[:5])}"
            )
    load_dir.mkdir(parents=True, exist_ok=True)
    if topology is not None and not (run_dir / "topology.yaml").exists():
        (run_dir / "topology.yaml").write_text(dump_topology(topology))
    return load_dir


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_outputs(
    run_dir: Path,
    records: Iterable[TxRecord],
    summary: dict[str, Any],
    meta: dict[str, Any],
) -> dict[str, Path]:
    """Write the records, summary and meta of a run into ``run_dir/load``."""
    load_dir = run_dir / LOAD_DIR
    load_dir.mkdir(parents=True, exist_ok=True)
    ordered = sorted(records, key=lambda r: (r.submit_s, r.tx_id))
    table = to_table("transactions", columns_of(ordered))
    paths = {
        "records": load_dir / RECORDS_FILE,
        "summary": load_dir / SUMMARY_FILE,
        "meta": load_dir / META_FILE,
    }
    write_table(table, paths["records"])
    _write_json(paths["summary"], summary)
    _write_json(paths["meta"], {**meta, "software": software_versions()})
    return paths


def read_outputs(run_dir: Path) -> tuple[pa.Table, dict[str, Any], dict[str, Any]]:
    """(records, summary, meta) of the load run in ``run_dir``."""
    load_dir = run_dir / LOAD_DIR
    if not (load_dir / SUMMARY_FILE).exists():
        raise LoadError(f"{load_dir} holds no load summary ({SUMMARY_FILE})")
    records = read_table(load_dir / RECORDS_FILE, "transactions")
    summary = json.loads((load_dir / SUMMARY_FILE).read_text())
    meta = json.loads((load_dir / META_FILE).read_text())
    return records, summary, meta
