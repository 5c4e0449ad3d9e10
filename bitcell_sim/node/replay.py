"""``bitcell_getBattleReplay`` answered from a small deterministic cellular-automaton battle.

The real node runs a 1024×1024 battle of 100 steps on every call; the devnet runs a glider and
a seeded soup per miner on a 64×64 torus (Conway rules, a newborn cell takes its parents'
majority colour, ties to A), seeded by SHA-256 of the height: a few milliseconds per call.
``battle_replay(height)`` returns the node's shape: ``block_height``, 11 ``grid_states`` (steps
0, 10, …, 100) of 64×64 arrays of 0 (empty), 1 (miner A), 2 (miner B), and ``outcome``.
"""

from __future__ import annotations

import hashlib
import struct
from functools import lru_cache
from typing import Any

import numpy as np

GRID_SIZE = 64
STEPS = 100
FRAME_EVERY = 10

# A glider (moving down-right) and its mirror (moving up-left).
_GLIDER = np.array([[0, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=np.int8)


def _neighbours(alive: np.ndarray) -> np.ndarray:
    total = np.zeros_like(alive, dtype=np.int8)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                total += np.roll(np.roll(alive, dy, axis=0), dx, axis=1)
    return total


def _step(grid: np.ndarray) -> np.ndarray:
    a = (grid == 1).astype(np.int8)
    b = (grid == 2).astype(np.int8)
    na, nb = _neighbours(a), _neighbours(b)
    n = na + nb
    alive = grid > 0
    survive = alive & ((n == 2) | (n == 3))
    born = ~alive & (n == 3)
    out = np.zeros_like(grid)
    out[survive] = grid[survive]
    out[born] = np.where(na[born] >= nb[born], 1, 2).astype(np.int8)
    return out


@lru_cache(maxsize=32)
def battle_replay(height: int) -> dict[str, Any]:
    """The replay object of ``bitcell_getBattleReplay`` for ``height`` (cached)."""
    seed = hashlib.sha256(struct.pack("<Q", height & 0xFFFFFFFFFFFFFFFF)).digest()
    rng = np.random.default_rng(int.from_bytes(seed[:8], "little"))
    grid = np.zeros((GRID_SIZE, GRID_SIZE), dtype=np.int8)
    # Each miner spawns a glider followed by a 10x10 seeded soup, A top-left, B bottom-right.
    for colour, (y, x), glider in ((1, (8, 8), _GLIDER), (2, (40, 40), _GLIDER[::-1, ::-1])):
        soup = rng.random((10, 10)) < 0.35
        grid[y : y + 10, x : x + 10][soup] = colour
        gy, gx = (y + 12, x + 12) if colour == 1 else (y - 6, x - 6)
        grid[gy : gy + 3, gx : gx + 3][glider == 1] = colour
    frames: list[list[list[int]]] = [grid.tolist()]
    for step in range(1, STEPS + 1):
        grid = _step(grid)
        if step % FRAME_EVERY == 0:
            frames.append(grid.tolist())
    a, b = int((grid == 1).sum()), int((grid == 2).sum())
    outcome = "Miner A Wins" if a > b else "Miner B Wins" if b > a else "Tie"
    return {"block_height": height, "grid_states": frames, "outcome": outcome}
