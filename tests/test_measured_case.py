"""``as_it_happened``: the topology the model runs for a measured case, with the load where Locust
ran it (``load_shift_s`` of the measured ``meta.json``) and each fault where the devnet's journal
put it. Pure units: run records built in memory, the model's schedule drawn, no process."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import yaml

from bitcell_sim.cli.measured_case import as_it_happened
from bitcell_sim.errors import LoadError
from bitcell_sim.results.runs import RunRecords
from bitcell_sim.topology import Topology, Workload, dump_topology, load_topology, parse_topology
from tests.conftest import TOPOLOGIES

NODE_FAILURE = TOPOLOGIES / "scenarios" / "node_failure-fast.yaml"


def _variant(workload: dict[str, Any], duration: str) -> Topology:
    """rc3-fast with ``workload`` and ``general.duration`` replaced."""
    data = yaml.safe_load(dump_topology(load_topology(TOPOLOGIES / "rc3-fast.yaml")))
    data["workload"] = {"arrival": "poisson", **workload}
    data["general"]["duration"] = duration
    return parse_topology(yaml.safe_dump(data, sort_keys=False))


def _measured(topology: Topology, **meta: Any) -> RunRecords:
    return RunRecords(
        name="measured", topology=topology, tables={}, meta={"kind": "measured", **meta}
    )


def _submit_s(topology: Topology) -> np.ndarray:
    return Workload.of(topology).draw().submit_s


def _journal(topology: Topology, late_s: float) -> list[dict[str, Any]]:
    """The fault windows a journal records when each fault starts and ends ``late_s`` late."""
    return [
        {"kind": f.kind, "start_s": f.start_s + late_s, "end_s": f.end_s + late_s}
        for f in topology.faults
    ]


def test_tps_for_a_duration_moves_by_the_shift_and_keeps_its_length() -> None:
    planned = _variant({"tps": "50 TPS", "start": "3 s", "duration": "9 s"}, "27 s")
    moved = as_it_happened(_measured(planned, load_shift_s=3.0))
    assert moved.workload_stages() == ((6.0, 15.0, 50.0, 50.0),)
    assert moved.general.duration_s == 27.0
    # Tx i is the same tx in both worlds, sent 3 s later: the schedule Locust replayed.
    np.testing.assert_allclose(_submit_s(moved), _submit_s(planned) + 3.0)


def test_tps_to_the_end_of_the_run_is_pinned_and_the_run_extended() -> None:
    planned = _variant({"tps": "50 TPS", "start": "3 s"}, "15 s")
    assert planned.workload_stages() == ((3.0, 15.0, 50.0, 50.0),)
    moved = as_it_happened(_measured(planned, load_shift_s=6.0))
    # Without the pin the load would run to the (moved) end of the run: 6 s shorter.
    assert moved.workload.duration_s == 12.0
    assert moved.workload_stages() == ((9.0, 21.0, 50.0, 50.0),)
    assert moved.general.duration_s == 21.0
    np.testing.assert_allclose(_submit_s(moved), _submit_s(planned) + 6.0)


def test_stages_move_as_a_whole() -> None:
    stages = [{"duration": "6 s", "tps": 20}, {"duration": "6 s", "tps": 40, "ramp": True}]
    planned = _variant({"start": "3 s", "stages": stages}, "15 s")
    moved = as_it_happened(_measured(planned, load_shift_s=3.0))
    assert moved.workload.stages == planned.workload.stages
    assert moved.workload_stages() == ((6.0, 12.0, 20.0, 20.0), (12.0, 18.0, 20.0, 40.0))
    assert moved.general.duration_s == 18.0
    np.testing.assert_allclose(_submit_s(moved), _submit_s(planned) + 3.0)


def test_faults_stay_where_the_journal_put_them() -> None:
    planned = load_topology(TOPOLOGIES / "rc3-fast-faults.yaml")
    moved = as_it_happened(_measured(planned, load_shift_s=3.0, faults=_journal(planned, 0.25)))
    assert moved.workload_stages() == ((13.0, 73.0, 100.0, 100.0),)
    for fault, was in zip(moved.faults, planned.faults, strict=True):
        assert (fault.start_s, fault.end_s) == pytest.approx((was.start_s + 0.25, was.end_s + 0.25))


def test_a_run_folder_without_the_shift_keeps_the_load_as_planned() -> None:
    """Measured runs written before ``load_shift_s`` existed read as on time."""
    planned = load_topology(TOPOLOGIES / "rc3-fast-faults.yaml")
    moved = as_it_happened(_measured(planned, faults=_journal(planned, 0.25)))
    assert moved.workload == planned.workload and moved.general == planned.general
    assert moved.faults[0].start_s == pytest.approx(30.25)
    on_time = as_it_happened(_measured(planned, load_shift_s=0.0))
    assert on_time.workload == planned.workload and on_time.general == planned.general


def test_a_late_load_shortens_the_chaos_baseline_to_what_it_had() -> None:
    planned = load_topology(NODE_FAILURE)
    assert planned.scenario is not None and planned.scenario.baseline_s == 12.0
    moved = as_it_happened(_measured(planned, load_shift_s=3.0, faults=_journal(planned, 0.0)))
    assert moved.workload_stages()[0][0] == 6.0
    assert moved.scenario is not None and 8.99 <= moved.scenario.baseline_s < 9.0
    # The model's run folder stores this topology: it must read back (validated).
    assert parse_topology(dump_topology(moved)).scenario == moved.scenario


def test_a_load_that_started_after_the_first_fault_has_no_baseline() -> None:
    planned = load_topology(NODE_FAILURE)
    with pytest.raises(LoadError, match=r"started at 15 s, 12 s late.*first fault at 15 s"):
        as_it_happened(_measured(planned, load_shift_s=12.0, faults=_journal(planned, 0.0)))


def test_the_model_runs_as_long_as_the_records_cover() -> None:
    """The devnet stops a few rounds after the load: the model stops there too, so it adds no
    idle rounds (empty blocks) the measurement never had; the same txs are sent."""
    planned = _variant({"tps": "50 TPS", "start": "3 s", "duration": "9 s"}, "60 s")
    cut = as_it_happened(_measured(planned, window_s=[0.0, 20.9996]))
    assert cut.general.duration_s == 20.999
    assert cut.workload_stages() == planned.workload_stages()
    np.testing.assert_allclose(_submit_s(cut), _submit_s(planned))
    assert dump_topology(parse_topology(dump_topology(cut))) == dump_topology(cut)
    # Records that cover the whole run (or more) leave it as it is.
    assert as_it_happened(_measured(planned, window_s=[0.0, 61.0])).general.duration_s == 60.0


def test_a_load_to_the_end_of_the_run_keeps_its_length_when_the_run_is_cut() -> None:
    planned = _variant({"tps": "50 TPS", "start": "3 s"}, "30 s")
    cut = as_it_happened(_measured(planned, window_s=[0.0, 24.0]))
    assert cut.general.duration_s == 24.0
    assert cut.workload.duration_s == 27.0  # pinned first: the load ends with the records
    # The same txs as planned, up to the end of the records (the schedule ends with the run).
    planned_s = _submit_s(planned)
    np.testing.assert_allclose(_submit_s(cut), planned_s[planned_s < 24.0])
