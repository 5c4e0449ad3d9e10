"""The transaction ledger of a chaos run: every submission as an operation with an outcome.

Each record of a run's transactions is an operation: ``ok`` (accepted with an id), ``fail`` (a
definite rejection) or ``info`` (timeout, unreachable: the client cannot know). :func:`ledger`
puts each in exactly one class against what the chain and pools of the live nodes held at the
end (:class:`EndState`, written into a measured run folder as ``endstate.json``); a prediction
has no end state, so only its confirmed, rejected and pending classes are filled.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from bitcell_sim.errors import ResultsError

#: File of a measured run folder holding its :class:`EndState`.
ENDSTATE_FILE = "endstate.json"

OK, FAIL_OP, INFO = "ok", "fail", "info"
#: Rejection reasons after which the client cannot know whether the node took the tx.
INDETERMINATE_REASONS = frozenset({"timeout", "unreachable"})

#: Ledger classes in report order, with what each means (docs/chaos.md).
CLASSES: Mapping[str, str] = {
    "confirmed": "ok, in the final chain once",
    "confirmed_after_reorg": "ok, in the final chain once, and in an orphaned block before",
    "pending": "ok, in no final block, still in a live node's pool",
    "rejected": "fail: a definite rejection, in no final block",
    "recovered": "info (timeout / unreachable) that landed in the final chain",
    "indeterminate": "info that did not land (the client never knew)",
    "lost": "ok, in no final block and in no live node's pool",
    "lost_by_crash": "lost, sent to a node the scenario killed after the submission",
    "duplicated": "in the final chain more than once",
    "rejected_but_confirmed": "fail (a definite rejection), yet in the final chain",
    "unexpected": "in a final block, never submitted",
}
#: Classes that are a defect of the network (each must be empty unless the scenario allows it).
ANOMALIES = ("lost", "duplicated", "rejected_but_confirmed", "unexpected")
#: How many ids of a class the ledger keeps for the report.
IDS_KEPT = 20


@dataclass(frozen=True)
class Restart:
    """A node the scenario killed: its tip before the kill and its block at that height after."""

    node: str
    pre_kill_height: int
    pre_kill_tip: str
    after_hash: str | None
    pre_kill_tip_orphaned: bool

    @property
    def chain_kept(self) -> bool:
        """Its chain survived: the same block at that height, or the network orphaned it."""
        return self.after_hash == self.pre_kill_tip or self.pre_kill_tip_orphaned


@dataclass(frozen=True)
class EndState:
    """What the devnet held at the end of a scenario, for the ledger and the end checks."""

    final_counts: Mapping[str, int]  # tx id -> final-chain blocks holding it
    orphaned: frozenset[str]  # tx ids in some block off the final chain
    pooled: frozenset[str]  # tx ids in a live node's pool
    tips: Mapping[str, str | None]  # node -> tip hash (None: not answering)
    running: Mapping[str, bool]  # node -> its process is alive
    restarts: tuple[Restart, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "final_counts": dict(sorted(self.final_counts.items())),
            "orphaned": sorted(self.orphaned),
            "pooled": sorted(self.pooled),
            "tips": dict(self.tips),
            "running": dict(self.running),
            "restarts": [r.__dict__ for r in self.restarts],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EndState:
        try:
            return cls(
                final_counts={str(k): int(v) for k, v in data["final_counts"].items()},
                orphaned=frozenset(map(str, data["orphaned"])),
                pooled=frozenset(map(str, data["pooled"])),
                tips={str(k): v for k, v in data["tips"].items()},
                running={str(k): bool(v) for k, v in data["running"].items()},
                restarts=tuple(Restart(**r) for r in data.get("restarts", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ResultsError(f"bad {ENDSTATE_FILE}: {exc}") from None

    @classmethod
    def read(cls, run_path: Path) -> EndState | None:
        """The end state of a run folder, None when it has none (a prediction)."""
        path = run_path / ENDSTATE_FILE
        if not path.is_file():
            return None
        try:
            return cls.from_json(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ResultsError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class Ledger:
    """Counts and (some) ids per class; ``rejected_by_reason`` splits ``rejected``."""

    counts: Mapping[str, int]
    ids: Mapping[str, tuple[str, ...]]
    rejected_by_reason: Mapping[str, int] = field(default_factory=dict)
    operations: Mapping[str, int] = field(default_factory=dict)  # ok / fail / info
    complete: bool = True  # False: no end state (a prediction): chain classes unknown

    def anomalies(self, allowed: Mapping[str, int] | None = None) -> dict[str, int]:
        """The anomaly classes above what ``allowed`` permits (default 0 each)."""
        allowed = allowed or {}
        return {c: self.counts[c] for c in ANOMALIES if self.counts[c] > allowed.get(c, 0)}

    def to_json(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "operations": dict(self.operations),
            "counts": dict(self.counts),
            "ids": {k: list(v) for k, v in self.ids.items() if v},
            "rejected_by_reason": dict(self.rejected_by_reason),
        }


def operation(accepted: bool, reason: str | None) -> str:
    """The outcome of one submission: ok, fail or info."""
    if accepted:
        return OK
    return INFO if reason in INDETERMINATE_REASONS else FAIL_OP


def ledger(
    transactions: pa.Table,
    end: EndState | None,
    down: Mapping[str, Sequence[tuple[float, float]]] | None = None,
) -> Ledger:
    """Classify every record of ``transactions`` (see :data:`CLASSES`).

    ``down`` gives each node's down windows (the scenario's kills): a lost tx sent to a node
    that went down after its submission is ``lost_by_crash``. Without ``end`` (a prediction)
    a tx is confirmed when its record has a confirmation, else pending or rejected.
    """
    down = down or {}
    columns = {
        name: transactions.column(name).to_pylist()
        for name in ("tx_id", "node", "submit_s", "accepted", "reject_reason", "confirm_s")
    }
    ids: dict[str, list[str]] = {c: [] for c in CLASSES}
    reasons: Counter[str] = Counter()
    ops: Counter[str] = Counter()
    submitted: set[str] = set()
    for tx_id, node, submit_s, accepted, reason, confirm_s in zip(*columns.values(), strict=True):
        op = operation(bool(accepted), reason)
        ops[op] += 1
        submitted.add(tx_id)
        if end is None:
            landed = confirm_s is not None
            in_final, in_orphan, pooled = (1 if landed else 0), False, op == OK
        else:
            in_final = end.final_counts.get(tx_id, 0)
            in_orphan, pooled = tx_id in end.orphaned, tx_id in end.pooled
        if in_final > 1:
            cls = "duplicated"
        elif op == OK:
            if in_final:
                cls = "confirmed_after_reorg" if in_orphan else "confirmed"
            elif pooled:
                cls = "pending"
            else:
                crashed = any(end_s > submit_s for _, end_s in down.get(node, ()))
                cls = "lost_by_crash" if crashed else "lost"
        elif op == INFO:
            cls = "recovered" if in_final else "indeterminate"
        else:
            cls = "rejected_but_confirmed" if in_final else "rejected"
            if not in_final:
                reasons[reason or "unknown"] += 1
        ids[cls].append(tx_id)
    if end is not None:
        ids["unexpected"] = sorted(t for t in end.final_counts if t not in submitted)
    return Ledger(
        counts={c: len(v) for c, v in ids.items()},
        ids={c: tuple(sorted(v)[:IDS_KEPT]) for c, v in ids.items()},
        rejected_by_reason=dict(sorted(reasons.items())),
        operations={k: ops[k] for k in (OK, FAIL_OP, INFO)},
        complete=end is not None,
    )


def tx_inclusions(
    blocks: Iterable[tuple[bool, Sequence[str]]],
) -> tuple[dict[str, int], frozenset[str]]:
    """From (on the final chain?, tx ids) per block: the final-chain count of each tx and the
    txs of orphaned blocks."""
    counts: Counter[str] = Counter()
    orphaned: set[str] = set()
    for final, tx_ids in blocks:
        if final:
            counts.update(tx_ids)
        else:
            orphaned.update(tx_ids)
    return dict(counts), frozenset(orphaned)
