"""Deploy: the validated topology as docker-compose, Kubernetes (+ Chaos Mesh) and Shadow files.

:func:`export_deployment` writes one format into a folder (:func:`deployment_files` renders it);
:func:`node_program` picks what the nodes run (the devnet node, or the real BitCell node, or a
command template). Names, labels and ports are the topology's in every format
(``deploy.naming``). It reads topologies only and imports no world.
"""

from bitcell_sim.deploy.export import (
    FORMATS,
    Export,
    deployment_files,
    export_deployment,
    parse_genesis_time,
)
from bitcell_sim.deploy.program import PROGRAMS, NodeProgram, node_config, node_program

__all__ = [
    "FORMATS",
    "PROGRAMS",
    "Export",
    "NodeProgram",
    "deployment_files",
    "export_deployment",
    "node_config",
    "node_program",
    "parse_genesis_time",
]
