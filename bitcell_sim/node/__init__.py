"""The BitCell-compatible devnet node: ``python -m bitcell_sim.node --config node.json``.

``NodeConfig``/``load_config`` read the process config, ``NodeSettings`` resolves it against the
topology, ``Node`` is the running node (RPC, metrics, health, tournament, gossip, sync, chain on
disk) and ``run_node`` runs one until a signal. See docs/node.md.
"""

from bitcell_sim.node.config import NodeConfig, NodeSettings, load_config
from bitcell_sim.node.node import Node

__all__ = ["Node", "NodeConfig", "NodeSettings", "load_config"]
