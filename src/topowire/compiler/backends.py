"""Graph-weight backends: how ``h -> (W * M) h`` is computed.

``dense`` (the default, and the only one for packed populations) keeps ``W`` as a dense
``[G*N, N]`` tensor times the mask: one GEMM, fastest unless the graph is large and very
sparse. ``sparse`` (torch.sparse CSR) and ``torch_sparse`` (the optional torch_sparse
package) keep only the edge values, ``[G*E]``, so memory grows with edges instead of
neurons squared. ``auto`` picks by the crossover measured in ``bench/bench_backends.py``
(see BENCHMARKS.md).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor, nn

from topowire.compiler.wiring import BACKENDS
from topowire.errors import ParameterError

__all__ = ["BACKENDS", "EdgeWeights", "resolve_backend", "torch_sparse_available"]

# Measured crossover (bench/bench_backends.py, BENCHMARKS.md; 2-core x86 CPU, one GRU training
# step): a sparse backend is fastest at density <= 1% from n = 1,024 on (at n = 256 all
# backends are within 2 ms), and torch.sparse CSR is then the fastest sparse backend in all
# but one measured cell; dense wins at 10% and above at every size that fits.
AUTO_MIN_NEURONS = 1024
AUTO_MAX_DENSITY = 0.01


def torch_sparse_available() -> bool:
    try:
        import torch_sparse  # noqa: F401
    except Exception:  # an ABI-mismatched wheel raises OSError/RuntimeError, not ImportError
        return False
    return True


def resolve_backend(backend: str, n_neurons: int, n_edges: int) -> str:
    """The concrete backend for a graph: ``auto`` follows the measured crossover."""
    if backend not in BACKENDS:
        raise ParameterError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "torch_sparse" and not torch_sparse_available():
        raise ParameterError("backend 'torch_sparse' needs the torch_sparse package "
                             "(pip install 'topowire[torch-sparse]')")
    if backend != "auto":
        return backend
    density = n_edges / max(1, n_neurons * n_neurons)
    if n_neurons >= AUTO_MIN_NEURONS and density <= AUTO_MAX_DENSITY:
        return "sparse"
    return "dense"


def edge_structure(edges: np.ndarray, n: int, gates: int) -> tuple[Tensor, Tensor, Tensor]:
    """CSR structure of the gate-stacked ``[G*N, N]`` matrix: (crow, col, row), rows sorted.

    Gate g's row of neuron v is ``g*N + v``, so every gate carries the graph's mask as a
    whole block.
    """
    src, dst = edges[:, 0], edges[:, 1]
    rows = np.concatenate([g * n + dst for g in range(gates)])
    cols = np.concatenate([src] * gates)
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    crow = np.zeros(gates * n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=gates * n), out=crow[1:])
    return torch.from_numpy(crow), torch.from_numpy(cols.astype(np.int64)), torch.from_numpy(rows.astype(np.int64))


def _csr(crow: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "CSR support is in beta"
        return torch.sparse_csr_tensor(crow, col, values, shape)


class _CsrMatmul(torch.autograd.Function):
    """``h @ W.T`` for a CSR ``W`` given by its values, with a sparse backward.

    torch.sparse's own backward forms a dense ``[rows, cols]`` gradient for the values;
    here the value gradient is a gather, ``sum_b grad[b, row_e] * h[b, col_e]`` (O(E * B)),
    and the input gradient multiplies by the transposed CSR built once beforehand.
    """

    @staticmethod
    def forward(ctx, values, h, crow, col, row, t_crow, t_col, t_order, rows, cols):
        ctx.save_for_backward(values, h, row, col, t_crow, t_col, t_order)
        ctx.shape = (rows, cols)
        return (_csr(crow, col, values, (rows, cols)) @ h.T).T

    @staticmethod
    def backward(ctx, grad):
        values, h, row, col, t_crow, t_col, t_order = ctx.saved_tensors
        rows, cols = ctx.shape
        g_values = g_h = None
        if ctx.needs_input_grad[0]:
            g_values = torch.empty_like(values)
            step = max(1, 2**24 // max(1, h.shape[0]))  # bound the [B, chunk] temporaries
            for s in range(0, values.numel(), step):
                r, c = row[s:s + step], col[s:s + step]
                g_values[s:s + step] = (grad[:, r] * h[:, c]).sum(0)
        if ctx.needs_input_grad[1]:
            g_h = (_csr(t_crow, t_col, values[t_order], (cols, rows)) @ grad.T).T
        return g_values, g_h, None, None, None, None, None, None, None, None


class EdgeWeights(nn.Module):
    """Graph weights stored as one value per (gate, edge): ``values [G*E]`` in CSR order.

    ``forward(h [B, N]) -> [B, G*N]`` computes ``h @ W.T`` with ``W[g*N + v, u] = value``
    for every edge ``u -> v``.

    Parameters
    ----------
    edges : ndarray [E, 2]
        Directed edges ``src -> dst``.
    n : int
        Neurons.
    gates : int
        Gate blocks.
    backend : {"sparse", "torch_sparse"}
    """

    def __init__(self, edges: np.ndarray, n: int, gates: int, backend: str) -> None:
        super().__init__()
        if backend not in ("sparse", "torch_sparse"):
            raise ParameterError(f"EdgeWeights serves the sparse backends, not {backend!r}")
        self.n, self.gates, self.backend = int(n), int(gates), backend
        crow, col, row = edge_structure(np.asarray(edges, dtype=np.int64).reshape(-1, 2), n, gates)
        self.register_buffer("crow", crow)
        self.register_buffer("col", col)
        self.register_buffer("row", row)
        # the transposed structure, for the input gradient of the CSR backend
        t_order = torch.from_numpy(np.lexsort((row.numpy(), col.numpy())))
        t_crow = torch.zeros(n + 1, dtype=torch.int64)
        t_crow[1:] = torch.cumsum(torch.bincount(col, minlength=n), 0)
        self.register_buffer("t_order", t_order, persistent=False)
        self.register_buffer("t_crow", t_crow, persistent=False)
        self.register_buffer("t_col", row[t_order], persistent=False)
        self.values = nn.Parameter(torch.zeros(col.numel()))

    def forward(self, h: Tensor) -> Tensor:
        shape = (self.gates * self.n, self.n)
        if self.backend == "torch_sparse":
            import torch_sparse

            index = torch.stack([self.row, self.col])
            return torch_sparse.spmm(index, self.values, shape[0], shape[1], h.T).T
        return _CsrMatmul.apply(self.values, h, self.crow, self.col, self.row, self.t_crow, self.t_col,
                                self.t_order, shape[0], shape[1])

    def to_dense(self) -> Tensor:
        """The ``[G*N, N]`` dense equivalent."""
        w = self.values.new_zeros(self.gates * self.n, self.n)
        return w.index_put((self.row, self.col), self.values)

    def from_dense(self, w: Tensor) -> None:
        """Take the values at the edges of a dense ``[G*N, N]`` weight."""
        with torch.no_grad():
            self.values.copy_(w[self.row, self.col])

    def extra_repr(self) -> str:
        return f"backend={self.backend!r}, n={self.n}, gates={self.gates}, nnz={self.values.numel()}"
