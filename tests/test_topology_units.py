"""Unit strings: parsing, refusal of bare numbers and unknown units, and printing back."""

from __future__ import annotations

import pytest

from bitcell_sim.topology.units import (
    format_bandwidth,
    format_duration,
    format_size,
    parse_bandwidth,
    parse_duration,
    parse_duration_arg,
    parse_rate,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("64 ms", 0.064), ("5 s", 5.0), ("2 min", 120.0), ("250us", 250e-6), ("1.5 h", 5400.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_bandwidth_size_rate() -> None:
    assert parse_bandwidth("100 Mbit") == 100e6
    assert parse_bandwidth("1 Gbit") == 1e9
    assert parse_size("200 KB") == 200_000
    assert parse_size("2 MiB") == 2 * 1024 * 1024
    assert parse_rate("100 TPS") == 100.0
    assert parse_rate(66.5) == 66.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("64 mss", r"unknown unit 'mss'"),
        ("fast", r"bad duration 'fast': expected a number and a unit"),
        ("-5 s", r"must not be negative"),
        ("10", r"duration '10' has no unit"),
    ],
)
def test_bad_durations(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_bare_number_is_refused() -> None:
    with pytest.raises(ValueError, match=r"duration 10 has no unit; write it like '64 ms'"):
        parse_duration(10)


@pytest.mark.parametrize("seconds", [0.064, 5.0, 600.0, 0.0915, 250e-6, 0.0])
def test_duration_round_trip(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_formats() -> None:
    assert format_duration(0.064) == "64 ms"
    assert format_duration(600) == "10 min"
    assert format_bandwidth(100e6) == "100 Mbit"
    assert format_size(194) == "194 B"


@pytest.mark.parametrize(("value", "seconds"), [("90", 90.0), (1.5, 1.5), ("5 min", 300.0)])
def test_arguments_take_bare_seconds(value: object, seconds: float) -> None:
    assert parse_duration_arg(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [("-3", r"must be a finite number of seconds >= 0"), ("soon", r"bad duration 'soon'")],
)
def test_bad_arguments(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration_arg(value)
