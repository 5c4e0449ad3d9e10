"""What the model refuses, with the bad value named."""

from __future__ import annotations

import pytest

from bitcell_sim.errors import ModelError
from bitcell_sim.model import Simulation
from tests.model_topologies import variant


def test_unbatched_tx_gossip_is_refused() -> None:
    topology = variant("rc3-fast", protocol={"gossip": {"tx_batch_interval": "0 ms"}})
    with pytest.raises(ModelError, match=r"tx_batch_interval \(=0.0 s\) must be > 0"):
        Simulation(topology)


def test_a_simulation_runs_once() -> None:
    sim = Simulation(variant("rc3-fast", general={"duration": "5 s"}))
    sim.run()
    with pytest.raises(ModelError, match="a Simulation runs once"):
        sim.run()
