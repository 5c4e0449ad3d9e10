"""The topology schema: one validated, immutable object every part of bitcell-sim reads.

:class:`Topology` holds ``general``, ``regions`` (with their RTT matrix), ``links``, ``nodes``,
``peers``, ``protocol``, ``workload``, ``genesis``, ``faults``, ``expectations``,
``validation`` (the tolerances of predicted vs measured), ``devnet`` and ``monitoring``.
YAML keys carry units as strings ("64 ms"); Python attributes carry them in their names
(``rtt_s``, ``bandwidth_bps``). Cross-field rules (unknown names, port clashes, a disconnected
peer graph) raise :class:`~bitcell_sim.errors.TopologyError` with the path of every problem.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bitcell_sim.errors import TopologyError
from bitcell_sim.topology.jitter import JitterDistribution
from bitcell_sim.topology.units import (
    LIMITS,
    format_bandwidth,
    format_duration,
    format_size,
    parse_bandwidth,
    parse_duration,
    parse_rate,
    parse_size,
)


def _unit(parse: Callable[[object], float], kind: str) -> Callable[[object, ValidationInfo], float]:
    """A unit parser that, outside files, also takes a plain number already in SI units (within
    the same limits)."""

    def validate(value: object, info: ValidationInfo) -> float:
        from_file = bool(info.context and info.context.get(FROM_FILE))
        if not from_file and isinstance(value, int | float) and not isinstance(value, bool):
            limit, words = LIMITS[kind]
            if not math.isfinite(value) or value > limit:
                raise ValueError(f"{kind} {value!r} is more than {words}, the most allowed")
            return value
        return parse(value)

    return validate


# Validation context key set by the loader: in files, quantities must carry their unit.
FROM_FILE = "from_file"

# Unit-carrying types: parsed from strings on the way in, printed back with units on the way out,
# so a dumped topology loads again unchanged.
Duration = Annotated[
    float, BeforeValidator(_unit(parse_duration, "duration")), PlainSerializer(format_duration)
]
Bandwidth = Annotated[
    float,
    BeforeValidator(_unit(parse_bandwidth, "bandwidth")),
    PlainSerializer(format_bandwidth),
]
Size = Annotated[int, BeforeValidator(_unit(parse_size, "size")), PlainSerializer(format_size)]
Rate = Annotated[float, BeforeValidator(parse_rate)]
Port = Annotated[int, Field(ge=1, le=65535)]
U64_MAX = 2**64 - 1
#: Counts (txs per block, pool size, accounts, batch, fanout) beyond this are typos.
MAX_COUNT = 10_000_000

# Ports a node gets when the file leaves them out: base + the node's index. They sit below the
# Linux ephemeral range (32768+) so client sockets never take them first.
AUTO_PORT_BASES = {"rpc_port": 20000, "p2p_port": 21000, "metrics_port": 22000}
PORT_FIELDS = tuple(AUTO_PORT_BASES)


class Spec(BaseModel):
    """Base of every section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class GeneralSpec(Spec):
    name: str = "unnamed"
    description: str = ""
    seed: int = Field(default=1, ge=0, le=U64_MAX)
    duration_s: Duration = Field(default=600.0, alias="duration", gt=0)


class RegionSpec(Spec):
    rtt_s: dict[str, Duration] = Field(default_factory=dict, alias="rtt")
    label: str = ""


class JitterSpec(Spec):
    distribution: JitterDistribution = "none"
    scale_s: Duration = Field(default=0.0, alias="scale")


class LinksSpec(Spec):
    bandwidth_bps: Bandwidth = Field(default=100e6, alias="bandwidth", ge=1)
    jitter: JitterSpec = JitterSpec()


class NodeSpec(Spec):
    region: str
    role: Literal["validator", "full"] = "validator"
    rpc_port: Port
    p2p_port: Port
    metrics_port: Port


class GossipSpec(Spec):
    fanout: int = Field(default=0, ge=0, le=MAX_COUNT)
    tx_batch_interval_s: Duration = Field(default=0.05, alias="tx_batch_interval")


class ProcessingSpec(Spec):
    """A node's CPU costs and start-up time: ``bitcell-sim calibrate`` measures them."""

    tx_validate_s: Duration = Field(default=100e-6, alias="tx_validate")
    block_import_per_tx_s: Duration = Field(default=50e-6, alias="block_import_per_tx")
    block_import_s: Duration = Field(default=0.0, alias="block_import")
    # Building a block costs about what importing it does (both execute every tx).
    block_build_per_tx_s: Duration = Field(default=50e-6, alias="block_build_per_tx")
    block_build_s: Duration = Field(default=0.0, alias="block_build")
    rpc_service_s: Duration = Field(default=0.0, alias="rpc_service")
    startup_s: Duration = Field(default=0.0, alias="startup")

    def block_build_cost_s(self, txs: int) -> float:
        """CPU seconds for a producer to build a block of ``txs`` transactions."""
        return self.block_build_s + self.block_build_per_tx_s * txs

    def block_import_cost_s(self, txs: int) -> float:
        """CPU seconds to import a block of ``txs`` transactions."""
        return self.block_import_s + self.block_import_per_tx_s * txs


class PeeringSpec(Spec):
    """How a node keeps its peer connections: redial back-off after a lost or failed dial."""

    reconnect_min_s: Duration = Field(default=0.1, alias="reconnect_min", gt=0)
    reconnect_max_s: Duration = Field(default=2.0, alias="reconnect_max", gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> PeeringSpec:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min is above reconnect_max")
        return self


class ProtocolSpec(Spec):
    # Phases of at least a millisecond: shorter rounds are a typo, and would flood the model.
    commit_s: Duration = Field(default=5.0, alias="commit", ge=0.001)
    reveal_s: Duration = Field(default=5.0, alias="reveal", ge=0.001)
    battle_s: Duration = Field(default=5.0, alias="battle", ge=0.001)
    max_txs_per_block: int = Field(default=1000, ge=1, le=MAX_COUNT)
    tx_pool_capacity: int = Field(default=10_000, ge=1, le=MAX_COUNT)
    tx_size_bytes: Size = Field(default=194, alias="tx_size", ge=194, le=1_000_000)
    block_reward: int = Field(default=5_000_000_000, ge=0, le=U64_MAX)
    sync_batch_blocks: int = Field(default=100, alias="sync_batch", ge=1, le=MAX_COUNT)
    # A sync batch whose first block does not connect (a fork below it): fetch this many blocks
    # below it, then twice as many, and so on, keeping what was fetched.
    sync_step_back_blocks: int = Field(default=8, alias="sync_step_back", ge=1, le=MAX_COUNT)
    gossip: GossipSpec = GossipSpec()
    processing: ProcessingSpec = ProcessingSpec()
    peering: PeeringSpec = PeeringSpec()

    @property
    def round_s(self) -> float:
        return self.commit_s + self.reveal_s + self.battle_s

    @property
    def capacity_tps(self) -> float:
        """The most the network can confirm: one full block per round."""
        return self.max_txs_per_block / self.round_s


class StageSpec(Spec):
    duration_s: Duration = Field(alias="duration", gt=0)
    tps: Rate
    ramp: bool = False


class GasPriceSpec(Spec):
    min: int = Field(default=1_000_000_000, gt=0, le=10_000_000_000_000)
    max: int = Field(default=2_000_000_000, gt=0, le=10_000_000_000_000)


ArrivalProcess = Literal["constant", "poisson"]
ARRIVAL_PROCESSES: tuple[str, ...] = get_args(ArrivalProcess)


class WorkloadSpec(Spec):
    tps: Rate | None = None
    duration_s: Duration | None = Field(default=None, alias="duration", gt=0)
    start_s: Duration = Field(default=0.0, alias="start")
    arrival: ArrivalProcess = "poisson"
    stages: tuple[StageSpec, ...] | None = None
    senders: Literal["fresh", "funded"] = "fresh"
    region_weights: dict[str, float] | None = None
    gas_price: GasPriceSpec = GasPriceSpec()

    @model_validator(mode="after")
    def _one_profile(self) -> WorkloadSpec:
        if self.stages is not None and (self.tps is not None or self.duration_s is not None):
            raise ValueError("give either 'stages' or 'tps' + 'duration', not both")
        if self.gas_price.min > self.gas_price.max:
            raise ValueError(
                f"gas_price.min ({self.gas_price.min}) is above gas_price.max "
                f"({self.gas_price.max})"
            )
        return self


class GenesisSpec(Spec):
    funded_accounts: int = Field(default=0, ge=0, le=MAX_COUNT)
    balance: int = Field(default=10**12, ge=0, le=U64_MAX)
    #: Further accounts funded at genesis: compressed public key in hex -> balance.
    accounts: dict[str, Annotated[int, Field(ge=0, le=U64_MAX)]] = Field(default_factory=dict)

    @field_validator("accounts")
    @classmethod
    def _check_accounts(cls, accounts: dict[str, int]) -> dict[str, int]:
        for key in accounts:
            digits = key.removeprefix("0x")
            if len(digits) != 66 or digits[:2] not in ("02", "03") or not _is_hex(digits):
                raise ValueError(
                    f"account {key!r} is not a compressed public key (0x02 or 0x03, then 64 "
                    "hex digits)"
                )
        return accounts

    @property
    def accounts_by_key(self) -> dict[bytes, int]:
        return {bytes.fromhex(k.removeprefix("0x")): v for k, v in self.accounts.items()}


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


class FaultBase(Spec):
    start_s: Duration = Field(alias="start")
    duration_s: Duration = Field(alias="duration", gt=0)
    label: str = ""

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


class NodeDown(FaultBase):
    kind: Literal["node_down"]
    target: str


class RegionDown(FaultBase):
    kind: Literal["region_down"]
    target: str


class Partition(FaultBase):
    kind: Literal["partition"]
    groups: tuple[tuple[str, ...], ...] = Field(min_length=1)
    # Nodes on no side: they keep their links to every side (a Jepsen "bridge").
    bridges: tuple[str, ...] = ()


class AddedLatency(FaultBase):
    kind: Literal["added_latency"]
    target: str
    latency_s: Duration = Field(alias="latency", gt=0)


class CpuThrottle(FaultBase):
    kind: Literal["cpu_throttle"]
    target: str
    share: float = Field(gt=0, le=1)


Fault = Annotated[
    NodeDown | RegionDown | Partition | AddedLatency | CpuThrottle, Field(discriminator="kind")
]
FAULT_KINDS = ("node_down", "region_down", "partition", "added_latency", "cpu_throttle")


class ExpectationsSpec(Spec):
    node_recovery_max_s: Duration | None = Field(default=None, alias="node_recovery_max")
    region_recovery_max_s: Duration | None = Field(default=None, alias="region_recovery_max")
    partition_reconvergence_max_s: Duration | None = Field(
        default=None, alias="partition_reconvergence_max"
    )
    confirmed_tps_min: Rate | None = None
    block_propagation_p95_max_s: Duration | None = Field(
        default=None, alias="block_propagation_p95_max"
    )
    confirmation_latency_p95_max_s: Duration | None = Field(
        default=None, alias="confirmation_latency_p95_max"
    )
    rejection_rate_max: float | None = Field(default=None, ge=0, le=1)


def _parse_fraction(value: object) -> float:
    """A fraction from ``"10 %"`` or a plain number (0.1)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"{value!r} is not a percentage such as '10 %'") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{value!r} is not a percentage ('10 %') or a fraction (0.1)")


Fraction = Annotated[
    float,
    BeforeValidator(_parse_fraction),
    PlainSerializer(lambda v: f"{v * 100:g} %"),
    Field(ge=0),
]


class ToleranceSpec(Spec):
    """How far a prediction may be from a measurement: the larger of the two bounds."""

    relative: Fraction = 0.0
    absolute: float = Field(default=0.0, ge=0)

    def allowed(self, measured: float) -> float:
        return max(self.relative * abs(measured), self.absolute)


class TimeToleranceSpec(ToleranceSpec):
    """A tolerance whose absolute bound is a duration ("0.5 s")."""

    absolute: Duration = Field(default=0.0, ge=0)


def _tol(relative: float = 0.0, absolute: float = 0.0) -> Any:
    return Field(default=ToleranceSpec(relative=relative, absolute=absolute))


def _time_tol(relative: float = 0.0, absolute_s: float = 0.0) -> Any:
    return Field(default=TimeToleranceSpec(relative=relative, absolute=absolute_s))


class ValidationSpec(Spec):
    """Per compared metric, how far the prediction may be from the measurement.

    The defaults: 10 % for block, confirmation and throughput figures, 20 % or 0.5 s (the
    larger) for recovery, reconvergence and time behind the best tip, 25 % for RPC latency,
    ±1 for counts of forks and orphans (reorgs: 10 % or ±1). docs/validation.md lists them.
    """

    block_interval: TimeToleranceSpec = _time_tol(0.10)
    block_propagation_p50: TimeToleranceSpec = _time_tol(0.10)
    block_propagation_p95: TimeToleranceSpec = _time_tol(0.10)
    block_propagation_p99: TimeToleranceSpec = _time_tol(0.10)
    confirmation_latency_p50: TimeToleranceSpec = _time_tol(0.10)
    confirmation_latency_p95: TimeToleranceSpec = _time_tol(0.10)
    confirmation_latency_p99: TimeToleranceSpec = _time_tol(0.10)
    confirmed_tps: ToleranceSpec = _tol(0.10)
    steady_state_confirmed_tps: ToleranceSpec = _tol(0.10)
    rejection_rate: ToleranceSpec = _tol(0.10, 0.01)
    first_rejection: TimeToleranceSpec = _time_tol(0.10)
    pool_peak: ToleranceSpec = _tol(0.10)
    forks: ToleranceSpec = _tol(0.0, 1.0)
    orphaned: ToleranceSpec = _tol(0.0, 1.0)
    reorgs: ToleranceSpec = _tol(0.10, 1.0)
    recovery: TimeToleranceSpec = _time_tol(0.20, 0.5)
    reconvergence: TimeToleranceSpec = _time_tol(0.20, 0.5)
    behind: TimeToleranceSpec = _time_tol(0.20, 0.5)
    rpc_latency_p50: TimeToleranceSpec = _time_tol(0.25)
    rpc_latency_p99: TimeToleranceSpec = _time_tol(0.25)

    def tolerance(self, metric: str) -> ToleranceSpec:
        """The tolerance of a metric family (``recovery``, ``block_propagation_p95``, ...)."""
        if metric not in type(self).model_fields:
            raise KeyError(metric)
        tolerance: ToleranceSpec = getattr(self, metric)
        return tolerance


class ScenarioExpectSpec(Spec):
    """What a chaos scenario must hold, judged on the records (docs/chaos.md); unset: not judged.

    Times after a fault are per fault as it happened; "during" is the union of the fault
    windows, the baseline the no-fault period before the first fault. The ledger and end-state
    checks are always judged.
    """

    recovery_max_s: Duration | None = Field(default=None, alias="recovery_max")
    reconvergence_max_s: Duration | None = Field(default=None, alias="reconvergence_max")
    progress_gap_max_rounds: float | None = Field(default=None, alias="progress_gap_max", gt=0)
    confirmed_tps_min_during: Rate | None = None
    confirmed_tps_min_after: Rate | None = None
    confirmation_p95_max_s: Duration | None = Field(default=None, alias="confirmation_p95_max")
    rejection_rate_max: float | None = Field(default=None, ge=0, le=1)
    block_interval_increase_max: Fraction | None = None
    confirmation_p95_increase_max: Fraction | None = None
    rpc_latency_p99_increase_max: Fraction | None = None
    fork_rate_max: float | None = Field(default=None, ge=0)
    lost_max: int = Field(default=0, ge=0)
    duplicated_max: int = Field(default=0, ge=0)
    unexpected_max: int = Field(default=0, ge=0)


class ScenarioSpec(Spec):
    """A chaos scenario's run: the baseline before the faults, how long recovery is watched,
    and the expectations (``bitcell-sim chaos``)."""

    baseline_s: Duration = Field(default=10.0, alias="baseline", gt=0)
    recovery_timeout_s: Duration = Field(default=60.0, alias="recovery_timeout", gt=0)
    expect: ScenarioExpectSpec = ScenarioExpectSpec()


class DevnetSpec(Spec):
    host: str = "127.0.0.1"
    netem_port_base: Port = 24000
    netem_control_port: Port = 23999
    genesis_delay_s: Duration = Field(default=3.0, alias="genesis_delay")


# The alerts of the seed's monitoring (FACTS §5.3), each with its ``for`` by default. The seed
# waits 2 min on NodeDown but 5 min on RegionDown, so every NodeDown of a region outage pages
# before the inhibition that should mute it exists; here RegionDown waits 1 min (see
# docs/monitoring.md and ``_monitoring_problems``).
ALERT_FOR_S: dict[str, float] = {
    "NodeDown": 120.0,
    "HighNodeDownRate": 300.0,
    "ChainNotProgressing": 600.0,
    "NodeOutOfSync": 1800.0,
    "LowPeerCount": 300.0,
    "NoPeers": 120.0,
    "HighProofGenerationTime": 300.0,
    "HighPendingTransactions": 600.0,
    "HighBannedMinerRate": 900.0,
    "NoActiveMiners": 300.0,
    "RegionDown": 60.0,
    "RegionDegraded": 300.0,
    "HighCrossRegionLatency": 600.0,
    "PrometheusDown": 120.0,
    "AlertmanagerDown": 300.0,
}


class HealthCheckSpec(Spec):
    """HAProxy's health check of each node's ``GET /health`` (the seed's inter 5 s, fall 3,
    rise 2)."""

    inter_s: Duration = Field(default=5.0, alias="inter", gt=0)
    fall: int = Field(default=3, ge=1)
    rise: int = Field(default=2, ge=1)


class MonitoringSpec(Spec):
    """Prometheus, Alertmanager, the webhook receiver and HAProxy around the network."""

    scrape_interval_s: Duration = Field(default=15.0, alias="scrape_interval", gt=0)
    evaluation_interval_s: Duration = Field(default=15.0, alias="evaluation_interval", gt=0)
    prometheus_port: Port = 9999
    alertmanager_port: Port = 9193
    webhook_port: Port = 9194
    haproxy_port: Port = 8080
    haproxy_stats_port: Port = 8404
    health_check: HealthCheckSpec = HealthCheckSpec()
    group_wait_s: Duration = Field(default=30.0, alias="group_wait", ge=0)
    group_interval_s: Duration = Field(default=300.0, alias="group_interval", gt=0)
    repeat_interval_s: Duration = Field(default=14400.0, alias="repeat_interval", gt=0)
    alert_for_s: dict[str, Duration] = Field(default_factory=dict, alias="alert_for")
    chain_stall_window_s: Duration | None = Field(default=None, alias="chain_stall_window", gt=0)
    latency_margin_s: Duration = Field(default=0.050, alias="latency_margin", gt=0)
    low_peer_count: int = Field(default=2, ge=1)

    def for_s(self, alert: str) -> float:
        """The ``for`` of ``alert``: the topology's, else the default of ``ALERT_FOR_S``."""
        return self.alert_for_s.get(alert, ALERT_FOR_S[alert])

    @property
    def scrape_timeout_s(self) -> float:
        """Prometheus's own default (10 s), capped at the scrape interval as it requires."""
        return min(10.0, self.scrape_interval_s)

    def ports(self) -> dict[str, int]:
        """Every port of the monitoring stack, by field name."""
        return {name: getattr(self, name) for name in MONITORING_PORT_FIELDS}


MONITORING_PORT_FIELDS = (
    "prometheus_port",
    "alertmanager_port",
    "webhook_port",
    "haproxy_port",
    "haproxy_stats_port",
)


class Topology(Spec):
    """A whole network and its scenario, validated, in SI units."""

    general: GeneralSpec = GeneralSpec()
    regions: dict[str, RegionSpec] = Field(min_length=1)
    links: LinksSpec = LinksSpec()
    nodes: dict[str, NodeSpec] = Field(min_length=1)
    peers: Literal["full_mesh"] | tuple[tuple[str, str], ...] = "full_mesh"
    protocol: ProtocolSpec = ProtocolSpec()
    workload: WorkloadSpec = WorkloadSpec()
    genesis: GenesisSpec = GenesisSpec()
    faults: tuple[Fault, ...] = ()
    expectations: ExpectationsSpec = ExpectationsSpec()
    validation: ValidationSpec = ValidationSpec()
    scenario: ScenarioSpec | None = None
    devnet: DevnetSpec = DevnetSpec()
    monitoring: MonitoringSpec = MonitoringSpec()

    @model_validator(mode="before")
    @classmethod
    def _fill_ports(cls, data: Any) -> Any:
        """Give nodes without ports an automatic one (base + index) before validation."""
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
            return data
        nodes = {}
        for index, (name, node) in enumerate(data["nodes"].items()):
            if isinstance(node, dict):
                node = {f: node.get(f, base + index) for f, base in AUTO_PORT_BASES.items()} | node
            nodes[name] = node
        return {**data, "nodes": nodes}

    @model_validator(mode="after")
    def _check_references(self) -> Topology:
        problems = list(_reference_problems(self))
        if problems:
            raise TopologyError(problems)
        return self

    # ---- derived views (computed once; the object is immutable) ---------------------------

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(self.nodes)

    @property
    def validators(self) -> tuple[str, ...]:
        return tuple(n for n, spec in self.nodes.items() if spec.role == "validator")

    def nodes_in_region(self, region: str) -> tuple[str, ...]:
        return tuple(n for n, spec in self.nodes.items() if spec.region == region)

    @cached_property
    def rtt_matrix_s(self) -> dict[tuple[str, str], float]:
        """RTT between every ordered pair of regions; a pair given both ways uses the mean."""
        return _rtt_matrix(self.regions)

    def rtt_s(self, node_a: str, node_b: str) -> float:
        return self.rtt_matrix_s[(self.nodes[node_a].region, self.nodes[node_b].region)]

    def one_way_latency_s(self, node_a: str, node_b: str) -> float:
        return self.rtt_s(node_a, node_b) / 2

    @cached_property
    def peer_edges(self) -> tuple[tuple[str, str], ...]:
        """Undirected peer edges, each once, in a stable order."""
        if self.peers == "full_mesh":
            return tuple(itertools.combinations(self.node_names, 2))
        seen: dict[frozenset[str], tuple[str, str]] = {}
        for a, b in self.peers:
            seen.setdefault(frozenset((a, b)), (a, b))
        return tuple(seen.values())

    @cached_property
    def directed_links(self) -> tuple[tuple[str, str], ...]:
        """Every directed peer link, both directions of each peer edge: ``(a, b), (b, a), ...``
        in ``peer_edges`` order. The model's links and the devnet's emulator links are indexed
        this way, so link *i* is the same link in both worlds."""
        return tuple(pair for a, b in self.peer_edges for pair in ((a, b), (b, a)))

    @cached_property
    def peer_map(self) -> dict[str, tuple[str, ...]]:
        peers: dict[str, list[str]] = {n: [] for n in self.node_names}
        for a, b in self.peer_edges:
            peers[a].append(b)
            peers[b].append(a)
        return {n: tuple(p) for n, p in peers.items()}

    def resolve(self, name: str) -> tuple[str, ...]:
        """The nodes a fault target names: a node, or every node of a region."""
        if name in self.nodes:
            return (name,)
        if name in self.regions:
            return self.nodes_in_region(name)
        raise KeyError(name)

    def fault_nodes(
        self, fault: NodeDown | RegionDown | AddedLatency | CpuThrottle
    ) -> tuple[str, ...]:
        return self.resolve(fault.target)

    def workload_region_weights(self) -> dict[str, float]:
        """Share of arrivals per region: as given, else proportional to the region's nodes."""
        if self.workload.region_weights is not None:
            total = sum(self.workload.region_weights.values())
            return {r: w / total for r, w in self.workload.region_weights.items()}
        counts = {r: len(self.nodes_in_region(r)) for r in self.regions}
        total = sum(counts.values())
        return {r: c / total for r, c in counts.items() if c}

    def workload_stages(self) -> tuple[tuple[float, float, float, float], ...]:
        """The load profile as (start_s, end_s, tps_at_start, tps_at_end), absolute times."""
        w = self.workload
        if w.stages is None:
            end_s = w.start_s + (w.duration_s or self.general.duration_s - w.start_s)
            return ((w.start_s, end_s, w.tps or 0.0, w.tps or 0.0),)
        out = []
        t, previous_tps = w.start_s, 0.0
        for stage in w.stages:
            begin_tps = previous_tps if stage.ramp else stage.tps
            out.append((t, t + stage.duration_s, begin_tps, stage.tps))
            t += stage.duration_s
            previous_tps = stage.tps
        return tuple(out)


def _rtt_matrix(regions: dict[str, RegionSpec]) -> dict[tuple[str, str], float]:
    given: dict[tuple[str, str], list[float]] = {}
    for a, region in regions.items():
        for b, rtt in region.rtt_s.items():
            given.setdefault((a, b) if a <= b else (b, a), []).append(rtt)
    matrix = {}
    for a, b in itertools.product(regions, repeat=2):
        values = given.get((a, b) if a <= b else (b, a))
        if values:
            matrix[(a, b)] = sum(values) / len(values)
    return matrix


def _scenario_problems(topo: Topology, scenario: ScenarioSpec) -> Iterable[tuple[str, str]]:
    """A chaos scenario needs a loaded baseline before its first fault."""
    if not topo.faults:
        yield "scenario", "a chaos scenario needs at least one fault (faults is empty)"
        return
    first_s = min(f.start_s for f in topo.faults)
    baseline_from_s = topo.workload.start_s
    if first_s - baseline_from_s < scenario.baseline_s:
        yield (
            "scenario.baseline",
            f"{scenario.baseline_s:g} s of baseline do not fit between the load's start "
            f"({baseline_from_s:g} s) and the first fault ({first_s:g} s)",
        )
    last_s = max(f.end_s for f in topo.faults)
    if last_s > topo.general.duration_s:
        yield (
            "general.duration",
            f"{topo.general.duration_s:g} s ends before the last fault does ({last_s:g} s)",
        )


def _reference_problems(topo: Topology) -> Iterable[tuple[str, str]]:
    """Every cross-field problem, as (field path, message)."""
    region_names = set(topo.regions)
    for a, region in topo.regions.items():
        for b in region.rtt_s:
            if b not in region_names:
                yield (
                    f"regions.{a}.rtt.{b}",
                    f"unknown region {b!r} (regions: {_list(region_names)})",
                )
    matrix = _rtt_matrix(topo.regions)
    used = sorted({n.region for n in topo.nodes.values()} & region_names)
    for a, b in itertools.combinations_with_replacement(used, 2):
        if (a, b) not in matrix:
            where = "within the region" if a == b else f"to region {b!r}"
            yield f"regions.{a}.rtt", f"missing the RTT {where}"

    for name, node in topo.nodes.items():
        if node.region not in region_names:
            yield (
                f"nodes.{name}.region",
                f"unknown region {node.region!r} (regions: {_list(region_names)})",
            )
    owner: dict[int, str] = {}
    for name, node in topo.nodes.items():
        for field in PORT_FIELDS:
            port = getattr(node, field)
            path = f"nodes.{name}.{field}"
            if port in owner:
                yield path, f"port {port} is already used by {owner[port]}"
            else:
                owner[port] = path
    service_ports = [
        ("devnet.netem_control_port", topo.devnet.netem_control_port),
        ("devnet.netem_port_base", topo.devnet.netem_port_base),
    ] + [(f"monitoring.{field}", port) for field, port in topo.monitoring.ports().items()]
    for path, port in service_ports:
        if port in owner:
            yield path, f"port {port} is already used by {owner[port]}"
        else:
            owner[port] = path
    yield from _monitoring_problems(topo.monitoring)

    if topo.peers != "full_mesh":
        for i, (a, b) in enumerate(topo.peers):
            for end in (a, b):
                if end not in topo.nodes:
                    yield f"peers[{i}]", f"unknown node {end!r}"
            if a == b:
                yield f"peers[{i}]", f"a node cannot peer with itself ({a!r})"
    yield from _connectivity_problems(topo)

    if not topo.validators:
        yield "nodes", "at least one node must have role 'validator' (nobody would produce blocks)"

    known = set(topo.nodes) | region_names
    for i, fault in enumerate(topo.faults):
        path = f"faults[{i}]"
        if fault.start_s >= topo.general.duration_s:
            yield (
                f"{path}.start",
                f"starts at {fault.start_s:g} s, when the run is over "
                f"(general.duration is {topo.general.duration_s:g} s)",
            )
        if isinstance(fault, Partition):
            seen: dict[str, int] = {}
            for g, group in enumerate(fault.groups):
                for name in group:
                    if name not in known:
                        yield f"{path}.groups[{g}]", f"unknown node or region {name!r}"
                        continue
                    for member in topo.resolve(name):
                        if member in seen and seen[member] != g:
                            yield (
                                f"{path}.groups[{g}]",
                                f"node {member!r} is also in group {seen[member]}",
                            )
                        seen[member] = g
            if fault.groups and len(seen) == len(topo.nodes) and len(fault.groups) == 1:
                yield f"{path}.groups", "a single group holding every node partitions nothing"
            for k, bridge in enumerate(fault.bridges):
                if bridge not in topo.nodes:
                    yield f"{path}.bridges[{k}]", f"unknown node {bridge!r}"
                elif bridge in seen:
                    yield f"{path}.bridges[{k}]", f"node {bridge!r} is also in group {seen[bridge]}"
        elif isinstance(fault, NodeDown | CpuThrottle):
            if fault.target not in topo.nodes:
                yield (
                    f"{path}.target",
                    f"unknown node {fault.target!r} (nodes: {_list(topo.nodes)})",
                )
        elif isinstance(fault, RegionDown):
            if fault.target not in region_names:
                yield (
                    f"{path}.target",
                    f"unknown region {fault.target!r} (regions: {_list(region_names)})",
                )
            elif not topo.nodes_in_region(fault.target):
                yield f"{path}.target", f"region {fault.target!r} has no nodes"
        elif fault.target not in known:
            yield f"{path}.target", f"unknown node or region {fault.target!r}"

    if topo.scenario is not None:
        yield from _scenario_problems(topo, topo.scenario)

    if topo.workload.region_weights is not None:
        for weighted, weight in topo.workload.region_weights.items():
            where = f"workload.region_weights.{weighted}"
            if weighted not in region_names:
                yield where, f"unknown region {weighted!r}"
            elif weight < 0:
                yield where, f"weight {weight} must be >= 0"
            elif weight > 0 and not topo.nodes_in_region(weighted):
                yield where, f"region {weighted!r} has no nodes"
        if sum(topo.workload.region_weights.values()) <= 0:
            yield "workload.region_weights", "at least one weight must be > 0"


def _monitoring_problems(spec: MonitoringSpec) -> Iterable[tuple[str, str]]:
    for alert in spec.alert_for_s:
        if alert not in ALERT_FOR_S:
            yield f"monitoring.alert_for.{alert}", f"unknown alert (alerts: {_list(ALERT_FOR_S)})"
    if spec.scrape_timeout_s > spec.scrape_interval_s:
        yield "monitoring.scrape_interval", "must be at least the scrape timeout"
    # RegionDown inhibits NodeDown only while it fires, and the NodeDown group's first page
    # leaves Alertmanager group_wait after NodeDown fires. RegionDown can become true up to one
    # scrape interval (the nodes are scraped at different offsets) and one evaluation later
    # than the first NodeDown, so it must fire by then or every NodeDown of the region pages.
    node_for_s, region_for_s = spec.for_s("NodeDown"), spec.for_s("RegionDown")
    latest_region_s = region_for_s + spec.scrape_interval_s + spec.evaluation_interval_s
    if latest_region_s >= node_for_s + spec.group_wait_s:
        yield (
            "monitoring.alert_for.RegionDown",
            f"RegionDown's for ({format_duration(region_for_s)}) + scrape_interval + "
            f"evaluation_interval must stay below NodeDown's for "
            f"({format_duration(node_for_s)}) + group_wait, else each NodeDown of a region "
            "outage pages before RegionDown exists to inhibit it",
        )


def _connectivity_problems(topo: Topology) -> Iterable[tuple[str, str]]:
    if topo.peers == "full_mesh" or any(
        a not in topo.nodes or b not in topo.nodes for a, b in topo.peers
    ):
        return
    reached = {topo.node_names[0]}
    frontier = [topo.node_names[0]]
    while frontier:
        node = frontier.pop()
        for nxt in topo.peer_map[node]:
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    unreached = [n for n in topo.node_names if n not in reached]
    if unreached:
        yield (
            "peers",
            (
                f"the peer graph is disconnected: {_list(unreached)} cannot be reached "
                f"from {topo.node_names[0]!r}"
            ),
        )


def _list(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))
