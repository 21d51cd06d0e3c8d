"""The adding problem (Hochreiter & Schmidhuber 1997): sum the two marked numbers.

Each sequence has T steps of two channels: a value ~ U(0, 1) and a marker that is 1 at
exactly two steps, one in each half. The target is the sum of the two marked values.
"""

from __future__ import annotations

import numpy as np
import torch

from topowire import checks

__all__ = ["make_adding"]


def make_adding(n: int, length: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [n, length, 2]`` and ``y [n, 1]`` of the adding problem (seeded)."""
    checks.integer("T", length, 2, what=" (the sequence length)")
    checks.integer("n", n, 1)
    rng = np.random.default_rng(seed)
    values = rng.random((n, length), dtype=np.float32)
    half = length // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    marks = np.zeros((n, length), dtype=np.float32)
    marks[np.arange(n), first] = 1.0
    marks[np.arange(n), second] = 1.0
    x = np.stack([values, marks], axis=-1)
    y = (values[np.arange(n), first] + values[np.arange(n), second])[:, None]
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
