"""Load: Locust against BitCell JSON-RPC, open-loop, with per-transaction confirmation records.

The pure parts live here and never import Locust (it monkey-patches the process with gevent):
the rate :class:`RateProfile`, the open-loop :class:`Pacer`, senders and :class:`TxFactory`,
records (:class:`TxLog`), the :class:`ChainWatcher` and stall detection, the :class:`LoadPlan`,
the per-process :class:`LoadSession`, :func:`summarize`, the run-folder outputs and
:class:`LocustProcess` to start Locust as a subprocess; ``load.sink`` is a minimal JSON-RPC
endpoint. The Locust side (``load.locust_users``, ``load.locust_run``) is imported only by
``loadtests/rpc.py``.
"""

from bitcell_sim.load.output import prepare_run_dir, read_outputs, write_outputs
from bitcell_sim.load.pacer import ARRIVALS, Arrival, ArrivalStream, Pacer, load_rng
from bitcell_sim.load.plan import (
    Endpoint,
    LoadPlan,
    parse_seconds,
    plan_from_host,
    plan_from_topology,
    users_for_rate,
)
from bitcell_sim.load.profile import RateProfile, RateStage
from bitcell_sim.load.rejections import CATEGORIES, reject_category, reject_reason
from bitcell_sim.load.runner import LocustProcess, default_locustfile, locust_argv
from bitcell_sim.load.senders import FreshSenders, FundedSenders, Lease, TxFactory
from bitcell_sim.load.session import LoadSession, SessionStatus, recipient_key
from bitcell_sim.load.summary import distribution, format_summary, summarize
from bitcell_sim.load.txlog import TxLog, TxRecord
from bitcell_sim.load.watcher import ChainReader, ChainWatcher, HeightSeen, Stall, StallDetector

__all__ = [
    "ARRIVALS",
    "CATEGORIES",
    "Arrival",
    "ArrivalStream",
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
    "RateProfile",
    "RateStage",
    "SessionStatus",
    "Stall",
    "StallDetector",
    "TxFactory",
    "TxLog",
    "TxRecord",
    "default_locustfile",
    "distribution",
    "format_summary",
    "load_rng",
    "locust_argv",
    "parse_seconds",
    "plan_from_host",
    "plan_from_topology",
    "prepare_run_dir",
    "read_outputs",
    "recipient_key",
    "reject_category",
    "reject_reason",
    "summarize",
    "users_for_rate",
    "write_outputs",
]
