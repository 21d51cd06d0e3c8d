"""Sequential2D: a grid of blocks iterated as one map (arXiv 2404.00880).

State is a list of blocks ``X_0 .. X_L``. Block 0 is the input: its row is the identity
(it keeps the data). Every other row i computes, from the *previous* state (Jacobi),

    X_i <- act_i( sum_j blocks[i][j](X_j) + b_i )

``blocks[i][j]`` maps block j to block i (the paper's output-by-input order); ``None``
means no connection. An MLP is the grid with blocks only on the sub-diagonal, iterated L
times; any other placement of the same weights is the same kind of object.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from topowire import checks
from topowire.compiler.cells import ACTIVATIONS
from topowire.errors import ParameterError

__all__ = ["MaskedLinear", "Sequential2D"]


class MaskedLinear(nn.Module):
    """``y = x (W * M)^T``: a bias-free linear map whose zero-mask entries are not trainable.

    Parameters
    ----------
    mask : Tensor [out_features, in_features]
        1 where a weight exists. Registered as a buffer.
    weight : Tensor, optional
        Initial weights (multiplied by the mask); default zeros.
    """

    def __init__(self, mask: Tensor, weight: Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("mask", mask.to(torch.float32))
        self.weight = nn.Parameter(torch.zeros_like(self.mask) if weight is None else weight * self.mask)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight * self.mask)

    @property
    def in_features(self) -> int:
        return self.mask.shape[1]

    @property
    def out_features(self) -> int:
        return self.mask.shape[0]

    def n_weights(self) -> int:
        return int(self.mask.count_nonzero())

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, nnz={self.n_weights()}"


def _n_weights(block: nn.Module) -> int:
    if isinstance(block, MaskedLinear):
        return block.n_weights()
    if isinstance(block, nn.Linear):
        return block.weight.numel()
    return sum(p.numel() for p in block.parameters())


class Sequential2D(nn.Module):
    """A block grid iterated K times.

    Parameters
    ----------
    blocks : list of lists of nn.Module or None
        ``blocks[i][j]`` maps block j (``sizes[j]`` features) to block i (``sizes[i]``).
        Row 0 (the input row) must be all None.
    sizes : sequence of int
        Width of every block; ``sizes[0]`` is the data width.
    activations : sequence of str
        Activation of rows 1..L (keys of ``ACTIVATIONS``).
    iterations : int
        K, the number of Jacobi iterations.
    bias : bool, default True
        A bias per row, added after the sum.
    """

    def __init__(self, blocks: Sequence[Sequence[nn.Module | None]], sizes: Sequence[int],
                 activations: Sequence[str], iterations: int, bias: bool = True) -> None:
        super().__init__()
        sizes = [int(s) for s in sizes]
        L = len(sizes) - 1
        if L < 1 or len(blocks) != L + 1 or any(len(row) != L + 1 for row in blocks):
            raise ParameterError(f"blocks must be a {L + 1} x {L + 1} grid for {L + 1} block sizes")
        if any(b is not None for b in blocks[0]):
            raise ParameterError("row 0 is the input row (identity): its blocks must all be None")
        if len(activations) != L or any(a not in ACTIVATIONS for a in activations):
            raise ParameterError(f"activations must name {L} activations from {', '.join(ACTIVATIONS)}")
        checks.integer("iterations", iterations, 1)
        self.sizes, self.activations, self.iterations = sizes, list(activations), iterations
        self.grid = nn.ModuleDict()
        for i, row in enumerate(blocks):
            for j, blk in enumerate(row):
                if blk is None:
                    continue
                if isinstance(blk, (nn.Linear, MaskedLinear)) and (
                        blk.in_features != sizes[j] or blk.out_features != sizes[i]):
                    raise ParameterError(
                        f"block [{i}][{j}] maps {blk.in_features} -> {blk.out_features}, "
                        f"expected {sizes[j]} -> {sizes[i]}"
                    )
                self.grid[f"{i}_{j}"] = blk
        self.bias = nn.ParameterList([nn.Parameter(torch.zeros(s)) for s in sizes[1:]]) if bias else None

    def block(self, i: int, j: int) -> nn.Module | None:
        """The block from j to i, or None."""
        return self.grid[f"{i}_{j}"] if f"{i}_{j}" in self.grid else None

    def forward(self, x: Tensor, *, return_all: bool = False) -> Tensor | list[Tensor]:
        state = [x] + [x.new_zeros(x.shape[0], s) for s in self.sizes[1:]]
        edges = [(int(k.split("_")[0]), int(k.split("_")[1]), m) for k, m in self.grid.items()]
        for _ in range(self.iterations):
            acc = [None] * len(self.sizes)
            for i, j, m in edges:
                y = m(state[j])
                acc[i] = y if acc[i] is None else acc[i] + y
            new = [x]
            for i in range(1, len(self.sizes)):
                pre = acc[i] if acc[i] is not None else state[i].new_zeros(state[i].shape)
                if self.bias is not None:
                    pre = pre + self.bias[i - 1]
                new.append(ACTIVATIONS[self.activations[i - 1]](pre))
            state = new
        return state if return_all else state[-1]

    def n_trainable(self) -> int:
        """Trainable parameters counted as mask non-zeros (+ biases), not tensor sizes."""
        w = sum(_n_weights(m) for m in self.grid.values())
        return w + (sum(self.sizes[1:]) if self.bias is not None else 0)

    def extra_repr(self) -> str:
        return (f"sizes={self.sizes}, iterations={self.iterations}, blocks={len(self.grid)}, "
                f"trainable={self.n_trainable()}")

    # -- constructors --------------------------------------------------------------------
    @classmethod
    def mlp(cls, sizes: Sequence[int], activation: str = "relu", *, seed: int = 0) -> Sequential2D:
        """The MLP of the given layer sizes: sub-diagonal ``nn.Linear`` blocks, K = L.

        Hidden rows use ``activation``; the last row is linear. Weights follow
        ``nn.Linear``'s U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from ``seed``.
        """
        sizes = _check_sizes(sizes)
        L = len(sizes) - 1
        gen = torch.Generator().manual_seed(int(seed))
        grid: list[list[nn.Module | None]] = [[None] * (L + 1) for _ in range(L + 1)]
        for i in range(1, L + 1):
            lin = nn.Linear(sizes[i - 1], sizes[i], bias=False)
            with torch.no_grad():
                lin.weight.copy_(_uniform(gen, (sizes[i], sizes[i - 1]), 1 / math.sqrt(sizes[i - 1])))
            grid[i][i - 1] = lin
        net = cls(grid, sizes, [activation] * (L - 1) + ["identity"], iterations=L)
        with torch.no_grad():
            for i in range(1, L + 1):
                net.bias[i - 1].copy_(_uniform(gen, (sizes[i],), 1 / math.sqrt(sizes[i - 1])))
        return net

    @classmethod
    def randomized(cls, sizes: Sequence[int], *, seed: int = 0, activation: str = "relu") -> Sequential2D:
        """The "randomized" network: exactly the MLP's number of trainable weights, placed
        uniformly at random in the whole grid (any block j -> any non-input row i).

        Same block sizes, biases, activations and K = L as :meth:`mlp`, so the two differ
        only in where the weights sit. Each row's weights are initialised like nn.Linear
        with that row's fan-in.
        """
        sizes = _check_sizes(sizes)
        L = len(sizes) - 1
        n_weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        rows, cols = sum(sizes[1:]), sum(sizes)
        rng = np.random.default_rng(seed)
        flat = np.zeros(rows * cols, dtype=bool)
        flat[rng.choice(rows * cols, size=n_weights, replace=False)] = True
        full = torch.from_numpy(flat.reshape(rows, cols)).float()
        fan_in = full.sum(1).clamp(min=1)
        gen = torch.Generator().manual_seed(int(seed))
        weights = _uniform(gen, (rows, cols), (1 / fan_in.sqrt())[:, None])
        r_off = np.concatenate([[0], np.cumsum(sizes[1:])])
        c_off = np.concatenate([[0], np.cumsum(sizes)])
        grid: list[list[nn.Module | None]] = [[None] * (L + 1) for _ in range(L + 1)]
        for i in range(1, L + 1):
            for j in range(L + 1):
                rs, cs = slice(r_off[i - 1], r_off[i]), slice(c_off[j], c_off[j + 1])
                m = full[rs, cs]
                if m.any():
                    grid[i][j] = MaskedLinear(m.clone(), weights[rs, cs].clone())
        net = cls(grid, sizes, [activation] * (L - 1) + ["identity"], iterations=L)
        with torch.no_grad():
            for i in range(1, L + 1):
                rs = slice(r_off[i - 1], r_off[i])
                net.bias[i - 1].copy_(_uniform(gen, (sizes[i],), 1 / fan_in[rs].sqrt()))
        return net


def _uniform(gen: torch.Generator, shape: tuple[int, ...], bound) -> Tensor:
    return (torch.rand(shape, generator=gen) * 2 - 1) * bound


def _check_sizes(sizes: Sequence[int]) -> list[int]:
    if isinstance(sizes, (str, bytes)) or len(sizes) < 2:
        raise ParameterError(f"sizes must list at least two widths, got {sizes!r}")
    out = []
    for s in sizes:
        out.append(checks.integer("sizes[i]", s, 1))
    return out
