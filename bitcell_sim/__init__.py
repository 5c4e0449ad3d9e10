"""bitcell-sim: predict, then measure, what a multi-region BitCell network does.

The public API: :func:`load_topology` and :class:`Topology` (the one validated input every part
reads), and the exception hierarchy rooted at :class:`BitcellSimError`.
"""

from bitcell_sim.errors import (
    BitcellSimError,
    DevnetError,
    FaultError,
    LoadError,
    ModelError,
    MonitoringError,
    NetemError,
    ResultsError,
    RpcError,
    TopologyError,
)
from bitcell_sim.topology import Topology, load_topology

__version__ = "0.1.0"

__all__ = [
    "BitcellSimError",
    "DevnetError",
    "FaultError",
    "LoadError",
    "ModelError",
    "MonitoringError",
    "NetemError",
    "ResultsError",
    "RpcError",
    "Topology",
    "TopologyError",
    "__version__",
    "load_topology",
]
