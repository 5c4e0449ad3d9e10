"""Faults on a running devnet, each reversible, each written to the fault journal.

``DevnetFaults(devnet)`` applies the five fault kinds of the topology for real: ``kill``/
``region_down`` (SIGKILL), ``partition`` (the emulator cuts every directed link crossing the cut),
``add_latency`` (extra one-way latency on the links in and out of a node or region) and
``throttle`` (a CPU quota), on the nodes and links ``topology.scope`` selects, as the model
does. Each returns an ``ActiveFault`` kept in ``faults-active.json``; ``revert(id)`` undoes one,
``revert_all`` every one, and ``restart``/``region_up``/``heal``/``unthrottle`` undo by target.
Overlapping faults compose: a node stays down while any fault holds it, a link stays cut while
any partition holds it, extra latencies add up. ``restart_emulator`` mends the network when the
link emulator died: a new one, with the link faults in force applied again, and no node restarted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bitcell_sim.devnet.cluster import Devnet
from bitcell_sim.devnet.journal import FaultEvent, append_event
from bitcell_sim.devnet.launch import start_emulator
from bitcell_sim.devnet.plan import link_name
from bitcell_sim.devnet.processes import is_running, stop_processes
from bitcell_sim.devnet.state import EMULATOR, read_json, write_json
from bitcell_sim.errors import BitcellSimError, FaultError
from bitcell_sim.faults.throttle import (
    ThrottleHandle,
    apply_throttle,
    detect_backend,
    release_throttle,
)
from bitcell_sim.topology import (
    AddedLatency,
    CpuThrottle,
    Fault,
    NodeDown,
    Partition,
    RegionDown,
    boundary_links,
    partition_links,
    partition_sides,
    resolve_targets,
)

DOWN_KINDS = ("node_down", "region_down")


@dataclass(frozen=True)
class ActiveFault:
    """A fault in force on the devnet: what it holds (nodes or links) and how to undo it."""

    id: int
    kind: str
    target: str
    nodes: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    latency_s: float = 0.0
    share: float = 0.0
    label: str = ""
    applied_unix_s: float = 0.0
    throttles: tuple[dict[str, Any], ...] = ()  # ThrottleHandle dicts, cpu_throttle only

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("nodes", "links", "throttles"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActiveFault:
        values = dict(data)
        for key in ("nodes", "links", "throttles"):
            values[key] = tuple(values.get(key, ()))
        return cls(**values)


@dataclass
class _Active:
    next_id: int = 1
    faults: list[ActiveFault] = field(default_factory=list)


class DevnetFaults:
    """Applies and reverts faults on the devnet ``devnet`` (safe across processes: every
    change holds the state folder's lock and re-reads ``faults-active.json``)."""

    def __init__(self, devnet: Devnet, *, throttle_backend: str = "auto") -> None:
        self.devnet = devnet
        self.state = devnet.state
        self.topology = devnet.topology
        self.throttle_backend = throttle_backend

    @classmethod
    def open(cls, state_dir: str | Path, *, throttle_backend: str = "auto") -> DevnetFaults:
        return cls(Devnet.open(state_dir), throttle_backend=throttle_backend)

    # ---- bookkeeping --------------------------------------------------------------------------
    def _load(self) -> _Active:
        try:
            data = read_json(self.state.active_faults_path)
        except FileNotFoundError:
            return _Active()
        return _Active(
            int(data["next_id"]), [ActiveFault.from_dict(item) for item in data["faults"]]
        )

    def _save(self, active: _Active) -> None:
        write_json(
            self.state.active_faults_path,
            {"next_id": active.next_id, "faults": [f.to_dict() for f in active.faults]},
        )

    def active(self) -> list[ActiveFault]:
        """The faults in force, oldest first."""
        with self.state.lock():
            return list(self._load().faults)

    def _journal(self, action: str, fault: ActiveFault, **detail: Any) -> None:
        now = time.time()
        info: dict[str, Any] = {"nodes": list(fault.nodes), "links": list(fault.links)}
        if fault.kind == "added_latency":
            info["latency_s"] = fault.latency_s
        if fault.kind == "cpu_throttle":
            info["share"] = fault.share
        info.update(detail)
        append_event(
            self.state.faults_log_path,
            FaultEvent(
                time_unix_s=now,
                since_genesis_s=now - self.devnet.meta.genesis_time_unix_s,
                action=action,
                kind=fault.kind,
                target=fault.target,
                fault_id=fault.id,
                label=fault.label,
                detail=info,
            ),
        )

    def _add(self, active: _Active, fault: ActiveFault) -> ActiveFault:
        fault = replace(fault, id=active.next_id, applied_unix_s=time.time())
        active.next_id += 1
        active.faults.append(fault)
        return fault

    def _nodes(self, names: Sequence[str]) -> tuple[str, ...]:
        return resolve_targets(self.topology, names)

    def _node(self, node: str) -> str:
        if node not in self.topology.nodes:
            raise FaultError(
                f"unknown node {node!r} (nodes: {', '.join(self.topology.node_names)})"
            )
        return node

    def _region(self, region: str) -> str:
        if region not in self.topology.regions:
            raise FaultError(
                f"unknown region {region!r} (regions: {', '.join(self.topology.regions)})"
            )
        if not self.topology.nodes_in_region(region):
            raise FaultError(f"region {region!r} has no nodes")
        return region

    # ---- node and region down -----------------------------------------------------------------
    def _down(self, kind: str, target: str, nodes: tuple[str, ...], label: str) -> ActiveFault:
        with self.state.lock():
            active = self._load()
            fault = self._add(active, ActiveFault(0, kind, target, nodes=nodes, label=label))
            killed = [node for node in nodes if self.devnet.kill_node(node)]
            self._save(active)
            self._journal("apply", fault, killed=killed)
            return fault

    def kill(self, node: str, *, label: str = "") -> ActiveFault:
        """SIGKILL ``node``; it stays down until ``restart`` or the fault is reverted."""
        return self._down("node_down", node, (self._node(node),), label)

    def region_down(self, region: str, *, label: str = "") -> ActiveFault:
        """SIGKILL every node of ``region`` at once."""
        region = self._region(region)
        return self._down("region_down", region, self.topology.nodes_in_region(region), label)

    def _held_down(self, active: _Active, node: str) -> bool:
        return any(f.kind in DOWN_KINDS and node in f.nodes for f in active.faults)

    def _start_released(self, active: _Active, nodes: Iterable[str]) -> list[str]:
        """Start the nodes no down fault holds any more; re-apply throttles that hold them."""
        started = []
        for node in nodes:
            if self._held_down(active, node) or self.devnet.is_running(node):
                continue
            self.devnet.start_node(node)
            started.append(node)
            for index, fault in enumerate(active.faults):
                if fault.kind == "cpu_throttle" and node in fault.nodes:
                    active.faults[index] = self._rethrottle(fault, node)
        return started

    def restart(self, node: str) -> list[str]:
        """Release every down fault on ``node`` and start it (with its node.json and data dir)
        if it is not running; return the nodes started."""
        node = self._node(node)
        with self.state.lock():
            active = self._load()
            kept: list[ActiveFault] = []
            for fault in active.faults:
                if fault.kind in DOWN_KINDS and node in fault.nodes:
                    rest = tuple(n for n in fault.nodes if n != node)
                    self._journal("revert", replace(fault, nodes=(node,)))
                    if rest:
                        kept.append(replace(fault, nodes=rest))
                    continue
                kept.append(fault)
            active.faults = kept
            started = self._start_released(active, [node])
            self._save(active)
            return started

    def region_up(self, region: str) -> list[str]:
        """Revert every region-down fault of ``region`` and start the nodes it released."""
        region = self._region(region)
        with self.state.lock():
            faults = [f.id for f in self._load().faults if f.kind == "region_down"]
            faults = [i for i in faults if self._find(i).target == region]
            started: list[str] = []
            for fault_id in faults:
                started += self.revert(fault_id)
            # A region killed by hand (not through region_down) comes back too.
            active = self._load()
            started += self._start_released(active, self.topology.nodes_in_region(region))
            self._save(active)
            return started

    # ---- links --------------------------------------------------------------------------------
    def partition(
        self, groups: Sequence[Sequence[str]], *, bridges: Sequence[str] = (), label: str = ""
    ) -> ActiveFault:
        """Cut every directed link between different groups (node or region names); a single
        group is cut from all other nodes but ``bridges``, which keep every link."""
        sides = partition_sides(self.topology, groups, bridges)
        links = tuple(link_name(a, b) for a, b in partition_links(self.topology, sides))
        if not links:
            raise FaultError(f"the groups {list(map(list, groups))} cut no peer link")
        target = " | ".join(",".join(group) for group in groups)
        with self.state.lock():
            active = self._load()
            with self.devnet.netem() as netem:
                netem.partition(links)
            fault = self._add(active, ActiveFault(0, "partition", target, links=links, label=label))
            self._save(active)
            self._journal("apply", fault)
            return fault

    def heal(self) -> list[int]:
        """Revert every partition (and heal any link cut outside this API); return their ids."""
        with self.state.lock():
            ids = [f.id for f in self._load().faults if f.kind == "partition"]
            for fault_id in ids:
                self.revert(fault_id)
            with self.devnet.netem() as netem:
                netem.heal(None)
            return ids

    def add_latency(self, target: str, latency_s: float, *, label: str = "") -> ActiveFault:
        """Add ``latency_s`` one-way to every link in and out of node or region ``target``."""
        if not latency_s > 0:
            raise FaultError(f"added latency {latency_s!r} s must be > 0")
        nodes = self._nodes([target])
        links = tuple(link_name(a, b) for a, b in boundary_links(self.topology, nodes))
        if not links:
            raise FaultError(f"{target!r} has no link to the rest of the network")
        with self.state.lock():
            active = self._load()
            with self.devnet.netem() as netem:
                netem.add_extra_latency(links, latency_s)
            fault = self._add(
                active,
                ActiveFault(
                    0, "added_latency", target, nodes=nodes, links=links, latency_s=latency_s,
                    label=label,
                ),
            )  # fmt: skip
            self._save(active)
            self._journal("apply", fault)
            return fault

    def clear_latency(self, target: str | None = None) -> list[int]:
        """Revert the added-latency faults on ``target`` (None: all); return their ids."""
        with self.state.lock():
            ids = [
                f.id
                for f in self._load().faults
                if f.kind == "added_latency" and (target is None or f.target == target)
            ]
            for fault_id in ids:
                self.revert(fault_id)
            return ids

    # ---- CPU ----------------------------------------------------------------------------------
    def _throttle_one(self, node: str, share: float) -> ThrottleHandle:
        record = self.devnet.record(node)
        if record is None or not is_running(record):
            raise FaultError(f"node {node} is not running; nothing to throttle")
        backend = detect_backend(self.throttle_backend)
        kwargs = {
            "state_root": str(self.state.root),
            "log_path": self.state.log_path(f"throttle-{node}"),
            "python": self.devnet.meta.python,
        }
        try:
            return apply_throttle(record, share, backend=backend, **kwargs)  # type: ignore[arg-type]
        except FaultError:
            if self.throttle_backend != "auto" or backend == "signals":
                raise
            # A cgroup that looked writable refused us: fall back to the duty cycle.
            return apply_throttle(record, share, backend="signals", **kwargs)  # type: ignore[arg-type]

    def _rethrottle(self, fault: ActiveFault, node: str) -> ActiveFault:
        handles = [ThrottleHandle.from_dict(h) for h in fault.throttles]
        kept = [h for h in handles if h.name != node]
        for handle in handles:
            if handle.name == node:
                release_throttle(handle)
        kept.append(self._throttle_one(node, fault.share))
        return replace(fault, throttles=tuple(h.to_dict() for h in kept))

    def throttle(self, node: str, share: float, *, label: str = "") -> ActiveFault:
        """Limit ``node`` to ``share`` of one CPU (a newer throttle on it replaces an older)."""
        node = self._node(node)
        if not 0 < share <= 1:
            raise FaultError(f"CPU share {share!r} must be in (0, 1]")
        with self.state.lock():
            for fault in self._load().faults:
                if fault.kind == "cpu_throttle" and node in fault.nodes:
                    self.revert(fault.id)
            active = self._load()
            handle = self._throttle_one(node, share)
            fault = self._add(
                active,
                ActiveFault(
                    0, "cpu_throttle", node, nodes=(node,), share=share, label=label,
                    throttles=(handle.to_dict(),),
                ),
            )  # fmt: skip
            self._save(active)
            self._journal("apply", fault, backend=handle.backend)
            return fault

    def unthrottle(self, node: str) -> list[int]:
        """Revert every CPU throttle on ``node``; return their ids."""
        node = self._node(node)
        with self.state.lock():
            ids = [
                f.id for f in self._load().faults if f.kind == "cpu_throttle" and node in f.nodes
            ]
            for fault_id in ids:
                self.revert(fault_id)
            return ids

    # ---- the emulator -------------------------------------------------------------------------
    def restart_emulator(self, grace_s: float = 5.0) -> bool:
        """Start the link emulator again (stopping it first if it still runs) and apply the
        partitions and added latencies in force to its links; the nodes keep running and
        reconnect by themselves. Returns True if an emulator was still running."""
        with self.state.lock():
            record = self.devnet.record(EMULATOR)
            was_running = record is not None and is_running(record)
            if record is not None:
                stop_processes([record], grace_s)
                self.state.remove_record(EMULATOR)
            start_emulator(self.devnet)
            active = self._load().faults
            cut = sorted({link for f in active if f.kind == "partition" for link in f.links})
            extra: dict[str, float] = {}
            for fault in active:
                if fault.kind == "added_latency":
                    for link in fault.links:
                        extra[link] = extra.get(link, 0.0) + fault.latency_s
            with self.devnet.netem() as netem:
                if cut:
                    netem.partition(cut)
                by_total: dict[float, list[str]] = {}
                for link, total in extra.items():
                    by_total.setdefault(total, []).append(link)
                for total, links in by_total.items():
                    netem.set_extra_latency(links, total)
            return was_running

    # ---- generic ------------------------------------------------------------------------------
    def _find(self, fault_id: int) -> ActiveFault:
        for fault in self._load().faults:
            if fault.id == fault_id:
                return fault
        raise FaultError(f"no active fault with id {fault_id}")

    def revert(self, fault_id: int) -> list[str]:
        """Undo the active fault ``fault_id``; return the nodes it restarted (if any)."""
        with self.state.lock():
            active = self._load()
            fault = self._find(fault_id)
            active.faults = [f for f in active.faults if f.id != fault_id]
            started: list[str] = []
            if fault.kind in DOWN_KINDS:
                started = self._start_released(active, fault.nodes)
            elif fault.kind == "partition":
                still = {link for f in active.faults if f.kind == "partition" for link in f.links}
                heal = [link for link in fault.links if link not in still]
                if heal:
                    with self.devnet.netem() as netem:
                        netem.heal(heal)
            elif fault.kind == "added_latency":
                # Set, not subtract: the remaining faults' sum, so no float residue is left.
                totals: dict[float, list[str]] = {}
                for link in fault.links:
                    total = sum(
                        f.latency_s
                        for f in active.faults
                        if f.kind == "added_latency" and link in f.links
                    )
                    totals.setdefault(total, []).append(link)
                with self.devnet.netem() as netem:
                    for total, links in totals.items():
                        netem.set_extra_latency(links, total)
            elif fault.kind == "cpu_throttle":
                for handle in fault.throttles:
                    release_throttle(ThrottleHandle.from_dict(handle))
            self._save(active)
            self._journal("revert", fault, restarted=started)
            return started

    def revert_all(self) -> list[int]:
        """Undo every active fault, newest first; return their ids. Keeps going past a
        failure and raises FaultError naming all failures at the end."""
        with self.state.lock():
            ids = [f.id for f in reversed(self._load().faults)]
            errors = []
            for fault_id in ids:
                try:
                    self.revert(fault_id)
                except BitcellSimError as exc:
                    errors.append(f"fault {fault_id}: {exc}")
            if errors:
                raise FaultError("could not revert every fault:\n  " + "\n  ".join(errors))
            return ids

    def apply(self, fault: Fault) -> ActiveFault:
        """Apply one fault of a topology's ``faults`` list (the scheduler's entry point)."""
        label = fault.label
        if isinstance(fault, NodeDown):
            return self.kill(fault.target, label=label)
        if isinstance(fault, RegionDown):
            return self.region_down(fault.target, label=label)
        if isinstance(fault, Partition):
            return self.partition(
                [list(g) for g in fault.groups], bridges=fault.bridges, label=label
            )
        if isinstance(fault, AddedLatency):
            return self.add_latency(fault.target, fault.latency_s, label=label)
        if isinstance(fault, CpuThrottle):
            return self.throttle(fault.target, fault.share, label=label)
        raise FaultError(f"unknown fault {fault!r}")
