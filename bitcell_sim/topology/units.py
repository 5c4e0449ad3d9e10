"""Quantities with units, as written in topology files, parsed to SI floats.

``parse_duration("64 ms") == 0.064`` (seconds), ``parse_bandwidth("100 Mbit") == 1e8`` (bits per
second), ``parse_size("200 KB") == 200_000`` (bytes), ``parse_rate("100 TPS") == 100.0``. The
``format_*`` functions print the canonical form back. Bare numbers are refused for durations,
bandwidths and sizes: a missing unit is the most common topology mistake, and guessing hides it.
A value beyond ``LIMITS`` (a year, 1 Pbit/s, 1 GB, 10 million per second) is refused too: it is
a typo or an overflow (``1e308 h`` is infinite seconds), never a network.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

_NUMBER_UNIT = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z/]*)\s*$")

DURATION_UNITS_S = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "min": 60.0,
    "h": 3600.0,
}
BANDWIDTH_UNITS_BPS = {
    "bit": 1.0,
    "kbit": 1e3,
    "Kbit": 1e3,
    "Mbit": 1e6,
    "Gbit": 1e9,
    "Kibit": 1024.0,
    "Mibit": 1024.0**2,
    "Gibit": 1024.0**3,
    "bps": 1.0,
    "kbps": 1e3,
    "Mbps": 1e6,
    "Gbps": 1e9,
}
SIZE_UNITS_BYTES = {
    "B": 1,
    "KB": 1000,
    "kB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
RATE_UNITS_PER_S = {"TPS": 1.0, "tps": 1.0, "/s": 1.0}

#: The largest value of each kind, in SI units, with how the message names it.
LIMITS: dict[str, tuple[float, str]] = {
    "duration": (366 * 86400.0, "a year"),
    "bandwidth": (1e15, "1 Pbit/s"),
    "size": (1e9, "1 GB"),
    "rate": (1e7, "10 million per second"),
}


def _bounded(value: float, kind: str, text: object) -> float:
    """``value`` if finite and within ``LIMITS[kind]``; ValueError naming ``text`` otherwise."""
    limit, words = LIMITS[kind]
    if not math.isfinite(value) or value > limit:
        raise ValueError(f"bad {kind} {text!r}: more than {words}, the most a topology may hold")
    return value


def _scaled(number: float, scale: float) -> float:
    """number x scale rounded once, so "100 us" is exactly the float 100e-6."""
    return float(Decimal(repr(number)) * Decimal(repr(scale)))


def _split(text: object, kind: str, units: dict[str, float] | dict[str, int]) -> tuple[float, str]:
    allowed = ", ".join(units)
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"{kind} must be a string like '{_example(kind)}', got {text!r}")
    if isinstance(text, int | float):
        raise ValueError(f"{kind} {text!r} has no unit; write it like '{_example(kind)}'")
    match = _NUMBER_UNIT.match(text)
    if match is None:
        raise ValueError(f"bad {kind} {text!r}: expected a number and a unit ({allowed})")
    number, unit = float(match.group(1)), match.group(2)
    if not unit:
        raise ValueError(f"{kind} {text!r} has no unit; write it like '{_example(kind)}'")
    if unit not in units:
        raise ValueError(f"bad {kind} {text!r}: unknown unit {unit!r} (use one of {allowed})")
    if not math.isfinite(number):
        raise ValueError(f"bad {kind} {text!r}: not a finite number")
    if number < 0:
        raise ValueError(f"{kind} {text!r} must not be negative")
    return number, unit


def _example(kind: str) -> str:
    return {"duration": "64 ms", "bandwidth": "100 Mbit", "size": "200 KB", "rate": "100 TPS"}[kind]


def parse_duration(text: object) -> float:
    """Seconds from a duration such as ``"64 ms"``, ``"5 s"`` or ``"2 min"``."""
    number, unit = _split(text, "duration", DURATION_UNITS_S)
    return _bounded(_scaled(number, DURATION_UNITS_S[unit]), "duration", text)


def parse_duration_arg(value: object) -> float:
    """Seconds from a command-line or API argument: a bare number is seconds ("90", 1.5),
    anything else a unit string as in files ("5 min"). Files stay strict: see parse_duration.
    """
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return parse_duration(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return parse_duration(value)  # raises with the usual message
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"duration {value!r} must be a finite number of seconds >= 0")
    return _bounded(float(value), "duration", value)


def parse_bandwidth(text: object) -> float:
    """Bits per second from a bandwidth such as ``"100 Mbit"`` or ``"1 Gbit"``."""
    number, unit = _split(text, "bandwidth", BANDWIDTH_UNITS_BPS)
    return _bounded(_scaled(number, BANDWIDTH_UNITS_BPS[unit]), "bandwidth", text)


def parse_size(text: object) -> int:
    """Bytes from a size such as ``"194 B"`` or ``"2 MiB"`` (rounded to a whole byte)."""
    number, unit = _split(text, "size", SIZE_UNITS_BYTES)
    return round(_bounded(number * SIZE_UNITS_BYTES[unit], "size", text))


def parse_rate(text: object) -> float:
    """Events per second from ``"100 TPS"``; a bare number is taken as per second."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0 or not math.isfinite(text):
            raise ValueError(f"rate {text!r} must be a finite number >= 0")
        return _bounded(float(text), "rate", text)
    number, unit = _split(text, "rate", RATE_UNITS_PER_S)
    return _bounded(number * RATE_UNITS_PER_S[unit], "rate", text)


def format_duration(seconds: float) -> str:
    """The shortest exact unit string for a duration: ``0.064 -> "64 ms"``."""
    for unit, scale in (("h", 3600.0), ("min", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        value = seconds / scale
        if value >= 1 and abs(value - round(value, 6)) < 1e-9:
            return f"{_trim(value)} {unit}"
    return f"{_trim(seconds * 1e3)} ms"


def format_integer_duration(seconds: float, sep: str = " ") -> str:
    """A duration in the largest of s, ms, us, ns that holds it as a whole number
    (``0.04575 -> "45750 us"``): Shadow and Go duration strings want integer magnitudes."""
    nanoseconds = round(seconds * 1e9)
    for unit, scale in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if nanoseconds % scale == 0:
            return f"{nanoseconds // scale}{sep}{unit}"
    return f"{nanoseconds}{sep}ns"


def format_bandwidth(bits_per_s: float) -> str:
    """A bandwidth as Shadow writes it: ``1e8 -> "100 Mbit"``."""
    for unit, scale in (("Gbit", 1e9), ("Mbit", 1e6), ("Kbit", 1e3)):
        if bits_per_s >= scale:
            return f"{_trim(bits_per_s / scale)} {unit}"
    return f"{_trim(bits_per_s)} bit"


def format_size(size_bytes: int) -> str:
    for unit, scale in (("MB", 1000**2), ("KB", 1000)):
        if size_bytes >= scale and size_bytes % scale == 0:
            return f"{size_bytes // scale} {unit}"
    return f"{size_bytes} B"


def _trim(value: float) -> str:
    return f"{round(value, 6):g}"
