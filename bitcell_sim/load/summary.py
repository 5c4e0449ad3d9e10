"""The summary of a load run as the load process saw it, from its raw per-transaction records.

:func:`summarize` takes the records (``TRANSACTIONS`` columns), the rate profile, the run's start
in the records' time origin, what each process reported (:class:`SessionStatus` dicts) and the
schedule's due times, and returns the dict written to ``load/summary.json``: target, scheduled
and achieved TPS overall, per stage and over the hold phase, accepted/rejected by reason,
confirmed TPS, confirmation latency p50/p95/p99 as the watcher saw it (numpy's linear percentiles
of the raw values, never Locust's rounded ones), unconfirmed count, schedule lag and any stall.
:func:`load_figures` keeps the figures only the load has (a measured run's summary adds them to
the shared one as ``load``); :func:`format_summary` and :func:`format_load_figures` render them as
a few lines of text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bitcell_sim.load.rejections import CATEGORIES, reject_category
from bitcell_sim.load.session import LATE_S
from bitcell_sim.results.summary import distribution
from bitcell_sim.topology import RateProfile

#: The keys of a load summary that only the load has: how it offered the load, not what the
#: network did with it (that is the run's summary, from the records).
LOAD_ONLY = (
    "time_origin", "run_start_s", "duration_s", "target_tps", "target_txs", "submitted",
    "achieved_tps", "achieved_error_pct", "hold", "stages", "rpc_latency_s", "schedule_lag_s",
    "late_submissions", "not_submitted", "anomalies", "processes", "end_reasons", "stall",
    "watch", "missing_processes",
)  # fmt: skip


def _pct_error(achieved: float, target: float) -> float | None:
    return None if target <= 0 else (achieved / target - 1.0) * 100.0


def summarize(
    columns: Mapping[str, Sequence[Any]],
    profile: RateProfile,
    run_start_s: float,
    statuses: Sequence[Mapping[str, Any]] = (),
    lags_s: Sequence[float] = (),
    time_origin: str = "run_start",
    scheduled_s: Sequence[float] | np.ndarray | None = None,
) -> dict[str, Any]:
    """The run's summary from its records; see the module docstring for the fields.

    ``scheduled_s`` are the due times (load seconds) of every scheduled tx: a Poisson schedule
    holds the target rate only to ±√N, so the pacing is judged against the schedule.
    """
    due = None if scheduled_s is None else np.asarray(scheduled_s, dtype=float)
    submit = np.asarray(columns["submit_s"], dtype=float) - run_start_s
    accepted = np.asarray(columns["accepted"], dtype=bool)
    confirm = (
        np.asarray([np.nan if c is None else c for c in columns["confirm_s"]], dtype=float)
        - run_start_s
    )
    rpc_latency = [x for x in columns["rpc_latency_s"] if x is not None]
    duration_s = profile.duration_s
    n = int(submit.size)
    in_window = int(np.count_nonzero((submit >= 0) & (submit < duration_s)))

    stages = []
    for stage in profile.stages:
        count = int(np.count_nonzero((submit >= stage.start_s) & (submit < stage.end_s)))
        scheduled = (
            stage.count
            if due is None
            else int(np.count_nonzero((due >= stage.start_s) & (due < stage.end_s)))
        )
        stages.append(
            {
                "start_s": stage.start_s,
                "end_s": stage.end_s,
                "tps_from": stage.tps_from,
                "tps_to": stage.tps_to,
                "target_txs": stage.count,
                "scheduled": scheduled,
                "submitted": count,
                "achieved_tps": count / stage.duration_s,
            }
        )
    holds = [s for s, stage in zip(stages, profile.stages, strict=True) if stage.is_hold]
    hold = None
    if holds:
        hold_s = sum(s["end_s"] - s["start_s"] for s in holds)
        target_txs = sum(s["target_txs"] for s in holds)
        scheduled = sum(s["scheduled"] for s in holds)
        submitted = sum(s["submitted"] for s in holds)
        hold = {
            "duration_s": hold_s,
            "target_tps": target_txs / hold_s,
            "scheduled": scheduled,
            "submitted": submitted,
            "achieved_tps": submitted / hold_s,
            "error_pct": _pct_error(submitted, target_txs),
            "schedule_error_pct": _pct_error(submitted, scheduled),
        }

    confirmed_mask = accepted & ~np.isnan(confirm)
    latency = (confirm - submit)[confirmed_mask]
    n_accepted = int(np.count_nonzero(accepted))
    n_confirmed = int(np.count_nonzero(confirmed_mask))
    confirmed_in_window = int(
        np.count_nonzero(confirmed_mask & (confirm >= 0) & (confirm < duration_s))
    )

    reasons = [r for r, ok in zip(columns["reject_reason"], accepted, strict=True) if not ok]
    by_category = Counter(reject_category(r or "") for r in reasons)
    by_reason = Counter(r or "" for r in reasons)

    not_submitted: Counter[str] = Counter()
    anomalies: Counter[str] = Counter()
    ends: Counter[str] = Counter()
    stall = None
    watch: dict[str, Any] = {}
    for status in statuses:
        not_submitted.update(status.get("not_submitted", {}))
        anomalies.update(status.get("anomalies", {}))
        ends[str(status.get("end_reason"))] += 1
        if status.get("stall") and stall is None:
            stall = status["stall"]
        if status.get("watch") and not watch:
            watch = dict(status["watch"])
    lags = np.asarray(lags_s, dtype=float)

    target_tps = profile.mean_tps
    achieved_tps = in_window / duration_s
    return {
        "time_origin": time_origin,
        "run_start_s": run_start_s,
        "duration_s": duration_s,
        "target_tps": target_tps,
        "target_txs": profile.total_count,
        "scheduled": profile.total_count if due is None else int(due.size),
        "submitted": n,
        "achieved_tps": achieved_tps,
        "achieved_error_pct": _pct_error(achieved_tps, target_tps),
        "hold": hold,
        "stages": stages,
        "accepted": n_accepted,
        "rejected": n - n_accepted,
        "rejected_by_reason": {c: by_category[c] for c in CATEGORIES if by_category[c]},
        "reject_reasons": dict(by_reason.most_common(10)),
        "confirmed": n_confirmed,
        "unconfirmed": n_accepted - n_confirmed,
        "confirmed_fraction": None if n_accepted == 0 else n_confirmed / n_accepted,
        "confirmed_tps": confirmed_in_window / duration_s,
        "confirmation_latency_s": distribution(latency),
        "rpc_latency_s": distribution(rpc_latency),
        "schedule_lag_s": distribution(lags),
        "late_submissions": int(np.count_nonzero(lags > LATE_S)),
        "not_submitted": dict(not_submitted),
        "anomalies": dict(anomalies),
        "processes": len(statuses),
        "end_reasons": dict(ends),
        "stall": stall,
        "watch": watch,
    }


def load_figures(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The load-only part of a load summary, with the watcher's confirmation latency beside it
    (polled, so later than the records' by up to a poll interval)."""
    figures = {key: summary[key] for key in LOAD_ONLY if key in summary}
    figures["watcher_confirmation_latency_s"] = summary["confirmation_latency_s"]
    return figures


def _fmt(value: float | int | None, unit: str = "", digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def _offered(summary: Mapping[str, Any]) -> list[str]:
    lines = [
        f"target {summary['target_tps']:.2f} TPS, achieved {summary['achieved_tps']:.2f} TPS "
        f"({_fmt(summary['achieved_error_pct'], '%', 2)}) over {summary['duration_s']:.1f} s; "
        f"{summary['submitted']} submitted",
    ]
    hold = summary.get("hold")
    if hold:
        lines.append(
            f"hold phase: target {hold['target_tps']:.2f} TPS, achieved "
            f"{hold['achieved_tps']:.2f} TPS ({_fmt(hold['error_pct'], '%', 2)}); "
            f"{hold['submitted']} of {hold['scheduled']} scheduled txs sent"
        )
    return lines


def _submission(summary: Mapping[str, Any]) -> list[str]:
    lag = summary["schedule_lag_s"]
    lines = [
        f"schedule lag p99 {_fmt(lag['p99'], ' s')}, max {_fmt(lag['max'], ' s')}, "
        f"{summary['late_submissions']} submissions late by more than {LATE_S * 1000:.0f} ms"
    ]
    if summary["not_submitted"]:
        lines.append(
            "not submitted: " + ", ".join(f"{k}: {v}" for k, v in summary["not_submitted"].items())
        )
    if summary.get("stall"):
        lines.append(f"STALL: {summary['stall']['message']}")
    return lines


def format_load_figures(summary: Mapping[str, Any]) -> str:
    """Offered rate, hold phase, schedule lag, what was not submitted and any stall."""
    return "\n".join(_offered(summary) + _submission(summary))


def format_summary(summary: Mapping[str, Any]) -> str:
    """A short human-readable rendering of :func:`summarize`'s dict (the watcher's view)."""
    rejected = summary["rejected_by_reason"]
    reasons = ", ".join(f"{k}: {v}" for k, v in rejected.items()) or "none"
    latency = summary["confirmation_latency_s"]
    watched = [
        f"accepted {summary['accepted']}, rejected {summary['rejected']} ({reasons})",
        f"confirmed {summary['confirmed']} ({summary['confirmed_tps']:.2f} TPS in the load "
        f"window), unconfirmed {summary['unconfirmed']}; confirmation latency "
        f"p50 {_fmt(latency['p50'], ' s')} p95 {_fmt(latency['p95'], ' s')} "
        f"p99 {_fmt(latency['p99'], ' s')}",
    ]
    return "\n".join(_offered(summary) + watched + _submission(summary))
