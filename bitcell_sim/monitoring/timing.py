"""When each alert fires, pages and resolves, and what clients see behind HAProxy, from a
node timeline: the same prediction for a model run and for a measured run.

``predict_alerts(topology, timeline)`` reads the ``node_timeline`` records
(:mod:`bitcell_sim.results.records`) and the topology's ``monitoring`` section and rules, and
gives one ``AlertPrediction`` per alert episode: when the condition holds in the timeline, the
``Window`` in which Prometheus fires it (``for`` + scrape + evaluation), the page at the webhook
(+ Alertmanager's group timings), its resolution, and whether an inhibition mutes it.
``predict_front_door`` gives the client-visible error window of each node outage behind HAProxy
(fall x inter) and its rejoin (rise x inter). ``pages_side_by_side`` lines predictions up with
the pages a run's webhook received (``measured_pages``). Times are seconds since genesis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from bitcell_sim.errors import MonitoringError
from bitcell_sim.monitoring.alerts import (
    DEGRADED_SHARE,
    NODE_DOWN_RATE,
    OUT_OF_SYNC_PCT,
    chain_stall_window_s,
    low_peer_thresholds,
    pending_threshold,
)
from bitcell_sim.monitoring.configs import CONNECT_TIMEOUT_S, RETRIES
from bitcell_sim.monitoring.webhook import ALERTS_FILE, Notification, read_notifications
from bitcell_sim.results import RunFolder
from bitcell_sim.topology import Topology, load_topology

#: Alerts whose condition a node timeline shows, and those it does not (they need metrics the
#: records do not hold: proof times, miners, peer RTTs, the monitoring's own health).
PREDICTED = (
    "NodeDown",
    "RegionDown",
    "RegionDegraded",
    "HighNodeDownRate",
    "NoPeers",
    "LowPeerCount",
    "NodeOutOfSync",
    "HighPendingTransactions",
    "ChainNotProgressing",
)
NOT_PREDICTED = ("HighProofGenerationTime", "HighBannedMinerRate", "NoActiveMiners",
                 "HighCrossRegionLatency", "PrometheusDown", "AlertmanagerDown")  # fmt: skip
#: Inhibitions of alertmanager.yml that a timeline can show: source, target, equal label.
INHIBITIONS = (("RegionDown", "NodeDown", "region"), ("NoPeers", "LowPeerCount", "node"))
#: /health answers 503 while a node is more than this many blocks behind (docs/node.md).
SYNCING_LAG_BLOCKS = 2


@dataclass(frozen=True)
class Window:
    """A time known to lie between ``earliest_s`` and ``latest_s`` (seconds since genesis)."""

    earliest_s: float
    latest_s: float

    def shifted(self, by_earliest_s: float, by_latest_s: float | None = None) -> Window:
        later = by_earliest_s if by_latest_s is None else by_latest_s
        return Window(self.earliest_s + by_earliest_s, self.latest_s + later)

    def contains(self, t_s: float, slack_s: float = 0.0) -> bool:
        return self.earliest_s - slack_s <= t_s <= self.latest_s + slack_s


@dataclass(frozen=True)
class AlertPrediction:
    """One episode of one alert: its condition in the timeline and what follows from it.

    ``fires`` is "yes", "no" or "maybe" (a condition about as long as ``for``: the scrape and
    evaluation phases decide); the windows are None when it does not fire.
    """

    alert: str
    labels: dict[str, str]
    condition: Window
    condition_end: Window | None
    fires: str
    firing: Window | None
    page: Window | None
    resolved: Window | None
    resolved_page: Window | None
    inhibited_by: str | None = None
    inhibited: str = "no"

    @property
    def pages(self) -> bool:
        """A firing notification reaches the webhook (it fires and is not surely muted)."""
        return self.fires != "no" and self.inhibited != "yes"


@dataclass(frozen=True)
class FrontDoorOutage:
    """One node outage as HAProxy's clients see it: errors for requests routed to the dead
    server (``error_share`` of all) from ``starts_s`` until HAProxy marks it DOWN or it is back
    (``ends``), and back in rotation once /health has answered 200 ``rise`` times (``rejoins``;
    None if it came back before it was marked down)."""

    node: str
    starts_s: float
    ends: Window
    error_share: float
    rejoins: Window | None
    #: How long such a failed call takes: HAProxy retries the dead server before it answers 503.
    failed_call_s: float = RETRIES * min(CONNECT_TIMEOUT_S, 1.0)


@dataclass(frozen=True)
class _Sample:
    time_s: float
    up: bool
    height: int
    peers: int
    pool_size: int
    sync_progress: float


def _by_node(timeline: pa.Table) -> dict[str, list[_Sample]]:
    columns = timeline.to_pydict()
    out: dict[str, list[_Sample]] = {}
    for i, node in enumerate(columns["node"]):
        out.setdefault(node, []).append(
            _Sample(
                columns["time_s"][i],
                columns["up"][i],
                columns["height"][i],
                columns["peers"][i],
                columns["pool_size"][i],
                columns["sync_progress"][i],
            )
        )
    for samples in out.values():
        samples.sort(key=lambda s: s.time_s)
    return out


def _episodes(times: Sequence[float], values: Sequence[bool]) -> list[tuple[Window, Window | None]]:
    """Intervals where ``values`` is true: (start, end) windows between the sample that showed
    the change and the one before it; end None if still true at the last sample."""
    out: list[tuple[Window, Window | None]] = []
    start: Window | None = None
    for i, (t, value) in enumerate(zip(times, values, strict=True)):
        before = times[i - 1] if i else t
        if value and start is None:
            start = Window(before, t)
        elif not value and start is not None:
            out.append((start, Window(before, t)))
            start = None
    if start is not None:
        out.append((start, None))
    return out


class _Timing:
    """The stack's timings, from the topology's monitoring section."""

    def __init__(self, topology: Topology) -> None:
        spec = topology.monitoring
        self.scrape_s = spec.scrape_interval_s
        self.eval_s = spec.evaluation_interval_s
        self.group_wait_s = spec.group_wait_s
        self.group_interval_s = spec.group_interval_s
        self.spec = spec

    def hold_s(self, alert: str) -> float:
        """From the first evaluation that sees the condition to the one that fires it."""
        return math.ceil(self.spec.for_s(alert) / self.eval_s - 1e-9) * self.eval_s

    def predict(
        self, alert: str, labels: dict[str, str], start: Window, end: Window | None, last_s: float
    ) -> AlertPrediction:
        """``end`` None: still true at the timeline's last sample ``last_s`` (and maybe after,
        so a condition younger than ``for`` there may yet fire)."""
        hold_s, seen_s = self.hold_s(alert), self.scrape_s + self.eval_s
        if end is None:
            fires = "yes" if last_s - start.latest_s >= hold_s + seen_s else "maybe"
        else:
            shortest, longest = end.earliest_s - start.latest_s, end.latest_s - start.earliest_s
            fires = (
                "yes"
                if shortest >= hold_s + seen_s
                else "no"
                if longest + seen_s <= hold_s
                else "maybe"
            )
        if fires == "no":
            return AlertPrediction(alert, labels, start, end, fires, None, None, None, None)
        firing = start.shifted(hold_s, hold_s + seen_s)
        resolved = None if end is None else end.shifted(0.0, seen_s)
        return AlertPrediction(
            alert,
            labels,
            start,
            end,
            fires,
            firing,
            page=firing.shifted(self.group_wait_s),
            resolved=resolved,
            resolved_page=None
            if resolved is None
            else resolved.shifted(0.0, self.group_interval_s),
        )


def _node_conditions(
    topology: Topology, nodes: dict[str, list[_Sample]]
) -> Iterable[tuple[str, dict[str, str], list[float], list[bool]]]:
    spec_low = {n: t for t, names in low_peer_thresholds(topology).items() for n in names}
    pending = pending_threshold(topology)
    window_s = chain_stall_window_s(topology)
    for node, samples in nodes.items():
        labels = {"node": node, "region": topology.nodes[node].region}
        times = [s.time_s for s in samples]
        yield "NodeDown", labels, times, [not s.up for s in samples]
        if node in spec_low:
            yield "NoPeers", labels, times, [s.up and s.peers == 0 for s in samples]
            yield (
                "LowPeerCount",
                labels,
                times,
                [s.up and s.peers < spec_low[node] for s in samples],
            )
        yield (
            "NodeOutOfSync",
            labels,
            times,
            [s.up and s.sync_progress < OUT_OF_SYNC_PCT for s in samples],
        )
        yield (
            "HighPendingTransactions",
            labels,
            times,
            [s.up and s.pool_size > pending for s in samples],
        )
        stalled, last_change_s, previous = [], samples[0].time_s if samples else 0.0, None
        for s in samples:
            if previous is not None and s.height != previous:
                last_change_s = s.time_s
            previous = s.height
            stalled.append(s.up and s.time_s - last_change_s >= window_s)
        yield "ChainNotProgressing", labels, times, stalled


def _group_conditions(
    topology: Topology, nodes: dict[str, list[_Sample]]
) -> Iterable[tuple[str, dict[str, str], list[float], list[bool]]]:
    """Region- and network-wide conditions over the times every node has a sample."""
    times = sorted(set().union(*({s.time_s for s in samples} for samples in nodes.values())))
    up_at: dict[str, dict[float, bool]] = {
        node: {s.time_s: s.up for s in samples} for node, samples in nodes.items()
    }

    def down_share(members: Sequence[str], t: float) -> float | None:
        known = [up_at[m][t] for m in members if t in up_at.get(m, {})]
        return None if not known else 1 - sum(known) / len(known)

    def condition(
        members: Sequence[str], test: Callable[[float], bool]
    ) -> tuple[list[float], list[bool]]:
        kept = [t for t in times if down_share(members, t) is not None]
        return kept, [test(down_share(members, t) or 0.0) for t in kept]

    for region in topology.regions:
        members = [n for n in topology.nodes_in_region(region) if n in nodes]
        if not members:
            continue
        labels = {"region": region}
        yield "RegionDown", labels, *condition(members, lambda share: share >= 1.0)
        yield (
            "RegionDegraded",
            labels,
            *condition(members, lambda share: DEGRADED_SHARE <= share < 1.0),
        )
    yield "HighNodeDownRate", {}, *condition(list(nodes), lambda share: share > NODE_DOWN_RATE)


def _apply_inhibitions(
    predictions: list[AlertPrediction], timing: _Timing
) -> list[AlertPrediction]:
    """Mark each target alert an inhibition mutes: surely ("yes") when its source fires before
    the target's first page can leave and lasts past it, "maybe" when the windows overlap."""
    out = []
    for p in predictions:
        for source, target, label in INHIBITIONS:
            if p.alert != target or p.page is None:
                continue
            for s in predictions:
                if s.alert != source or s.labels.get(label) != p.labels.get(label) or not s.firing:
                    continue
                ends = math.inf if s.resolved is None else s.resolved.earliest_s
                # The same samples start both (NoPeers and LowPeerCount of one node): they
                # are seen by the same scrape, so only the holds and one evaluation apart.
                lead_s = timing.hold_s(source) - timing.hold_s(target) + timing.eval_s
                in_time = (s.condition == p.condition and lead_s <= timing.group_wait_s) or (
                    s.firing.latest_s <= p.page.earliest_s
                )
                if in_time and ends > p.page.latest_s:
                    verdict = "yes" if s.fires == "yes" else "maybe"
                elif s.firing.earliest_s <= p.page.latest_s and ends > p.page.earliest_s:
                    verdict = "maybe"
                else:
                    continue
                if verdict == "yes" or p.inhibited == "no":
                    p = AlertPrediction(
                        **{**p.__dict__, "inhibited_by": source, "inhibited": verdict}
                    )
        out.append(p)
    return out


def predict_alerts(topology: Topology, timeline: pa.Table) -> tuple[AlertPrediction, ...]:
    """Every episode of each alert in ``PREDICTED`` that the ``node_timeline`` records imply,
    in order of its condition's start."""
    timing = _Timing(topology)
    nodes = _by_node(timeline)
    predictions = []
    for alert, labels, times, values in (
        *_node_conditions(topology, nodes),
        *_group_conditions(topology, nodes),
    ):
        for start, end in _episodes(times, values):
            predictions.append(timing.predict(alert, labels, start, end, times[-1]))
    predictions.sort(key=lambda p: (p.condition.latest_s, p.alert, sorted(p.labels.items())))
    return tuple(_apply_inhibitions(predictions, timing))


def _healthy(sample: _Sample) -> bool:
    if not sample.up:
        return False
    if sample.sync_progress <= 0:
        return sample.height == 0
    behind = sample.height * (100.0 / sample.sync_progress - 1.0)
    return behind <= SYNCING_LAG_BLOCKS + 1e-6


def predict_front_door(topology: Topology, timeline: pa.Table) -> tuple[FrontDoorOutage, ...]:
    """Each node outage of the timeline as HAProxy's clients see it (``/rpc`` backend, round
    robin, no redispatch): errors on 1/n of the requests until ``fall`` failed checks mark the
    server DOWN; back after ``rise`` good ones once /health answers 200."""
    check = topology.monitoring.health_check
    nodes = _by_node(timeline)
    outages = []
    for node, samples in nodes.items():
        times = [s.time_s for s in samples]
        for start, end in _episodes(times, [not s.up for s in samples]):
            others_up = sum(
                1
                for other, series in nodes.items()
                if other != node and any(s.up for s in series if s.time_s == start.latest_s)
            )
            rejoins = None
            if end is not None:
                healthy = next(
                    (i for i, s in enumerate(samples) if s.time_s >= end.latest_s and _healthy(s)),
                    None,
                )
                if healthy is not None:
                    back = Window(samples[healthy - 1].time_s, samples[healthy].time_s)
                    rejoins = back.shifted(
                        (check.rise - 1) * check.inter_s, check.rise * check.inter_s
                    )
            ends = start.shifted((check.fall - 1) * check.inter_s, check.fall * check.inter_s)
            if end is not None and end.latest_s < ends.earliest_s:
                # Back before the checks could mark it down: errors for the whole outage, and
                # nothing to rejoin.
                ends, rejoins = end, None
            elif end is not None:
                ends = Window(
                    min(ends.earliest_s, end.earliest_s), min(ends.latest_s, end.latest_s)
                )
            outages.append(
                FrontDoorOutage(
                    node=node,
                    starts_s=start.latest_s,
                    ends=ends,
                    error_share=1.0 / (others_up + 1),
                    rejoins=rejoins,
                )
            )
    outages.sort(key=lambda o: (o.starts_s, o.node))
    return tuple(outages)


# ---- the measured side ------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasuredPage:
    """One episode of one alert at the webhook: its first firing notification and the first
    resolved one after it (None while it still fires), and the receivers that got them."""

    alert: str
    labels: dict[str, str]
    paged_s: float | None
    resolved_s: float | None
    receivers: tuple[str, ...]


def _key_labels(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k in ("node", "region")}


def measured_pages(
    notifications: Iterable[Notification], genesis_unix_s: float
) -> tuple[MeasuredPage, ...]:
    """What the webhook got, one ``MeasuredPage`` per episode of each alert and node/region
    (repeats while it fires are folded in), in seconds since genesis, in order of paging."""
    open_pages: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = {}
    done: list[dict[str, Any]] = []
    for note in sorted(notifications, key=lambda n: n.received_unix_s):
        t = note.received_unix_s - genesis_unix_s
        for alert in note.alerts:
            labels = _key_labels(alert.labels)
            key = (alert.alertname, tuple(sorted(labels.items())))
            entry = open_pages.get(key)
            if entry is None:
                if alert.status != "firing":
                    continue  # the resolution of an episode that paged before the file began
                entry = {"alert": alert.alertname, "labels": labels, "paged_s": t}
                entry |= {"resolved_s": None, "receivers": []}
                open_pages[key] = entry
            if note.receiver not in entry["receivers"]:
                entry["receivers"].append(note.receiver)
            if alert.status != "firing":
                entry["resolved_s"] = t
                done.append(open_pages.pop(key))
    done += open_pages.values()
    return tuple(
        MeasuredPage(e["alert"], e["labels"], e["paged_s"], e["resolved_s"], tuple(e["receivers"]))
        for e in sorted(done, key=lambda e: e["paged_s"])
    )


@dataclass(frozen=True)
class PageComparison:
    """One alert, predicted and measured side by side (either may be missing)."""

    alert: str
    labels: dict[str, str]
    predicted: AlertPrediction | None
    measured: MeasuredPage | None

    @property
    def page_within_prediction(self) -> bool | None:
        """Did the page arrive inside the predicted window (None: nothing to compare)?"""
        if self.predicted is None or self.measured is None or self.predicted.page is None:
            return None
        if self.measured.paged_s is None:
            return None
        return self.predicted.page.contains(self.measured.paged_s)


def pages_side_by_side(
    predicted: Iterable[AlertPrediction], measured: Iterable[MeasuredPage]
) -> list[PageComparison]:
    """Predicted pages (episodes not surely muted) joined with the measured ones on alert name
    and node/region, the n-th predicted episode with the n-th measured one; a page on one side
    only gets a row with None on the other."""
    Key = tuple[str, tuple[tuple[str, str], ...]]
    sides: dict[Key, tuple[list[AlertPrediction], list[MeasuredPage]]] = {}
    for p in predicted:
        if p.pages:
            key = (p.alert, tuple(sorted(_key_labels(p.labels).items())))
            sides.setdefault(key, ([], []))[0].append(p)
    for m in measured:
        sides.setdefault((m.alert, tuple(sorted(m.labels.items()))), ([], []))[1].append(m)
    rows = []
    for (alert, labels), (ours, theirs) in sorted(sides.items()):
        for i in range(max(len(ours), len(theirs))):
            rows.append(
                PageComparison(
                    alert,
                    dict(labels),
                    ours[i] if i < len(ours) else None,
                    theirs[i] if i < len(theirs) else None,
                )
            )
    return rows


# ---- run folders ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitoringPrediction:
    """Everything the monitoring does in one run, predicted from its records."""

    alerts: tuple[AlertPrediction, ...]
    front_door: tuple[FrontDoorOutage, ...]


def _open_run(folder: str | Path) -> RunFolder:
    try:
        return RunFolder.open(Path(folder))
    except (OSError, ValueError) as exc:  # the results layer's own errors name the problem
        raise MonitoringError(str(exc)) from None


def predict_run(folder: str | Path) -> MonitoringPrediction:
    """The prediction for a run folder (model or measured): its resolved topology and its
    ``node_timeline`` records."""
    run = _open_run(folder)
    if not run.has_records("node_timeline"):
        raise MonitoringError(
            f"{run.path} has no node_timeline records to predict from (a model run writes "
            "them; a measured run needs the devnet's timeline sampler)"
        )
    topology = load_topology(run.path / "topology.yaml")
    timeline = run.read_records("node_timeline")
    return MonitoringPrediction(
        predict_alerts(topology, timeline), predict_front_door(topology, timeline)
    )


def measured_pages_of_run(folder: str | Path) -> tuple[MeasuredPage, ...]:
    """The pages a measured run folder's ``alerts.jsonl`` holds (genesis from ``meta.json``)."""
    run = _open_run(folder)
    try:
        genesis_unix_s = float(run.read_json("meta.json")["genesis_time_unix_s"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MonitoringError(
            f"{run.path}/meta.json gives no genesis_time_unix_s to place the pages: {exc}"
        ) from None
    return measured_pages(read_notifications(run.path / ALERTS_FILE), genesis_unix_s)
