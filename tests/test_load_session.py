"""One process's session without Locust: schedule, records, senders, and how a run ends."""

from __future__ import annotations

import pytest

from bitcell_sim.load import Endpoint, LoadSession, Slot, host_workload, plan_from_host
from bitcell_sim.load.session import END_DRAIN_TIMEOUT, END_DRAINED, END_STALL
from bitcell_sim.protocol.identity import funded_sender
from tests.test_load_watcher import Clock, FakeChain


def session(clock: Clock, chain: FakeChain, **plan: object) -> LoadSession:
    base = plan_from_host("http://127.0.0.1:1", tps=10, duration_s=2, round_s=1, drain_s=3)
    return LoadSession(
        base.with_overrides(**plan), chain, rank=0, count=1, start_unix_s=100.0, clock=clock
    )


def test_session_records_and_confirms() -> None:
    clock, chain = Clock(), FakeChain()
    clock.t = 100.0
    s = session(clock, chain, genesis_unix_s=90.0)
    assert (s.now_s(), s.run_start_s, s.load_time_s()) == (10.0, 10.0, 0.0)
    slots = []
    while (slot := s.take_slot()) is not None:
        slots.append(slot)
    schedule = s.arrivals
    assert len(slots) == len(schedule) == len(s.pacer)
    assert [x.index for x in slots] == list(range(len(schedule)))
    assert [x.gas_price for x in slots] == schedule.gas_price.tolist()
    assert [x.due_s for x in slots] == schedule.submit_s.tolist()  # the host's load starts at 0
    s.tick()  # baseline
    lease = s.lease()
    assert lease is not None
    tx = s.build(lease, slots[0])
    assert tx.gas_price == slots[0].gas_price
    clock.t = 100.3
    s.note_lag(Slot(0.25, 0, "n", 1))
    token = s.request_sent()
    clock.t = 100.9
    assert (s.in_flight, s.stuck(0.5), s.stuck(0.7)) == (1, 1, 0)
    s.request_answered(token)
    clock.t = 100.3
    record = s.record(lease, tx, "n", s.now_s(), 0.002, slots[0], "0x" + tx.tx_id().hex())
    assert record.accepted and record.submit_s == pytest.approx(10.3)
    assert s.status.lags_s == [pytest.approx(0.05)] and s.in_flight == 0
    assert s.sent == [(0, record.tx_id)]
    other = s.build(s.lease(), slots[1])  # type: ignore[arg-type]
    rejected = s.record(
        s.lease(),  # type: ignore[arg-type]
        other,
        "n",
        s.now_s(),
        0.001,
        error_code=-32603,
        error_message="Failed to add transaction to pool: Transaction pool full",
    )
    assert (rejected.accepted, rejected.reject_reason) == (False, "pool full")
    chain.add([tx.tx_id().hex()])
    clock.t = 101.0
    assert s.tick() is None  # load not over
    assert record.confirm_s == pytest.approx(11.0) and record.height == 1
    clock.t = 102.0
    assert s.tick() == END_DRAINED and s.ended and s.load_over


def test_session_ends_after_the_drain_or_on_a_stall() -> None:
    clock, chain = Clock(), FakeChain()
    clock.t = 100.0
    s = session(clock, chain)
    s.tick()
    lease = s.lease()
    tx = s.build(lease, Slot(0.0, 0, "n", 5))  # type: ignore[arg-type]
    s.record(lease, tx, "n", s.now_s(), 0.001, result=tx.tx_id().hex())  # type: ignore[arg-type]
    for t in (100.5, 101.5, 102.5, 103.5, 104.5):
        clock.t = t
        chain.add([])
        assert s.tick() is None
    clock.t = 105.0
    chain.add([])
    assert s.tick() == END_DRAIN_TIMEOUT and s.status.stall is None

    clock.t = 100.0
    s = session(clock, chain, stall_window_s=1.5)
    s.tick()
    s.record(lease, tx, "n", s.now_s(), 0.001, result=tx.tx_id().hex())  # type: ignore[arg-type]
    clock.t = 101.0
    assert s.tick() is None  # the window starts when the watcher first sees it pending
    clock.t = 102.5
    assert s.tick() == END_STALL
    assert s.status.stall is not None and s.status.to_dict()["stall"]["pending"] == 1


def test_funded_session_takes_its_share_of_the_accounts() -> None:
    clock, chain = Clock(), FakeChain()
    plan = plan_from_host("http://127.0.0.1:1", tps=10, duration_s=2).with_overrides(
        senders="funded", funded_accounts=5, network="net"
    )
    s = LoadSession(plan, chain, rank=1, count=2, start_unix_s=0.0, clock=clock)
    keys = [s.senders.acquire() for _ in range(3)]
    assert keys[-1] is None
    assert [k.keypair for k in keys[:2] if k] == [funded_sender("net", 1), funded_sender("net", 3)]
    assert s.lease() is None and s.status.not_submitted == {"no idle funded sender": 1}
    # Rank 1 of 2 takes the schedule's txs 1, 3, 5, ...
    assert [s.take_slot().index for _ in range(3)] == [1, 3, 5]  # type: ignore[union-attr]


def test_watching_every_node_confirms_each_tx_at_its_own_node() -> None:
    clock, a, b = Clock(), FakeChain(), FakeChain()
    clock.t = 100.0
    base = plan_from_host("http://127.0.0.1:1", tps=10, duration_s=2, round_s=1)
    plan = base.with_overrides(
        endpoints=(Endpoint("a", "endpoint", "http://a"), Endpoint("b", "endpoint", "http://b")),
        workload=host_workload("a", 10, 2, "poisson", 1),
        watch_node="all",
        stall_window_s=2.0,
    )
    s = LoadSession(plan, {"a": a, "b": b}, start_unix_s=100.0, clock=clock)
    s.tick()
    lease = s.lease()
    tx = s.build(lease, Slot(0.0, 0, "b", 5))  # type: ignore[arg-type]
    record = s.record(lease, tx, "b", s.now_s(), 0.001, result=tx.tx_id().hex())  # type: ignore[arg-type]
    a.add([record.tx_id])  # the block reached node a first
    clock.t = 100.5
    s.tick()
    assert record.confirm_s is None
    b.add([record.tx_id])
    clock.t = 100.7
    s.tick()
    assert record.confirm_s == pytest.approx(0.7) and record.height == 1
    assert set(s.status.to_dict()["watch"]) == set()  # filled in when the run ends
    # Node b stops making blocks while a new tx is pending: not a stall while a moves on.
    other = s.build(s.lease(), Slot(0.0, 1, "a", 5))  # type: ignore[arg-type]
    s.record(s.lease(), other, "a", s.now_s(), 0.001, result=other.tx_id().hex())  # type: ignore[arg-type]
    for t in (101.0, 102.0, 103.5):
        clock.t = t
        a.add([])
        assert s.tick() is None
    b.fail = "cannot connect"
    a.fail = "cannot connect"
    clock.t = 104.0
    assert s.tick() is None
    clock.t = 106.5
    assert s.tick() == END_STALL
    assert "and every other watched node" in s.status.stall.message()  # type: ignore[union-attr]
    assert set(s.status.watch["by_node"]) == {"a", "b"}
