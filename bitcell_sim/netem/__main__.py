"""Command line of the link emulator process: ``python -m bitcell_sim.netem``.

``main`` reads the links file and the token file, binds every listener and the control API,
prints the ready line (also to ``--log-file``), and serves until SIGTERM or SIGINT, then closes
every connection and exits 0. A user mistake prints ``netem: error: ...`` and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from bitcell_sim.errors import NetemError
from bitcell_sim.netem.control import check_token
from bitcell_sim.netem.emulator import DEFAULT_MAX_QUEUED_BYTES
from bitcell_sim.netem.linksfile import read_links_file
from bitcell_sim.netem.params import LinkSpec, check_loopback
from bitcell_sim.netem.process import serve

log = logging.getLogger("bitcell_sim.netem")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bitcell_sim.netem",
        description="User-space link emulator: one shaping TCP proxy per directed link.",
    )
    parser.add_argument("--links", required=True, type=Path, help="links file (JSON)")
    parser.add_argument(
        "--control-port", required=True, type=int, help="control API port (0: any free port)"
    )
    parser.add_argument(
        "--control-host", default="127.0.0.1", help="control API address (127.0.0.0/8 only)"
    )
    parser.add_argument(
        "--token-file", required=True, type=Path, help="file holding the control bearer token"
    )
    parser.add_argument("--log-file", type=Path, help="append the log here instead of stderr")
    parser.add_argument(
        "--max-queued-bytes",
        type=int,
        default=DEFAULT_MAX_QUEUED_BYTES,
        help="bytes queued per connection direction before the sender is paused",
    )
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG level")
    return parser


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise NetemError(f"{path}: cannot read token file: {exc.strerror or exc}") from None
    try:
        token = check_token(token)
    except NetemError as exc:
        raise NetemError(f"{path}: {exc}") from None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning(
            "token file %s is readable by others (mode %04o): whoever reads it controls the "
            "links; chmod 600 it",
            path,
            mode,
        )
    return token


def _setup_logging(log_file: Path | None, verbose: bool) -> None:
    handler: logging.Handler
    if log_file is not None:
        try:
            handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise NetemError(f"{log_file}: cannot open log file: {exc.strerror or exc}") from None
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("bitcell_sim")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


async def _run(specs: list[LinkSpec], token: str, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def on_ready(line: str) -> None:
        print(line, flush=True)
        log.info("%s", line)

    await serve(
        specs,
        token,
        stop=stop,
        on_ready=on_ready,
        control_host=args.control_host,
        control_port=args.control_port,
        max_queued_bytes=args.max_queued_bytes,
    )
    log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGTERM/SIGINT; return the process exit code."""
    args = _parser().parse_args(argv)
    try:
        _setup_logging(args.log_file, args.verbose)
        check_loopback(args.control_host, "--control-host")
        if not 0 <= args.control_port <= 65535:
            raise NetemError(f"--control-port={args.control_port} must be in 0..65535")
        if args.max_queued_bytes < 1:
            raise NetemError(f"--max-queued-bytes={args.max_queued_bytes} must be >= 1")
        specs = read_links_file(args.links)
        token = _read_token(args.token_file)
        asyncio.run(_run(specs, token, args))
    except NetemError as exc:
        if args.log_file is not None:
            log.error("%s", exc)
        print(f"netem: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
