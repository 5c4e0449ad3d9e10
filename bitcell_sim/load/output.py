"""Where a load run's own files go: ``<run-dir>/load/`` inside a run folder.

The load process writes what it saw there, through :class:`~bitcell_sim.results.RunFolder`:
:func:`prepare_run_dir` makes ``<run-dir>`` a run folder (with the resolved ``topology.yaml``
when the run has a topology); :func:`write_outputs` writes ``transactions.parquet`` (the shared
``TRANSACTIONS`` records, confirmed as the load's watcher saw them), ``summary.json`` and
``meta.json`` beside Locust's own ``--csv``/``--html`` files; :func:`read_outputs` reads them
back. On a devnet, ``bitcell-sim load`` then collects the run's records into the folder itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from bitcell_sim.errors import LoadError
from bitcell_sim.load.txlog import TxRecord, columns_of
from bitcell_sim.results import RunFolder, to_table
from bitcell_sim.results.run_folder import software_versions
from bitcell_sim.topology import Topology

LOAD_DIR = "load"
SUMMARY_FILE = f"{LOAD_DIR}/summary.json"
META_FILE = f"{LOAD_DIR}/meta.json"
LOCUST_CSV_PREFIX = "locust"
LOCUST_HTML = "locust.html"


def prepare_run_dir(run_dir: Path, topology: Topology | None) -> RunFolder:
    """The run folder ``run_dir`` (made if needed, with the topology) and its ``load/``.

    An existing run folder (e.g. made by ``bitcell-sim load``) is reused; refuses one that holds
    load results already, or a folder with other files but no topology.
    """
    folder = RunFolder.prepare(run_dir, topology, may_hold=(LOAD_DIR,))
    if folder.has_records("transactions", LOAD_DIR):
        raise LoadError(f"{folder.path / LOAD_DIR} already holds the records of a load run")
    folder.subfolder(LOAD_DIR)
    return folder


def write_outputs(
    run_dir: Path,
    records: Iterable[TxRecord],
    summary: dict[str, Any],
    meta: dict[str, Any],
) -> dict[str, Path]:
    """Write the records, summary and meta of a run into ``run_dir/load``."""
    folder = RunFolder(run_dir)
    ordered = sorted(records, key=lambda r: (r.submit_s, r.tx_id))
    return {
        "records": folder.write_records(
            "transactions", to_table("transactions", columns_of(ordered)), LOAD_DIR
        ),
        "summary": folder.write_json(SUMMARY_FILE, summary),
        "meta": folder.write_json(META_FILE, {**meta, "software": software_versions()}),
    }


def read_outputs(run_dir: Path) -> tuple[pa.Table, dict[str, Any], dict[str, Any]]:
    """(records, summary, meta) of the load run in ``run_dir``."""
    folder = RunFolder(run_dir)
    if not (run_dir / SUMMARY_FILE).exists():
        raise LoadError(f"{run_dir / LOAD_DIR} holds no load summary ({SUMMARY_FILE})")
    return (
        folder.read_records("transactions", LOAD_DIR),
        folder.read_json(SUMMARY_FILE),
        folder.read_json(META_FILE),
    )
