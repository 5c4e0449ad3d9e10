"""The jitter law of a link: which distributions its random delay may follow, and one draw of it.

``JITTER_DISTRIBUTIONS`` names the laws a topology's ``links.jitter.distribution`` may take;
:func:`standard_jitter` draws them at scale 1: ``normal`` (scale = standard deviation),
``uniform`` (±scale) and ``pareto`` (2·scale·Lomax(3), never negative, mean = scale). The model's
links and the link emulator both draw through it, so a scale means the same delay in both.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

JitterDistribution = Literal["none", "normal", "uniform", "pareto"]
JITTER_DISTRIBUTIONS: tuple[str, ...] = get_args(JitterDistribution)

#: Lomax (Pareto II) shape of "pareto" jitter; its mean is 1/(shape-1), so x(shape-1) makes it 1.
PARETO_SHAPE = 3.0


def standard_jitter(
    distribution: str, rng: np.random.Generator, count: int
) -> npt.NDArray[np.float64]:
    """``count`` draws of ``distribution`` at scale 1 from ``rng`` (zeros for "none")."""
    if distribution == "normal":
        return rng.standard_normal(count)
    if distribution == "uniform":
        return rng.uniform(-1.0, 1.0, count)
    if distribution == "pareto":
        return rng.pareto(PARETO_SHAPE, count) * (PARETO_SHAPE - 1.0)
    return np.zeros(count)
