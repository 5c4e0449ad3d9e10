"""One load process's run: its share of the schedule, its senders, records and chain watcher.

A :class:`LoadSession` is what a Locust process (local runner or worker) holds for a run: the
:class:`~bitcell_sim.load.pacer.Pacer` for its rank, a :class:`~bitcell_sim.load.senders.TxFactory`
and senders, the :class:`~bitcell_sim.load.txlog.TxLog` and the watchers. Users ``take_slot``,
build with ``lease`` / ``build``, mark ``request_sent``, and ``record`` the answer; the watcher loop
calls ``tick`` until ``ended``. Nothing here imports Locust or gevent: clock and readers are given.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bitcell_sim.load.pacer import Pacer, Slot
from bitcell_sim.load.plan import Endpoint, LoadPlan
from bitcell_sim.load.rejections import reject_reason
from bitcell_sim.load.senders import FreshSenders, FundedSenders, Lease, TxFactory
from bitcell_sim.load.txlog import TxLog, TxRecord, strip_hex
from bitcell_sim.load.watcher import ChainReader, ChainWatcher, Stall
from bitcell_sim.protocol.identity import funded_sender
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.transaction import Transaction

#: A submission more than this behind its due time counts as late.
LATE_S = 0.010

END_DRAINED = "drained"
END_DRAIN_TIMEOUT = "drain timeout"
END_STALL = "stall"
END_STOPPED = "stopped"


def recipient_key(network: str) -> bytes:
    """The one account every load transaction pays (derived like the other identities)."""
    return KeyPair.from_seed(f"bitcell-sim/{network}/load-recipient").public_key


@dataclass
class SessionStatus:
    """How a process's run ended and what it saw besides the records."""

    rank: int
    end_reason: str | None = None
    stall: Stall | None = None
    lags_s: list[float] = field(default_factory=list)
    not_submitted: Counter[str] = field(default_factory=Counter)
    anomalies: Counter[str] = field(default_factory=Counter)
    watch: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "end_reason": self.end_reason,
            "stall": None if self.stall is None else self.stall.to_dict(),
            "not_submitted": dict(self.not_submitted),
            "anomalies": dict(self.anomalies),
            "watch": self.watch,
        }


class LoadSession:
    """The run of the process of ``rank`` among ``count``, started at ``start_unix_s``."""

    def __init__(
        self,
        plan: LoadPlan,
        readers: ChainReader | Mapping[str, ChainReader],
        *,
        rank: int = 0,
        count: int = 1,
        start_unix_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.plan = plan
        self.rank = rank
        self.count = count
        self.clock = clock
        self.start_unix_s = clock() if start_unix_s is None else start_unix_s
        # Records are in seconds since genesis when it is known, else since the run started.
        self.origin_unix_s = (
            plan.genesis_unix_s if plan.genesis_unix_s is not None else self.start_unix_s
        )
        self.arrivals = plan.workload.draw()
        self.pacer = Pacer(self.arrivals, plan.origin_s, rank, count)
        self.factory = TxFactory(recipient_key(plan.network), plan.tx_size_bytes)
        self.senders: FreshSenders | FundedSenders
        if plan.senders == "funded":
            mine = range(rank, plan.funded_accounts, count)
            if not mine:
                raise ValueError(
                    f"process {rank} of {count} gets none of the "
                    f"{plan.funded_accounts} funded accounts"
                )
            self.senders = FundedSenders([funded_sender(plan.network, i) for i in mine])
        else:
            self.senders = FreshSenders()
        self.log = TxLog()
        self.status = SessionStatus(rank)
        #: (schedule index, tx id) of every scheduled tx this process sent.
        self.sent: list[tuple[int, str]] = []
        self._requests: dict[int, float] = {}  # submissions awaiting an answer: start times
        self._tokens = itertools.count()
        if not isinstance(readers, Mapping):
            readers = {e.node: readers for e in plan.watched}
        per_node = len(plan.watched) > 1
        self.watchers = [
            ChainWatcher(
                readers[endpoint.node],
                self.log,
                endpoint.node,
                clock=self.now_s,
                stall_window_s=plan.stall_window_s,
                on_confirmed=lambda record: self.senders.confirmed(record.tx_id),
                on_reverted=lambda record: self.senders.unconfirmed(record.tx_id),
                own_records_only=per_node,
                read_pool=index == 0,
            )
            for index, endpoint in enumerate(plan.watched)
        ]

    # ---- clocks -----------------------------------------------------------------------------

    def now_s(self) -> float:
        """Now, in the records' time origin (seconds since genesis, or since the run start)."""
        return self.clock() - self.origin_unix_s

    def load_time_s(self) -> float:
        """Now on the load timeline (0 = this run's start)."""
        return self.clock() - self.start_unix_s

    @property
    def run_start_s(self) -> float:
        """The run's start in the records' time origin."""
        return self.start_unix_s - self.origin_unix_s

    @property
    def ended(self) -> bool:
        return self.status.end_reason is not None

    @property
    def load_over(self) -> bool:
        return self.ended or self.load_time_s() >= self.plan.duration_s

    # ---- what users do ----------------------------------------------------------------------

    def take_slot(self) -> Slot | None:
        """The next due slot of this process, None when its share of the schedule is done."""
        if self.ended:
            return None
        return self.pacer.take()

    def give_back(self, slot: Slot) -> None:
        self.pacer.give_back(slot)

    def endpoint_for(self, slot: Slot) -> Endpoint:
        return self.plan.endpoint_for(slot.node)

    def note_lag(self, slot: Slot) -> float:
        """Record how far behind its due time a submission goes out; return the lag."""
        lag = max(self.load_time_s() - slot.due_s, 0.0)
        self.status.lags_s.append(lag)
        return lag

    @property
    def in_flight(self) -> int:
        """Submissions sent and not yet answered."""
        return len(self._requests)

    def request_sent(self) -> int:
        """A submission goes out now; returns the token to call ``request_answered`` with."""
        token = next(self._tokens)
        self._requests[token] = self.clock()
        return token

    def request_answered(self, token: int) -> None:
        self._requests.pop(token, None)

    def stuck(self, older_than_s: float) -> int:
        """Submissions waiting for their answer for longer than ``older_than_s``."""
        cutoff = self.clock() - older_than_s
        return sum(1 for started in self._requests.values() if started < cutoff)

    def lease(self) -> Lease | None:
        """A sender for the next transaction, or None (counted) if every funded one is busy."""
        lease = self.senders.acquire()
        if lease is None:
            self.status.not_submitted["no idle funded sender"] += 1
        return lease

    def build(self, lease: Lease, slot: Slot) -> Transaction:
        """The signed tx of ``slot``, with the schedule's gas price."""
        assert lease.nonce is not None
        return self.factory.build(lease.keypair, lease.nonce, lease.amount, slot.gas_price)

    def record(
        self,
        lease: Lease,
        tx: Transaction,
        node: str,
        submit_s: float,
        latency_s: float | None,
        slot: Slot | None = None,
        result: str | None = None,
        error_code: int | None = None,
        error_message: str | None = None,
        http_status: int | None = None,
    ) -> TxRecord:
        """Record one answer to the tx of ``slot``: ``result`` is the returned tx id, else the
        error's parts."""
        tx_id = tx.tx_id().hex()
        if result is not None:
            returned = strip_hex(result)
            if returned != tx_id:
                # The node hashed something else than we sent: count it, match on its id.
                self.status.anomalies["tx id differs from the node's"] += 1
            record = TxRecord(returned, node, submit_s, latency_s, True)
            self.senders.accepted(lease, returned)
        else:
            message = error_message or ""
            reason = reject_reason(error_code, message, http_status)
            record = TxRecord(tx_id, node, submit_s, latency_s, False, error_code, reason)
            # Without an answer we cannot know whether the node took it: re-read the nonce.
            self.senders.rejected(lease, message if error_code is not None else None)
        self.log.add(record)
        if slot is not None:
            self.sent.append((slot.index, record.tx_id))
        return record

    # ---- the watcher loop -------------------------------------------------------------------

    def tick(self) -> str | None:
        """One poll of every watched node and the end checks; the end reason once ended.

        The chain counts as stalled only when every watched node is stalled: one node that is
        down (a fault) does not end the run while the others make blocks.
        """
        if self.ended:
            return self.status.end_reason
        stalls = [watcher.poll() for watcher in self.watchers]
        if all(stall is not None for stall in stalls):
            first = stalls[0]
            assert first is not None
            if len(stalls) > 1:
                first = replace(first, node=f"{first.node} (and every other watched node)")
            self.status.stall = first
            return self.end(END_STALL)
        t = self.load_time_s()
        if t >= self.plan.duration_s and self.in_flight == 0:
            if not self.log.pending:
                return self.end(END_DRAINED)
            if t >= self.plan.duration_s + self.plan.drain_s:
                return self.end(END_DRAIN_TIMEOUT)
        return None

    def end(self, reason: str) -> str:
        if self.status.end_reason is None:
            self.status.end_reason = reason
            self.status.watch = self.watchers[0].stats.to_dict()
            if len(self.watchers) > 1:
                self.status.watch["by_node"] = {w.node: w.stats.to_dict() for w in self.watchers}
        return self.status.end_reason
