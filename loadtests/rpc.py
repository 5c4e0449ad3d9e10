"""BitCell JSON-RPC load test: signed transactions at an open-loop target rate, plus reads.

    locust -f loadtests/rpc.py --headless --topology topologies/rc3-fast.yaml
    locust -f loadtests/rpc.py --host http://127.0.0.1:8545          # web UI, one node

The rate, shape, senders, confirmation watcher and result files come from bitcell_sim.load
(docs/load.md); this file only declares the tasks and their weights.
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


# One user class per region of --topology (weighted by the workload), or one for --host.
globals().update(declare_users(RpcUser))
