"""The exception hierarchy of bitcell-sim.

Library code raises these; only the CLI prints them and exits. One base, one subclass per seam::

    BitcellSimError
     ├── TopologyError      a topology file that cannot be used (carries field paths)
     ├── RpcError           a JSON-RPC error answer or a transport failure (code, message)
     ├── DevnetError        a devnet that cannot start, stop or be reached
     ├── NetemError         the link emulator refused or failed an operation
     ├── FaultError         a fault that cannot be applied
     ├── ModelError         the model was asked for something it cannot simulate
     ├── MonitoringError    a monitoring config or tool (Prometheus, Alertmanager, HAProxy) failed
     ├── LoadError          a load run that cannot start or ended badly (e.g. a stalled chain)
     ├── ResultsError       a run folder or record table that cannot be written, read or compared
     └── DeployError        a topology that cannot be exported as a deployment, or measured there
"""

from __future__ import annotations

from collections.abc import Sequence


class BitcellSimError(Exception):
    """Base of every error bitcell-sim raises on purpose."""


class TopologyError(BitcellSimError):
    """A topology that fails validation: one or more ``(field path, message)`` problems."""

    def __init__(self, problems: Sequence[tuple[str, str]], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        head = f"invalid topology {self.source}" if self.source else "invalid topology"
        lines = [f"{head}:"]
        lines += [
            f"  {path}: {message}" if path else f"  {message}" for path, message in self.problems
        ]
        return "\n".join(lines)


class RpcError(BitcellSimError):
    """A JSON-RPC error object returned by a node (or an HTTP-level failure, code None)."""

    def __init__(self, code: int | None, message: str, data: object = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{code}: {message}" if code is not None else message)


class DevnetError(BitcellSimError):
    """The devnet cannot be started, stopped, or reached."""


class NetemError(BitcellSimError):
    """The link emulator refused or failed an operation."""


class FaultError(BitcellSimError):
    """A fault cannot be applied or reverted."""


class ModelError(BitcellSimError):
    """The model cannot simulate what it was asked to."""


class MonitoringError(BitcellSimError):
    """A monitoring configuration, tool or process cannot be made, checked or reached."""


class LoadError(BitcellSimError):
    """A load run cannot start or ended badly."""


class ResultsError(BitcellSimError):
    """A run folder or record table that cannot be written, read, compared or reported on."""


class DeployError(BitcellSimError):
    """A topology that cannot be exported as a deployment, or a deployment not measured."""
