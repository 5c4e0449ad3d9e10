"""The state folder of a devnet: every file ``devnet up`` writes and every later command reads.

``StateDir(root)`` names the paths (layout in docs/devnet.md): ``devnet.json`` (``DevnetMeta``),
the resolved ``topology.yaml``, the 0600 ``control.token``, ``links.json``, ``p2p-keys.json`` (every
node's public P2P key), ``nodes/<n>/node.json``, ``p2p.key`` (0600) and ``data/``, ``logs/<n>.log``,
``pids/<n>.json`` (``ProcessRecord``), ``faults.jsonl`` and ``faults-active.json``, with
monitoring ``monitoring/``, the sampler's ``timeline.sqlite3`` and ``run-files/`` (files every run
folder collected from this devnet gets a copy of: monitoring's ``alerts.jsonl``). ``lock()``
serialises changes made by concurrent commands; ``token_warning()`` flags a token others can read.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bitcell_sim.devnet.processes import ProcessRecord
from bitcell_sim.errors import DevnetError
from bitcell_sim.monitoring.webhook import ALERTS_FILE
from bitcell_sim.protocol.keys import KeyPair

META_VERSION = 1
EMULATOR = "emulator"  # the process name of the link emulator in pids/ and logs/
SAMPLER = "sampler"  # the process name of the timeline sampler


@dataclass(frozen=True)
class DevnetMeta:
    """What ``devnet up`` decided: the network, its genesis time and the control API."""

    name: str
    topology_source: str
    host: str
    genesis_time_unix_s: float
    control_url: str
    created_unix_s: float
    python: str
    node_command: tuple[str, ...]
    version: int = META_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["node_command"] = list(self.node_command)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> DevnetMeta:
        if data.get("version") != META_VERSION:
            raise DevnetError(f"{source}: unsupported version {data.get('version')!r}")
        try:
            return cls(
                name=str(data["name"]),
                topology_source=str(data["topology_source"]),
                host=str(data["host"]),
                genesis_time_unix_s=float(data["genesis_time_unix_s"]),
                control_url=str(data["control_url"]),
                created_unix_s=float(data["created_unix_s"]),
                python=str(data["python"]),
                node_command=tuple(str(part) for part in data["node_command"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DevnetError(f"{source}: bad devnet metadata: {exc}") from None


def write_json(path: Path, data: object, mode: int = 0o644) -> None:
    """Write ``data`` as JSON atomically (temporary file renamed into place)."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    temporary.replace(path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, json.JSONDecodeError) as exc:
        raise DevnetError(f"{path}: cannot read: {exc}") from None


class StateDir:
    """The paths of one devnet's state folder (nothing is created until asked)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()
        self._lock_fd: int | None = None
        self._lock_depth = 0

    # ---- layout ---------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.root / "devnet.json"

    @property
    def topology_path(self) -> Path:
        return self.root / "topology.yaml"

    @property
    def token_path(self) -> Path:
        return self.root / "control.token"

    @property
    def links_path(self) -> Path:
        return self.root / "links.json"

    @property
    def p2p_keys_path(self) -> Path:
        return self.root / "p2p-keys.json"

    @property
    def pids_dir(self) -> Path:
        return self.root / "pids"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def faults_log_path(self) -> Path:
        return self.root / "faults.jsonl"

    @property
    def active_faults_path(self) -> Path:
        return self.root / "faults-active.json"

    @property
    def monitoring_dir(self) -> Path:
        """The rendered monitoring configs and the data of Prometheus and Alertmanager."""
        return self.root / "monitoring"

    @property
    def alerts_path(self) -> Path:
        """The webhook receiver's notifications, one JSON line each: a run file, so every
        measured run folder gets them (``monitoring.measured_pages_of_run`` reads them there)."""
        return self.run_files_dir / ALERTS_FILE

    @property
    def timeline_path(self) -> Path:
        return self.root / "timeline.sqlite3"

    @property
    def run_files_dir(self) -> Path:
        """Files a devnet component keeps for runs (e.g. monitoring's alert log): each run
        folder ``devnet collect`` writes gets a copy, under the same relative path."""
        return self.root / "run-files"

    def node_dir(self, node: str) -> Path:
        return self.root / "nodes" / node

    def node_config_path(self, node: str) -> Path:
        return self.node_dir(node) / "node.json"

    def node_data_dir(self, node: str) -> Path:
        return self.node_dir(node) / "data"

    def p2p_key_path(self, node: str) -> Path:
        return self.node_dir(node) / "p2p.key"

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def pid_path(self, name: str) -> Path:
        return self.pids_dir / f"{name}.json"

    # ---- files ----------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.meta_path.exists()

    def create(self) -> None:
        for folder in (self.root, self.pids_dir, self.logs_dir, self.root / "nodes"):
            folder.mkdir(parents=True, exist_ok=True)

    def write_token(self) -> str:
        """A new random control token, readable by the owner only (0600)."""
        token = secrets.token_urlsafe(32)
        self.token_path.unlink(missing_ok=True)
        fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
        return token

    def token_warning(self) -> str | None:
        """Why the control token file is unsafe (group or others may read it), or None."""
        try:
            mode = self.token_path.stat().st_mode & 0o777
        except OSError:
            return None
        if mode & 0o077:
            return (
                f"{self.token_path} is readable by others (mode {mode:04o}): anyone who can "
                f"read it controls the link emulator; run 'chmod 600 {self.token_path}'"
            )
        return None

    def write_p2p_keys(self, nodes: Iterable[str]) -> dict[str, str]:
        """A new secret P2P key per node (``nodes/<n>/p2p.key``, 0600) and the public keys of
        all of them in ``p2p-keys.json``; returns name -> public key in hex."""
        public: dict[str, str] = {}
        for node in nodes:
            keypair = KeyPair.generate()
            path = self.p2p_key_path(node)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(keypair.secret.hex() + "\n")
            public[node] = keypair.public_key.hex()
        write_json(self.p2p_keys_path, public)
        return public

    def read_p2p_keys(self) -> dict[str, str]:
        try:
            data = read_json(self.p2p_keys_path)
        except FileNotFoundError:
            raise DevnetError(f"{self.p2p_keys_path}: no P2P keys (made by devnet up)") from None
        return {str(k): str(v) for k, v in dict(data).items()}

    def read_token(self) -> str:
        try:
            return self.token_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise DevnetError(f"{self.token_path}: cannot read the control token: {exc}") from None

    def write_meta(self, meta: DevnetMeta) -> None:
        write_json(self.meta_path, meta.to_dict())

    def read_meta(self) -> DevnetMeta:
        try:
            data = read_json(self.meta_path)
        except FileNotFoundError:
            raise DevnetError(
                f"no devnet in {self.root} (no {self.meta_path.name}); start one with "
                f"'bitcell-sim devnet up TOPOLOGY --state-dir {self.root}'"
            ) from None
        return DevnetMeta.from_dict(data, str(self.meta_path))

    def save_record(self, record: ProcessRecord) -> None:
        write_json(self.pid_path(record.name), record.to_dict())

    def load_record(self, name: str) -> ProcessRecord | None:
        try:
            return ProcessRecord.from_dict(read_json(self.pid_path(name)))
        except FileNotFoundError:
            return None

    def remove_record(self, name: str) -> None:
        self.pid_path(name).unlink(missing_ok=True)

    def records(self) -> dict[str, ProcessRecord]:
        """Every process record in pids/, by name."""
        found: dict[str, ProcessRecord] = {}
        if not self.pids_dir.is_dir():
            return found
        for path in sorted(self.pids_dir.glob("*.json")):
            record = self.load_record(path.stem)
            if record is not None:
                found[record.name] = record
        return found

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder's lock: one command at a time changes processes or faults.

        Re-entrant on this object (a second flock on a new descriptor would deadlock).
        """
        if self._lock_fd is None:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd = fd
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0 and self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None
