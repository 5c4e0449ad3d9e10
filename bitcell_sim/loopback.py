"""Loopback and its free ports, for processes started beside others (tests, benchmarks, CLIs).

``LOOPBACK`` is the one address everything binds. ``free_port``/``free_ports`` ask the OS for
ports it has free now; ``free_port_block`` finds a run of consecutive free ports below the
ephemeral range, where no client socket of another process can take one between the check and
the bind.
"""

from __future__ import annotations

import random
import socket

from bitcell_sim.errors import DevnetError

LOOPBACK = "127.0.0.1"
# Blocks are drawn from [BLOCK_LOW, BLOCK_HIGH): below Linux's ephemeral range (32768 up), so
# the OS never hands one of these ports to an outgoing connection.
BLOCK_LOW = 25000
BLOCK_HIGH = 32700
BLOCK_ATTEMPTS = 500


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports the OS had free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """One loopback port the OS had free a moment ago."""
    return free_ports(1)[0]


def _block_free(base: int, count: int) -> bool:
    sockets = []
    try:
        for port in range(base, base + count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((LOOPBACK, port))
        return True
    except OSError:
        return False
    finally:
        for sock in sockets:
            sock.close()


def free_port_block(count: int, *, rng: random.Random | None = None) -> int:
    """A base port such that ``base .. base + count - 1`` are all free on loopback, below the
    ephemeral range; blocks are drawn at random (from ``rng`` if given) so that parallel
    callers rarely collide. DevnetError if ``count`` does not fit or no block is free."""
    if not 0 < count < BLOCK_HIGH - BLOCK_LOW:
        raise DevnetError(
            f"a port block of count={count} does not fit in {BLOCK_LOW}..{BLOCK_HIGH - 1}"
        )
    chooser = rng if rng is not None else random.Random()
    for _ in range(BLOCK_ATTEMPTS):
        base = chooser.randrange(BLOCK_LOW, BLOCK_HIGH - count)
        if _block_free(base, count):
            return base
    raise DevnetError(f"no block of {count} free ports after {BLOCK_ATTEMPTS} tries")
