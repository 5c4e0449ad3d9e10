"""The SIGSTOP/SIGCONT duty-cycle controller that throttles one process without cgroups.

``python -m bitcell_sim.faults.dutycycle --pid P --start-ticks T --share S`` lets process P run
for ``S × period`` then stops it for the rest of each period (default 100 ms), until P is gone or
the controller gets SIGTERM/SIGINT, when it continues P one last time and exits 0. P's identity
(pid + start time) is checked every period, so a reused pid is never signalled.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType

from bitcell_sim.devnet.processes import start_ticks

DEFAULT_PERIOD_S = 0.1


def _same_process(pid: int, ticks: int) -> bool:
    return start_ticks(pid) == ticks


def run(pid: int, ticks: int, share: float, period_s: float) -> int:
    """Duty-cycle ``pid`` until it ends or a stop signal arrives; return the exit code."""
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run_s = share * period_s
    pause_s = period_s - run_s
    next_s = time.monotonic()
    try:
        while not stopping and _same_process(pid, ticks):
            os.kill(pid, signal.SIGCONT)
            next_s += run_s
            time.sleep(max(0.0, next_s - time.monotonic()))
            if stopping or pause_s <= 0 or not _same_process(pid, ticks):
                continue
            os.kill(pid, signal.SIGSTOP)
            next_s += pause_s
            time.sleep(max(0.0, next_s - time.monotonic()))
            # Fell far behind (we were starved ourselves): restart the schedule from now.
            if time.monotonic() - next_s > period_s:
                next_s = time.monotonic()
    except ProcessLookupError:
        return 0
    finally:
        if _same_process(pid, ticks):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bitcell_sim.faults.dutycycle")
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--start-ticks", type=int, required=True)
    parser.add_argument("--share", type=float, required=True, help="CPU share in (0, 1]")
    parser.add_argument("--period-s", type=float, default=DEFAULT_PERIOD_S)
    args = parser.parse_args(argv)
    if not 0 < args.share <= 1:
        print(f"dutycycle: error: --share={args.share} must be in (0, 1]", file=sys.stderr)
        return 1
    if not args.period_s > 0:
        print(f"dutycycle: error: --period-s={args.period_s} must be > 0", file=sys.stderr)
        return 1
    return run(args.pid, args.start_ticks, args.share, args.period_s)


if __name__ == "__main__":
    sys.exit(main())
