"""The load plan: everything a load process needs, resolved from a topology or a single host.

:class:`LoadPlan` holds the RPC :class:`Endpoint`\\ s, the :class:`~bitcell_sim.topology.Workload`
whose arrival schedule the load replays (the model's), senders, tx size, round length and the
watcher's poll interval, stall window and drain. :func:`plan_from_topology`, :func:`plan_from_host`
and :func:`plan_from_options` (the locustfile's options) build one; :func:`users_for_rate` sizes
the user pool.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from bitcell_sim.errors import LoadError
from bitcell_sim.protocol.transaction import BASE_SIZE_BYTES
from bitcell_sim.topology import (
    ARRIVAL_PROCESSES,
    ArrivalProcess,
    RateProfile,
    TargetRegion,
    Topology,
    Workload,
    apply_overrides,
    load_topology,
)
from bitcell_sim.topology.schema import GasPriceSpec
from bitcell_sim.topology.units import parse_duration_arg, parse_rate

Senders = Literal["fresh", "funded"]
SENDERS: tuple[Senders, ...] = ("fresh", "funded")

#: Round length assumed for a bare host (BitCell's default 5 s + 5 s + 5 s).
DEFAULT_ROUND_S = 15.0
#: The chain has stalled when its height has not moved for this many rounds.
DEFAULT_STALL_ROUNDS = 4.0
#: After the last submission, wait up to this many rounds for confirmations.
DEFAULT_DRAIN_ROUNDS = 3.0
MIN_DRAIN_S = 10.0
#: Each user may be busy this long per transaction before the rate would drop.
DEFAULT_USER_BUDGET_S = 0.5
#: A bare host (no topology) gets this load unless told otherwise: BitCell's RC3 target.
DEFAULT_HOST_TPS = 100.0
DEFAULT_HOST_DURATION_S = 60.0
#: The one "region" of a bare host.
HOST_REGION = "endpoint"
#: ``watch_node`` value: follow every endpoint; a tx is confirmed when its own node has its block.
WATCH_ALL = "all"


def parse_seconds(text: str | float) -> float:
    """Seconds from ``"90"``, ``90`` or a unit string such as ``"1.5 min"`` / ``"500 ms"``."""
    try:
        return parse_duration_arg(text)
    except ValueError as exc:
        raise LoadError(f"duration {text!r} is not valid: {exc}") from None


def default_poll_interval_s(round_s: float) -> float:
    """A twentieth of a round, between 50 ms and 1 s: confirmations to ~5% of a round."""
    return min(max(round_s / 20, 0.05), 1.0)


def default_drain_s(round_s: float) -> float:
    """``DEFAULT_DRAIN_ROUNDS`` rounds, at least ``MIN_DRAIN_S``: time for the last txs to land."""
    return max(DEFAULT_DRAIN_ROUNDS * round_s, MIN_DRAIN_S)


@dataclass(frozen=True)
class Endpoint:
    """One node's JSON-RPC endpoint: ``url`` is the base (``/rpc`` is appended by callers)."""

    node: str
    region: str
    url: str


@dataclass(frozen=True)
class LoadPlan:
    network: str
    endpoints: tuple[Endpoint, ...]
    workload: Workload
    senders: Senders = "fresh"
    funded_accounts: int = 0
    tx_size_bytes: int = BASE_SIZE_BYTES
    round_s: float = DEFAULT_ROUND_S
    poll_interval_s: float = 0.75
    stall_window_s: float = DEFAULT_ROUND_S * DEFAULT_STALL_ROUNDS
    drain_s: float = DEFAULT_ROUND_S * DEFAULT_DRAIN_ROUNDS
    watch_node: str = ""
    users: int | None = None
    user_budget_s: float = DEFAULT_USER_BUDGET_S
    genesis_unix_s: float | None = None
    topology_name: str | None = None
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise LoadError("a load plan needs at least one RPC endpoint")
        names = {e.node for e in self.endpoints}
        if len(self.endpoints) > 1:
            unknown = sorted(set(self.workload.nodes) - names)
            if unknown:
                raise LoadError(
                    f"the schedule sends to {', '.join(unknown)}, which have no RPC endpoint"
                )
        if self.senders not in SENDERS:
            raise LoadError(f"senders {self.senders!r} must be one of {', '.join(SENDERS)}")
        if self.senders == "funded" and self.funded_accounts < 1:
            raise LoadError(
                "senders 'funded' needs genesis-funded accounts, but the topology's "
                "genesis.funded_accounts is 0"
            )
        for name in ("round_s", "poll_interval_s", "stall_window_s"):
            if getattr(self, name) <= 0:
                raise LoadError(f"{name}(={getattr(self, name)}) must be > 0")
        if self.drain_s < 0:
            raise LoadError(f"drain_s(={self.drain_s}) must be >= 0")
        if self.users is not None and self.users < 1:
            raise LoadError(f"users(={self.users}) must be >= 1")
        if self.watch_node != WATCH_ALL and self.watch_node not in names:
            raise LoadError(
                f"watch node {self.watch_node!r} is not one of the endpoints "
                f"({', '.join(e.node for e in self.endpoints)}) nor {WATCH_ALL!r}"
            )

    @property
    def origin_s(self) -> float:
        """Load time 0 on the schedule's clock: the workload's start, in seconds since genesis."""
        return self.workload.profile.start_s

    @property
    def profile(self) -> RateProfile:
        """The target rate on the load timeline (0 = the run's start)."""
        return self.workload.profile.shifted(-self.origin_s)

    @property
    def duration_s(self) -> float:
        return self.profile.duration_s

    @property
    def is_host(self) -> bool:
        """All load goes to one bare endpoint (not the nodes of a topology)."""
        return len(self.endpoints) == 1 and self.endpoints[0].region == HOST_REGION

    def endpoint_for(self, node: str) -> Endpoint:
        """Where a scheduled tx for ``node`` goes: that node's endpoint, or the one bare host."""
        if self.is_host:
            return self.endpoints[0]
        for endpoint in self.endpoints:
            if endpoint.node == node:
                return endpoint
        raise LoadError(f"no RPC endpoint for node {node!r}")

    @property
    def watched(self) -> tuple[Endpoint, ...]:
        """The endpoints the watcher polls: every one (``all``) or the watch node."""
        if self.watch_node == WATCH_ALL:
            return self.endpoints
        return tuple(e for e in self.endpoints if e.node == self.watch_node)

    def start_unix_s(self, earliest_unix_s: float) -> float:
        """When the run starts, at ``earliest_unix_s`` or later.

        With a known genesis the schedule keeps its place in the rounds: load time 0 is the
        workload's start, ``genesis + workload.start``, or a whole number of rounds after it,
        so every tx is sent at its scheduled time (or that many rounds later) since genesis.
        """
        if self.genesis_unix_s is None:
            return earliest_unix_s
        first = self.genesis_unix_s + self.origin_s
        if first >= earliest_unix_s:
            return first
        return first + math.ceil((earliest_unix_s - first) / self.round_s) * self.round_s

    def users_at(self, t_s: float, processes: int = 1, lookahead_s: float = 10.0) -> int:
        """Users the shape should run at load time ``t_s`` (the rate of the next seconds)."""
        if self.users is not None:
            return self.users
        tps = self.profile.peak_between(max(t_s, 0.0), t_s + lookahead_s)
        return users_for_rate(tps, len(self.endpoints), processes, self.user_budget_s)

    def with_overrides(self, **changes: Any) -> LoadPlan:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["endpoints"] = [asdict(e) for e in self.endpoints]
        data["workload"] = self.workload.to_dict()
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadPlan:
        values = dict(data)
        values["endpoints"] = tuple(Endpoint(**e) for e in data["endpoints"])
        values["workload"] = Workload.from_dict(data["workload"])
        values["notes"] = tuple(data.get("notes", ()))
        return cls(**values)


def users_for_rate(
    tps: float, nodes: int, processes: int = 1, budget_s: float = DEFAULT_USER_BUDGET_S
) -> int:
    """Enough users that each may spend ``budget_s`` per transaction at ``tps``, plus two per
    target node and process, so every node's next tx has someone to take it."""
    return math.ceil(max(tps, 0.0) * budget_s) + 2 * max(nodes, 1) * max(processes, 1)


def plan_from_topology(
    topology: Topology,
    *,
    senders: Senders | None = None,
    users: int | None = None,
    watch_node: str | None = None,
    poll_interval_s: float | None = None,
    stall_rounds: float = DEFAULT_STALL_ROUNDS,
    drain_s: float | None = None,
    genesis_unix_s: float | None = None,
) -> LoadPlan:
    """Endpoints ``http://<devnet.host>:<rpc_port>`` of every node; the topology's workload.

    Give ``--tps``, ``--duration``, ``--arrival`` and ``--seed`` to the topology first
    (:func:`~bitcell_sim.topology.apply_overrides`), so that the run folder's topology and the
    model reproduce the very schedule the load sends.
    """
    host = topology.devnet.host
    endpoints = tuple(
        Endpoint(name, node.region, f"http://{host}:{node.rpc_port}")
        for name, node in topology.nodes.items()
    )
    if watch_node not in (None, WATCH_ALL, *topology.nodes):
        raise LoadError(
            f"watch node {watch_node!r} is not in the topology ({', '.join(topology.nodes)}) "
            f"nor {WATCH_ALL!r}"
        )
    round_s = topology.protocol.round_s
    return LoadPlan(
        network=topology.general.name,
        endpoints=endpoints,
        workload=Workload.of(topology),
        senders=senders or topology.workload.senders,
        funded_accounts=topology.genesis.funded_accounts,
        tx_size_bytes=topology.protocol.tx_size_bytes,
        round_s=round_s,
        poll_interval_s=poll_interval_s or default_poll_interval_s(round_s),
        stall_window_s=stall_rounds * round_s,
        drain_s=default_drain_s(round_s) if drain_s is None else drain_s,
        watch_node=watch_node or (WATCH_ALL if len(endpoints) > 1 else endpoints[0].node),
        users=users,
        genesis_unix_s=genesis_unix_s,
        topology_name=topology.general.name,
    )


def endpoint_name(url: str) -> str:
    """``host:port`` of a URL: the node name of a bare host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadError(f"host {url!r} must be an http:// or https:// URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def host_workload(
    node: str, tps: float, duration_s: float, arrival: ArrivalProcess, seed: int
) -> Workload:
    """The schedule of a bare endpoint: ``tps`` for ``duration_s`` from 0, all to ``node``."""
    if not tps >= 0:
        raise LoadError(f"tps(={tps}) must be >= 0")
    if not duration_s > 0:
        raise LoadError(f"duration(={duration_s} s) must be > 0")
    if arrival not in ARRIVAL_PROCESSES:
        raise LoadError(f"arrival {arrival!r} must be one of {', '.join(ARRIVAL_PROCESSES)}")
    gas = GasPriceSpec()
    return Workload(
        profile=RateProfile.constant(tps, duration_s),
        arrival=arrival,
        nodes=(node,),
        regions=(TargetRegion(HOST_REGION, 1.0, (0,)),),
        gas_price_min=gas.min,
        gas_price_max=gas.max,
        seed=seed,
        until_s=duration_s,
    )


def plan_from_host(
    url: str,
    *,
    tps: float | None = None,
    duration_s: float | None = None,
    topology: Topology | None = None,
    network: str | None = None,
    round_s: float | None = None,
    senders: Senders | None = None,
    arrival: ArrivalProcess | None = None,
    users: int | None = None,
    poll_interval_s: float | None = None,
    stall_rounds: float = DEFAULT_STALL_ROUNDS,
    drain_s: float | None = None,
    seed: int | None = None,
    genesis_unix_s: float | None = None,
) -> LoadPlan:
    """All load to the one endpoint ``url`` (a real node, or one devnet node).

    With a ``topology`` its schedule (overrides applied by the caller), protocol and genesis are
    used, every tx going to ``url``; without one, ``tps`` (default 100) for ``duration_s``
    (default 60 s) with fresh senders, Poisson arrivals (seed ``seed``, default 1) and
    ``round_s`` (default BitCell's 15 s) for the watcher.
    """
    node = endpoint_name(url)
    endpoint = Endpoint(node, HOST_REGION, url.rstrip("/"))
    if topology is not None:
        base = plan_from_topology(
            topology,
            senders=senders,
            users=users,
            poll_interval_s=poll_interval_s,
            stall_rounds=stall_rounds,
            drain_s=drain_s,
            genesis_unix_s=genesis_unix_s,
        )
        return replace(
            base,
            network=network or base.network,
            endpoints=(endpoint,),
            watch_node=node,
            notes=(f"all load sent to {url}; workload from topology {topology.general.name}",),
        )
    round_s = round_s or DEFAULT_ROUND_S
    workload = host_workload(
        node,
        DEFAULT_HOST_TPS if tps is None else tps,
        DEFAULT_HOST_DURATION_S if duration_s is None else duration_s,
        arrival or "poisson",
        1 if seed is None else seed,
    )
    return LoadPlan(
        network=network or "bitcell",
        endpoints=(endpoint,),
        workload=workload,
        senders=senders or "fresh",
        round_s=round_s,
        poll_interval_s=poll_interval_s or default_poll_interval_s(round_s),
        stall_window_s=stall_rounds * round_s,
        drain_s=default_drain_s(round_s) if drain_s is None else drain_s,
        watch_node=node,
        users=users,
        genesis_unix_s=genesis_unix_s,
    )


def _seconds(value: Any) -> float | None:
    return None if value in (None, "") else parse_seconds(value)


def plan_from_options(
    options: Any, host: str | None, run_time_s: float | None = None
) -> tuple[LoadPlan, Topology | None]:
    """The plan from the locustfile's parsed options and Locust's host (``--host`` wins over the
    topology's).

    ``--tps``, ``--duration``, ``--arrival`` and ``--seed`` override the topology as ``bitcell-sim
    run`` does, and the returned topology is the one the run folder keeps, so the model replays
    the same schedule. Without ``--duration`` the load lasts at most ``run_time_s`` (``-t``).
    """
    topology = load_topology(Path(options.topology)) if options.topology else None
    tps = None
    if options.tps not in (None, ""):
        try:
            tps = parse_rate(options.tps if " " in str(options.tps) else float(options.tps))
        except ValueError as exc:
            raise LoadError(f"--tps {options.tps!r} is not a rate: {exc}") from None
    duration_s = _seconds(options.duration)
    if topology is not None:
        window_s = load_window_s(topology, duration_s, run_time_s)
        topology, _ = apply_overrides(
            topology,
            seed=options.seed,
            tps=tps,
            load_duration_s=window_s,
            arrival=options.arrival,
        )
    elif duration_s is None and run_time_s is not None:
        duration_s = run_time_s
    common: dict[str, Any] = {
        "senders": options.senders,
        "users": options.load_users,
        "poll_interval_s": _seconds(options.poll_interval),
        "stall_rounds": options.stall_rounds,
        "drain_s": _seconds(options.drain),
        "genesis_unix_s": options.genesis_unix,
    }
    if host:
        plan = plan_from_host(
            host,
            tps=tps,
            duration_s=duration_s,
            arrival=options.arrival,
            seed=options.seed,
            topology=topology,
            network=options.network,
            round_s=_seconds(options.round),
            **common,
        )
    elif topology is not None:
        plan = plan_from_topology(topology, watch_node=options.watch_node, **common)
        if options.network:
            plan = plan.with_overrides(network=options.network)
    else:
        raise LoadError("give --topology FILE or --host URL (the RPC endpoint to load)")
    return plan, topology


def load_window_s(
    topology: Topology, duration_s: float | None, run_time_s: float | None
) -> float | None:
    """How long the load lasts: ``--duration``, else the workload cut at ``-t`` if that is
    shorter, else (None) the workload's own length."""
    if duration_s is not None:
        return duration_s
    length_s = topology.workload_stages()[-1][1] - topology.workload.start_s
    if run_time_s is not None and run_time_s < length_s:
        return run_time_s
    return None
