"""The link emulator: one user-space shaping TCP proxy per directed link between devnet nodes.

Links are ``LinkSpec`` (with the topology layer's ``LinkParams``: latency, jitter, bandwidth,
faults) read from a links file; ``Emulator`` serves them, ``ControlServer`` exposes faults over
HTTP, ``NetemClient`` drives that API, ``EmulatorProcess`` runs ``python -m bitcell_sim.netem``,
``ProbeServer`` and ``measure_delays`` measure a link from both ends. See docs/netem.md.
"""

from bitcell_sim.netem.client import NetemClient
from bitcell_sim.netem.control import ControlServer, build_app
from bitcell_sim.netem.emulator import DEFAULT_MAX_QUEUED_BYTES, Emulator, UnknownLinkError
from bitcell_sim.netem.linksfile import (
    links_from_json,
    links_to_json,
    read_links_file,
    write_links_file,
)
from bitcell_sim.netem.params import LinkSpec, check_loopback
from bitcell_sim.netem.probe import DelayProbe, DelaySample, ProbeServer, measure_delays
from bitcell_sim.netem.process import EmulatorProcess, parse_ready_line, serve
from bitcell_sim.netem.shaping import (
    InOrderClock,
    JitterSampler,
    Piece,
    Serializer,
    schedule_chunk,
    transmission_time_s,
)
from bitcell_sim.netem.state import LinkCounters, LinkState
from bitcell_sim.topology.jitter import JITTER_DISTRIBUTIONS, JitterDistribution
from bitcell_sim.topology.links import LinkParams

__all__ = [
    "DEFAULT_MAX_QUEUED_BYTES",
    "JITTER_DISTRIBUTIONS",
    "ControlServer",
    "DelayProbe",
    "DelaySample",
    "Emulator",
    "EmulatorProcess",
    "InOrderClock",
    "JitterDistribution",
    "JitterSampler",
    "LinkCounters",
    "LinkParams",
    "LinkSpec",
    "LinkState",
    "NetemClient",
    "Piece",
    "ProbeServer",
    "Serializer",
    "UnknownLinkError",
    "build_app",
    "check_loopback",
    "links_from_json",
    "links_to_json",
    "measure_delays",
    "parse_ready_line",
    "read_links_file",
    "schedule_chunk",
    "serve",
    "transmission_time_s",
    "write_links_file",
]
