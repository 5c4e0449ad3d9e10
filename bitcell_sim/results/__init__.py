"""Results: the record types shared by predictions and measurements, and run folders.

:mod:`~bitcell_sim.results.records` defines the tables (blocks, block arrivals, transactions,
node timeline); :class:`RunFolder` lays them out under ``results/<run-id>/``; a :class:`RunWindow`
(one :class:`FaultWindow` per fault) says what they cover; :func:`summarize` and
:func:`summarize_run` compute a run's headline figures and judge its expectations;
:func:`compare` judges the runs of two sides (:func:`read_runs`) metric by metric as PASS, FAIL
or UNKNOWN. The terminal tables, plots and comparison report (:mod:`~bitcell_sim.results.table`,
``plots``, ``report``; the last two import matplotlib) are imported from their modules.
"""

from bitcell_sim.results.compare import (
    FAIL,
    PASS,
    UNKNOWN,
    Comparison,
    MetricComparison,
    SideStats,
    compare,
    overall_verdict,
)
from bitcell_sim.results.records import (
    BLOCK_ARRIVALS,
    BLOCKS,
    NODE_TIMELINE,
    TABLES,
    TRANSACTIONS,
    check_table,
    read_table,
    to_table,
    write_table,
)
from bitcell_sim.results.run_folder import RunFolder, new_run_id, software_versions
from bitcell_sim.results.runs import RunRecords, read_runs
from bitcell_sim.results.summary import failed_expectations, summarize, summarize_run
from bitcell_sim.results.window import FaultWindow, RunWindow

__all__ = [
    "BLOCKS",
    "BLOCK_ARRIVALS",
    "FAIL",
    "NODE_TIMELINE",
    "PASS",
    "TABLES",
    "TRANSACTIONS",
    "UNKNOWN",
    "Comparison",
    "FaultWindow",
    "MetricComparison",
    "RunFolder",
    "RunRecords",
    "RunWindow",
    "SideStats",
    "check_table",
    "compare",
    "failed_expectations",
    "new_run_id",
    "overall_verdict",
    "read_runs",
    "read_table",
    "software_versions",
    "summarize",
    "summarize_run",
    "to_table",
    "write_table",
]
