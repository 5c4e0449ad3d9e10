"""The open-loop pacer: the topology's schedule, in due order, split across processes."""

from __future__ import annotations

import pytest

from bitcell_sim.errors import LoadError
from bitcell_sim.load import Pacer, Slot
from bitcell_sim.topology import arrival_schedule
from tests.model_topologies import variant


def schedule():
    topology = variant("rc3-fast", workload={"tps": 40, "start": "10 s", "duration": "20 s"})
    return topology, arrival_schedule(topology)


def drain(pacer: Pacer) -> list[Slot]:
    out = []
    while (slot := pacer.take()) is not None:
        out.append(slot)
    return out


def test_slots_are_the_schedule_on_the_load_timeline() -> None:
    topology, arrivals = schedule()
    slots = drain(Pacer(arrivals, origin_s=10.0))
    assert len(slots) == len(arrivals) > 700
    assert [s.index for s in slots] == list(range(len(arrivals)))
    assert [s.due_s for s in slots] == (arrivals.submit_s - 10.0).tolist()
    assert [s.node for s in slots] == arrivals.node_names().tolist()
    assert [s.gas_price for s in slots] == arrivals.gas_price.tolist()
    assert slots[0].due_s >= 0.0 and slots[-1].due_s < 20.0
    assert {s.node for s in slots} == set(topology.node_names)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_processes_split_the_schedule_exactly(count: int) -> None:
    _, arrivals = schedule()
    shares = [drain(Pacer(arrivals, 10.0, rank, count)) for rank in range(count)]
    merged = sorted(slot for share in shares for slot in share)
    assert [s.index for s in merged] == list(range(len(arrivals)))
    assert [len(s) for s in shares] == [len(Pacer(arrivals, 10.0, r, count)) for r in range(count)]


def test_a_slot_given_back_is_taken_first_and_exhaustion() -> None:
    _, arrivals = schedule()
    pacer = Pacer(arrivals, 10.0)
    first, second = pacer.take(), pacer.take()
    assert first is not None and second is not None and first < second
    pacer.give_back(first)
    assert pacer.taken == 1 and pacer.take() == first
    rest = drain(pacer)
    assert len(rest) == len(arrivals) - 2 and pacer.exhausted()
    assert pacer.take() is None


def test_rank_out_of_range_is_refused() -> None:
    _, arrivals = schedule()
    with pytest.raises(LoadError, match="process rank 2 of 2 is out of range"):
        Pacer(arrivals, 0.0, rank=2, count=2)
