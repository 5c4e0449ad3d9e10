"""Load: Locust against BitCell JSON-RPC, open-loop, with per-transaction confirmation records.

The pure parts live here and never import Locust (it monkey-patches the process with gevent):
the rate :class:`RateProfile`, the open-loop :class:`Pacer`, senders and :class:`TxFactory`,
records (:class:`TxLog`), the :class:`ChainWatcher` and stall detection, the :class:`LoadPlan`,
the per-process :class:`LoadSession`, :func:`summarize`, the run-folder outputs, a minimal
JSON-RPC :class:`Sink`, and :func:`run_locust` to start Locust as a subprocess. The Locust side
is ``bitcell_sim.load.locust_users`` and ``bitcell_sim.load.locust_run``, imported only by
``loadtests/rpc.py``.
"""
