"""Results: the record types shared by predictions and measurements, and run folders.

:mod:`~bitcell_sim.results.records` defines the tables (blocks, block arrivals, transactions,
node timeline); :class:`RunFolder` lays them out under ``results/<run-id>/``; :func:`summarize`
computes a run's headline figures and judges its expectations. The terminal tables
(:mod:`~bitcell_sim.results.table`) and plots (:mod:`~bitcell_sim.results.plots`, which imports
matplotlib) are imported from their modules.
"""

from bitcell_sim.results.records import (
    BLOCK_ARRIVALS,
    BLOCKS,
    NODE_TIMELINE,
    TABLES,
    TRANSACTIONS,
    read_table,
    to_table,
    write_table,
)
from bitcell_sim.results.run_folder import RunFolder, new_run_id, software_versions
from bitcell_sim.results.summary import failed_expectations, summarize

__all__ = [
    "BLOCKS",
    "BLOCK_ARRIVALS",
    "NODE_TIMELINE",
    "TABLES",
    "TRANSACTIONS",
    "RunFolder",
    "failed_expectations",
    "new_run_id",
    "read_table",
    "software_versions",
    "summarize",
    "to_table",
    "write_table",
]
