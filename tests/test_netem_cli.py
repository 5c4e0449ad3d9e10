"""``python -m bitcell_sim.netem``: user mistakes are one clear line and exit 1, nothing bound."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitcell_sim.errors import NetemError
from bitcell_sim.loopback import free_port
from bitcell_sim.netem import EmulatorProcess, LinkSpec, parse_ready_line, write_links_file
from bitcell_sim.netem.process import ready_line

pytestmark = [pytest.mark.real, pytest.mark.timeout(60)]


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("s3cret\n")
    path.chmod(0o600)  # as devnet up writes it (a token others can read is warned about)
    return path


@pytest.fixture
def squatter() -> Iterator[socket.socket]:
    """A port held by this test, so the emulator finds it in use."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock


def _run(*args: str | int | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bitcell_sim.netem", *map(str, args)]
    # Each run must fail fast; if one started serving instead, the timeout kills it.
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def _assert_fails(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""  # no ready line
    assert result.stderr.startswith("netem: error: "), result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_ready_line_round_trip() -> None:
    line = ready_line(42, "http://127.0.0.1:5000", {"a->b": 4001})
    assert line.startswith("NETEM READY {")
    assert parse_ready_line(line) == {
        "pid": 42,
        "control_url": "http://127.0.0.1:5000",
        "links": {"a->b": 4001},
    }
    with pytest.raises(NetemError, match=r"not a netem ready line: 'hello'"):
        parse_ready_line("hello")


def test_bad_json_links_file(tmp_path: Path, token_file: Path) -> None:
    links = tmp_path / "links.json"
    links.write_text("{not json")
    result = _run("--links", links, "--control-port", 0, "--token-file", token_file)
    _assert_fails(result, f"{links}: not valid JSON")


def test_invalid_link_in_links_file(tmp_path: Path, token_file: Path) -> None:
    links = tmp_path / "links.json"
    link = {"name": "a->b", "listen_port": 0, "target_port": 9, "params": {"latency_s": -0.04}}
    links.write_text(json.dumps({"version": 1, "links": [link]}))
    result = _run("--links", links, "--control-port", 0, "--token-file", token_file)
    _assert_fails(result, "links[0].params: latency_s=-0.04 must be a finite number >= 0")


def test_missing_links_file(tmp_path: Path, token_file: Path) -> None:
    links = tmp_path / "absent.json"
    result = _run("--links", links, "--control-port", 0, "--token-file", token_file)
    _assert_fails(result, f"{links}: cannot read links file: No such file or directory")


def test_non_loopback_target_in_links_file(tmp_path: Path, token_file: Path) -> None:
    links = tmp_path / "links.json"
    link = {"name": "a->b", "listen_port": 0, "target_port": 9, "target_host": "93.184.216.34"}
    links.write_text(json.dumps({"version": 1, "links": [link]}))
    result = _run("--links", links, "--control-port", 0, "--token-file", token_file)
    _assert_fails(result, "link 'a->b': target_host='93.184.216.34' is outside 127.0.0.0/8")


def test_non_loopback_listen_host_in_links_file(tmp_path: Path, token_file: Path) -> None:
    links = tmp_path / "links.json"
    link = {"name": "a->b", "listen_port": 0, "target_port": 9, "listen_host": "0.0.0.0"}
    links.write_text(json.dumps({"version": 1, "links": [link]}))
    result = _run("--links", links, "--control-port", 0, "--token-file", token_file)
    _assert_fails(result, "link 'a->b': listen_host='0.0.0.0' is outside 127.0.0.0/8")


def test_non_loopback_control_host(tmp_path: Path, token_file: Path) -> None:
    links = write_links_file(tmp_path / "links.json", [])
    result = _run(
        "--links",
        links,
        "--control-port",
        0,
        "--control-host",
        "0.0.0.0",
        "--token-file",
        token_file,
    )
    _assert_fails(result, "--control-host='0.0.0.0' is outside 127.0.0.0/8")


def test_link_port_in_use(tmp_path: Path, token_file: Path, squatter: socket.socket) -> None:
    busy_port = squatter.getsockname()[1]
    first_port = free_port()
    links = write_links_file(
        tmp_path / "links.json",
        [
            LinkSpec(name="first", listen_port=first_port, target_port=9),
            LinkSpec(name="us-east-1->eu-central-1", listen_port=busy_port, target_port=9),
        ],
    )
    result = _run("--links", links, "--control-port", 0, "--token-file", token_file)
    _assert_fails(
        result,
        f"link 'us-east-1->eu-central-1': cannot listen on 127.0.0.1:{busy_port}: "
        "Address already in use",
    )
    with socket.socket() as again:  # the link bound before the failure was released
        again.bind(("127.0.0.1", first_port))


def test_control_port_in_use(tmp_path: Path, token_file: Path, squatter: socket.socket) -> None:
    busy_port = squatter.getsockname()[1]
    link_port = free_port()
    links = write_links_file(
        tmp_path / "links.json", [LinkSpec(name="x", listen_port=link_port, target_port=9)]
    )
    result = _run("--links", links, "--control-port", busy_port, "--token-file", token_file)
    _assert_fails(
        result, f"control API: cannot listen on 127.0.0.1:{busy_port}: Address already in use"
    )
    with socket.socket() as again:
        again.bind(("127.0.0.1", link_port))


def test_bad_token_files(tmp_path: Path) -> None:
    links = write_links_file(tmp_path / "links.json", [])
    missing = tmp_path / "no-token"
    result = _run("--links", links, "--control-port", 0, "--token-file", missing)
    _assert_fails(result, f"{missing}: cannot read token file")
    empty = tmp_path / "empty-token"
    empty.write_text("  \n")
    result = _run("--links", links, "--control-port", 0, "--token-file", empty)
    _assert_fails(result, f"{empty}: the control token must be non-empty")


def test_emulator_process_surfaces_the_error(
    tmp_path: Path, token_file: Path, squatter: socket.socket
) -> None:
    busy_port = squatter.getsockname()[1]
    links = write_links_file(
        tmp_path / "links.json", [LinkSpec(name="x", listen_port=busy_port, target_port=9)]
    )
    with pytest.raises(NetemError, match=rf"netem did not start: .*127\.0\.0\.1:{busy_port}"):
        EmulatorProcess.start(links, token_file)


def test_log_file_gets_the_ready_line(tmp_path: Path, token_file: Path) -> None:
    links = write_links_file(tmp_path / "links.json", [])
    log = tmp_path / "netem.log"
    with EmulatorProcess.start(links, token_file, log_file=log) as emulator:
        assert emulator.control_url.startswith("http://127.0.0.1:")
        pid = emulator.pid
    text = log.read_text()
    assert "NETEM READY " in text and f'"pid":{pid}' in text
    assert "stopped" in text
