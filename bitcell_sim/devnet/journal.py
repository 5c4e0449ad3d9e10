"""The fault journal: one JSON line per applied or reverted fault, in the state folder.

``FaultEvent`` says when (unix time and seconds since genesis), what (``action`` "apply" or
"revert", ``kind``, ``target``) and how (``detail``: nodes, links, pids, backend);
``append_event`` writes one to ``faults.jsonl`` (the faults do) and ``read_events`` reads them
back (the collector does), so measurements line up with the model's fault windows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bitcell_sim.errors import FaultError


@dataclass(frozen=True)
class FaultEvent:
    """One fault applied or reverted on a devnet."""

    time_unix_s: float
    since_genesis_s: float
    action: str  # "apply" or "revert"
    kind: str  # node_down, region_down, partition, added_latency, cpu_throttle
    target: str
    fault_id: int
    label: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def append_event(path: Path, event: FaultEvent) -> None:
    """Append ``event`` as one JSON line (one write call, so lines never interleave)."""
    line = json.dumps(event.to_dict(), separators=(",", ":")) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)


def read_events(path: Path) -> list[FaultEvent]:
    """Every event of a journal, oldest first ([] if there is none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    events = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(FaultEvent(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise FaultError(f"{path}:{number}: bad fault event: {exc}") from None
    return events
