"""The load plan: everything a load process needs, resolved from a topology or a single host.

:class:`LoadPlan` holds the RPC :class:`Endpoint`\\ s (node, region, URL), the region weights,
the :class:`~bitcell_sim.load.profile.RateProfile`, arrival process, senders, gas prices, tx
size, round length and the watcher's poll interval, stall window and drain time.
:func:`plan_from_topology` and :func:`plan_from_host` build one; ``to_dict``/``from_dict`` carry
it from a Locust master to its workers. :func:`users_for_rate` sizes the user pool.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from bitcell_sim.errors import LoadError
from bitcell_sim.load.pacer import ARRIVALS, Arrival
from bitcell_sim.load.profile import RateProfile, RateStage
from bitcell_sim.protocol.transaction import BASE_SIZE_BYTES
from bitcell_sim.topology import Topology
from bitcell_sim.topology.units import parse_duration_arg

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
DEFAULT_GAS_PRICE_MIN = 1_000_000_000
DEFAULT_GAS_PRICE_MAX = 2_000_000_000
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
    region_weights: dict[str, float]
    profile: RateProfile
    arrival: Arrival = "poisson"
    senders: Senders = "fresh"
    funded_accounts: int = 0
    gas_price_min: int = DEFAULT_GAS_PRICE_MIN
    gas_price_max: int = DEFAULT_GAS_PRICE_MAX
    tx_size_bytes: int = BASE_SIZE_BYTES
    round_s: float = DEFAULT_ROUND_S
    poll_interval_s: float = 0.75
    stall_window_s: float = DEFAULT_ROUND_S * DEFAULT_STALL_ROUNDS
    drain_s: float = DEFAULT_ROUND_S * DEFAULT_DRAIN_ROUNDS
    watch_node: str = ""
    seed: int = 1
    users: int | None = None
    user_budget_s: float = DEFAULT_USER_BUDGET_S
    genesis_unix_s: float | None = None
    topology_name: str | None = None
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise LoadError("a load plan needs at least one RPC endpoint")
        regions = {e.region for e in self.endpoints}
        for region, weight in self.region_weights.items():
            if region not in regions:
                raise LoadError(f"region weight for {region!r}, which has no RPC endpoint")
            if weight < 0:
                raise LoadError(f"region {region!r} has weight {weight}, must be >= 0")
        if sum(self.region_weights.values()) <= 0:
            raise LoadError(f"region weights {self.region_weights} must have a positive sum")
        if self.arrival not in ARRIVALS:
            raise LoadError(f"arrival {self.arrival!r} must be one of {', '.join(ARRIVALS)}")
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
        if self.watch_node != WATCH_ALL and self.watch_node not in {e.node for e in self.endpoints}:
            raise LoadError(
                f"watch node {self.watch_node!r} is not one of the endpoints "
                f"({', '.join(e.node for e in self.endpoints)}) nor {WATCH_ALL!r}"
            )

    @property
    def regions(self) -> tuple[str, ...]:
        """Regions that receive load, in endpoint order."""
        seen: dict[str, None] = {}
        for e in self.endpoints:
            if self.region_weights.get(e.region, 0) > 0:
                seen.setdefault(e.region)
        return tuple(seen)

    def endpoints_in(self, region: str) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.region == region)

    @property
    def watched(self) -> tuple[Endpoint, ...]:
        """The endpoints the watcher polls: every one (``all``) or the watch node."""
        if self.watch_node == WATCH_ALL:
            return self.endpoints
        return tuple(e for e in self.endpoints if e.node == self.watch_node)

    @property
    def duration_s(self) -> float:
        return self.profile.duration_s

    def users_at(self, t_s: float, processes: int = 1, lookahead_s: float = 10.0) -> int:
        """Users the shape should run at load time ``t_s`` (the rate of the next seconds)."""
        if self.users is not None:
            return self.users
        tps = self.profile.peak_between(max(t_s, 0.0), t_s + lookahead_s)
        return users_for_rate(tps, len(self.regions), processes, self.user_budget_s)

    def with_overrides(self, **changes: Any) -> LoadPlan:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["endpoints"] = [asdict(e) for e in self.endpoints]
        data["profile"] = [[s.start_s, s.end_s, s.tps_from, s.tps_to] for s in self.profile.stages]
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadPlan:
        values = dict(data)
        values["endpoints"] = tuple(Endpoint(**e) for e in data["endpoints"])
        values["profile"] = RateProfile(tuple(RateStage(*s) for s in data["profile"]))
        values["notes"] = tuple(data.get("notes", ()))
        values["region_weights"] = dict(data["region_weights"])
        return cls(**values)


def users_for_rate(
    tps: float, classes: int, processes: int = 1, budget_s: float = DEFAULT_USER_BUDGET_S
) -> int:
    """Enough users that each may spend ``budget_s`` per transaction at ``tps``, plus two per
    user class and process so every region stream of every process has someone to take it."""
    return math.ceil(max(tps, 0.0) * budget_s) + 2 * max(classes, 1) * max(processes, 1)


def plan_from_topology(
    topology: Topology,
    *,
    tps: float | None = None,
    duration_s: float | None = None,
    senders: Senders | None = None,
    arrival: Arrival | None = None,
    users: int | None = None,
    watch_node: str | None = None,
    poll_interval_s: float | None = None,
    stall_rounds: float = DEFAULT_STALL_ROUNDS,
    drain_s: float | None = None,
    seed: int | None = None,
    genesis_unix_s: float | None = None,
) -> LoadPlan:
    """Endpoints ``http://<devnet.host>:<rpc_port>`` of every node, the workload's profile."""
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
    w = topology.workload
    return LoadPlan(
        network=topology.general.name,
        endpoints=endpoints,
        region_weights=topology.workload_region_weights(),
        profile=RateProfile.from_topology(topology, tps=tps, duration_s=duration_s),
        arrival=arrival or w.arrival,
        senders=senders or w.senders,
        funded_accounts=topology.genesis.funded_accounts,
        gas_price_min=w.gas_price.min,
        gas_price_max=w.gas_price.max,
        tx_size_bytes=topology.protocol.tx_size_bytes,
        round_s=round_s,
        poll_interval_s=poll_interval_s or default_poll_interval_s(round_s),
        stall_window_s=stall_rounds * round_s,
        drain_s=default_drain_s(round_s) if drain_s is None else drain_s,
        watch_node=watch_node or (WATCH_ALL if len(endpoints) > 1 else endpoints[0].node),
        seed=topology.general.seed if seed is None else seed,
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


def plan_from_host(
    url: str,
    *,
    tps: float | None = None,
    duration_s: float | None = None,
    topology: Topology | None = None,
    network: str | None = None,
    round_s: float | None = None,
    senders: Senders | None = None,
    arrival: Arrival | None = None,
    users: int | None = None,
    poll_interval_s: float | None = None,
    stall_rounds: float = DEFAULT_STALL_ROUNDS,
    drain_s: float | None = None,
    seed: int | None = None,
    genesis_unix_s: float | None = None,
) -> LoadPlan:
    """All load to the one endpoint ``url`` (a real node, or one devnet node).

    With a ``topology`` its workload, protocol and genesis fill in what is not given; without
    one, ``tps`` (default 100) for ``duration_s`` (default 60 s) with fresh senders, Poisson
    arrivals and ``round_s`` (default BitCell's 15 s) for the watcher.
    """
    node = endpoint_name(url)
    endpoint = Endpoint(node, HOST_REGION, url.rstrip("/"))
    if topology is not None:
        base = plan_from_topology(
            topology,
            tps=tps,
            duration_s=duration_s,
            senders=senders,
            arrival=arrival,
            users=users,
            poll_interval_s=poll_interval_s,
            stall_rounds=stall_rounds,
            drain_s=drain_s,
            seed=seed,
            genesis_unix_s=genesis_unix_s,
        )
        return replace(
            base,
            network=network or base.network,
            endpoints=(endpoint,),
            region_weights={HOST_REGION: 1.0},
            watch_node=node,
            notes=(f"all load sent to {url}; workload from topology {topology.general.name}",),
        )
    round_s = round_s or DEFAULT_ROUND_S
    return LoadPlan(
        network=network or "bitcell",
        endpoints=(endpoint,),
        region_weights={HOST_REGION: 1.0},
        profile=RateProfile.constant(
            DEFAULT_HOST_TPS if tps is None else tps,
            DEFAULT_HOST_DURATION_S if duration_s is None else duration_s,
        ),
        arrival=arrival or "poisson",
        senders=senders or "fresh",
        round_s=round_s,
        poll_interval_s=poll_interval_s or default_poll_interval_s(round_s),
        stall_window_s=stall_rounds * round_s,
        drain_s=default_drain_s(round_s) if drain_s is None else drain_s,
        watch_node=node,
        seed=1 if seed is None else seed,
        users=users,
        genesis_unix_s=genesis_unix_s,
    )
