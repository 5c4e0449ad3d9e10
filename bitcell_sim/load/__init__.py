"""Load: Locust against BitCell JSON-RPC, open-loop, with per-transaction confirmation records.

The pure parts live here and never import Locust (it monkey-patches the process with gevent):
the open-loop :class:`Pacer` over the topology's arrival schedule, senders and :class:`TxFactory`,
records (:class:`TxLog`), the :class:`ChainWatcher` and stall detection, the :class:`LoadPlan`,
the per-process :class:`LoadSession`, :func:`summarize`, the run-folder outputs and
:class:`LocustProcess` to start Locust as a subprocess; ``load.sink`` is a minimal JSON-RPC
endpoint. The Locust side (``load.locust_users``, ``load.locust_run``) is imported only by
``loadtests/rpc.py``.
"""

from bitcell_sim.load.output import prepare_run_dir, read_outputs, write_outputs
from bitcell_sim.load.pacer import Pacer, Slot
from bitcell_sim.load.plan import (
    Endpoint,
    LoadPlan,
    host_workload,
    parse_seconds,
    plan_from_host,
    plan_from_options,
    plan_from_topology,
    users_for_rate,
)
from bitcell_sim.load.rejections import CATEGORIES, reject_category, reject_reason
from bitcell_sim.load.replay import REPLAY, replay_table, write_replay
from bitcell_sim.load.runner import LocustProcess, default_locustfile, locust_argv
from bitcell_sim.load.senders import FreshSenders, FundedSenders, Lease, TxFactory
from bitcell_sim.load.session import LoadSession, SessionStatus, recipient_key
from bitcell_sim.load.summary import distribution, format_summary, summarize
from bitcell_sim.load.txlog import TxLog, TxRecord
from bitcell_sim.load.watcher import ChainReader, ChainWatcher, HeightSeen, Stall, StallDetector

__all__ = [
    "CATEGORIES",
    "REPLAY",
    "ChainReader",
    "ChainWatcher",
    "Endpoint",
    "FreshSenders",
    "FundedSenders",
    "HeightSeen",
    "Lease",
    "LoadPlan",
    "LoadSession",
    "LocustProcess",
    "Pacer",
    "SessionStatus",
    "Slot",
    "Stall",
    "StallDetector",
    "TxFactory",
    "TxLog",
    "TxRecord",
    "default_locustfile",
    "distribution",
    "format_summary",
    "host_workload",
    "locust_argv",
    "parse_seconds",
    "plan_from_host",
    "plan_from_options",
    "plan_from_topology",
    "prepare_run_dir",
    "read_outputs",
    "recipient_key",
    "reject_category",
    "reject_reason",
    "replay_table",
    "summarize",
    "users_for_rate",
    "write_outputs",
    "write_replay",
]
