"""Log lines that an outsider can provoke, at most once per source per interval.

``OncePer(interval_s)`` answers ``allow(key, now_s)``: True the first time a key (a peer
address) is seen and again once ``interval_s`` has passed, so a client that sends garbage in a
loop costs one WARNING per interval instead of one per request. It remembers at most
``max_keys`` sources (the oldest are forgotten first), so it cannot grow without bound either.
"""

from __future__ import annotations

from collections import OrderedDict


class OncePer:
    """At most one ``True`` per key per ``interval_s`` (see the module docstring)."""

    def __init__(self, interval_s: float, max_keys: int = 1024) -> None:
        if interval_s <= 0 or max_keys < 1:
            raise ValueError(f"interval_s(={interval_s}) must be > 0, max_keys(={max_keys}) >= 1")
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._last: OrderedDict[str, float] = OrderedDict()
        #: Calls answered False (lines not logged), for a "… more suppressed" count.
        self.suppressed = 0

    def allow(self, key: str, now_s: float) -> bool:
        last = self._last.get(key)
        if last is not None and now_s - last < self.interval_s:
            self.suppressed += 1
            return False
        self._last[key] = now_s
        self._last.move_to_end(key)
        while len(self._last) > self.max_keys:
            self._last.popitem(last=False)
        return True
