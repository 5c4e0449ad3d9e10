"""BitCell JSON-RPC load test: signed transactions at an open-loop target rate, plus reads.

    locust -f loadtests/rpc.py --headless --topology topologies/rc3-fast.yaml
    locust -f loadtests/rpc.py --host http://127.0.0.1:8545                # web UI, one node
    locust -f loadtests/rpc.py --host http://127.0.0.1:8545 --headless -t 30s --tps 50

With ``--topology`` the topology's arrival schedule (the model's: same times, nodes and gas
prices) is replayed to its nodes; with a bare ``--host`` the load is ``--tps`` (default 100)
for ``--duration`` (default 60 s, or ``-t`` if shorter), Poisson unless ``--arrival constant``,
``--seed`` its seed. ``--tps`` means what it means for ``bitcell-sim run`` (a constant rate over
the workload's window, its start kept) and ``--duration`` what it means for ``bitcell-sim load``
(how long the load lasts). Locust's ``-t`` ends the run at that time at the latest (drain included:
give a ``--duration`` shorter than ``-t`` to leave time for confirmations), ``-u`` fixes the
user count (default: sized to the rate and grown for answers that are slow) and ``-r`` the
spawn rate. The rest (senders, watcher, result files) is bitcell_sim.load (docs/load.md); this
file only declares the tasks and their weights.
"""

from locust import task

from bitcell_sim.load.locust_run import WorkloadShape
from bitcell_sim.load.locust_users import BitcellUser, declare_users
from bitcell_sim.protocol.jsonrpc import Method

__all__ = ["WorkloadShape"]


class RpcUser(BitcellUser):
    abstract = True

    @task(20)
    def send_raw_transaction(self) -> None:
        self.submit_transaction()

    @task(2)
    def block_number(self) -> None:
        self.read(Method.BLOCK_NUMBER)

    @task(1)
    def latest_block(self) -> None:
        self.read(Method.GET_BLOCK_BY_NUMBER, ["latest", False])

    @task(1)
    def balance(self) -> None:
        self.read(Method.GET_BALANCE, [self.some_address(), "latest"])

    @task(1)
    def transaction_count(self) -> None:
        self.read(Method.GET_TRANSACTION_COUNT, [self.some_address(), "latest"])

    @task(1)
    def pending_block_info(self) -> None:
        self.read(Method.GET_PENDING_BLOCK_INFO)


# The runnable user class (its host: --host, or the first node of --topology).
globals().update(declare_users(RpcUser))
