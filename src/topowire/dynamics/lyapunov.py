"""Lyapunov exponents of masked recurrent models along input sequences.

The QR (Benettin) method: along the trajectory ``s_t = F(s_{t-1}, x_t)`` propagate an
orthonormal frame ``Q`` by the step Jacobian, re-orthonormalise with a QR factorisation,
and average ``log |diag R|``. The Jacobian-frame products ``J_t Q`` are ``k`` forward-mode
derivatives (``torch.func.jvp``), vectorised over the frame, the batch of sequences and
the models of a pack with ``torch.func.vmap``.

The state of an LSTM is ``[h; c]`` (2N); the other cells' state is ``h`` (N). In a pack,
padding neurons are decoupled from the real ones (their weights are zero), so starting the
frame on real coordinates keeps it there: each model gets its own spectrum, unaffected by
padding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import jvp, vmap

from topowire import checks
from topowire.compiler.functional import _cell, input_mask, masked_recurrent_weights
from topowire.compiler.modules import stacked
from topowire.errors import ParameterError

__all__ = ["lyapunov_spectrum", "max_lyapunov"]


def _model_tensors(module: nn.Module, dtype: torch.dtype) -> tuple[dict[str, Tensor], Tensor]:
    """Effective per-model tensors with a leading P, and the true neuron count of each model."""
    arch = getattr(module, "arch", None)
    if arch is None or not arch.masked_cell:
        raise ParameterError(f"lyapunov_spectrum takes a masked recurrent model or pack, got {type(module).__name__}")
    if getattr(module, "backend", "dense") != "dense":
        raise ParameterError("lyapunov_spectrum needs the dense backend")
    def lead(name: str) -> Tensor:
        return stacked(module, name).detach()

    w_ih, in_mask = lead("w_ih"), lead("in_mask")
    p, _, d_in = w_ih.shape
    n = in_mask.shape[1]
    t = {
        "w_ih": masked_recurrent_weights(w_ih, input_mask(in_mask, lead("ih_mask"), d_in)),
        "w_hh": masked_recurrent_weights(lead("w_hh"), lead("mask")),
        "b_ih": lead("b_ih"), "b_hh": lead("b_hh"),
    }
    if arch.kind == "wcrnn":
        t["res_diag"], t["res_pair"] = lead("res_diag"), lead("res_pair")
    t = {k: v.to(dtype) for k, v in t.items()}
    sizes = torch.tensor([int(module.sizes[i]) for i in range(p)] if hasattr(module, "sizes") else [n])
    return t, sizes


def _step_fn(kind: str, gates: int, gamma: float):
    """One step of one model on one sequence: ``(tensors, x_t [d_in], s [S]) -> s' [S]``."""

    def step(t: dict[str, Tensor], x: Tensor, s: Tensor) -> Tensor:
        n = t["w_hh"].shape[1]
        h = s[:n]
        gx = t["w_ih"] @ x + t["b_ih"]
        gh = t["w_hh"] @ h + t["b_hh"]
        residual = (t["res_diag"], t["res_pair"]) if kind == "wcrnn" else None
        h_new, c_new = _cell(kind, gx, gh, h, s[n:] if kind == "lstm" else None, gates, residual, gamma)
        return torch.cat([h_new, c_new]) if kind == "lstm" else h_new

    return step


def lyapunov_spectrum(module: nn.Module, inputs: Tensor, k: int | None = None, *,
                      lengths: Tensor | None = None, warmup: int = 0,
                      dtype: torch.dtype = torch.float64) -> Tensor:
    """The k largest Lyapunov exponents (nats per step) along every input sequence.

    Parameters
    ----------
    module : MaskedRecurrentNet or PackedPopulation
        A dense masked recurrent model (any cell) or a pack of them.
    inputs : Tensor [B, T, d_in]
        Input sequences driving the dynamics from a zero state.
    k : int, optional
        Exponents to compute; default the full spectrum of the smallest model
        (N, or 2N for an LSTM). At most that.
    lengths : Tensor [B], optional
        Real lengths; steps after a sequence's end are not counted.
    warmup : int, default 0
        Leading steps that move the frame but are not averaged (transient).
    dtype : torch.dtype, default float64
        Precision of the computation. A direction the step annihilates (``|R_ii| < eps``,
        e.g. dead ReLUs) contributes ``log(eps)`` per step instead of minus infinity.

    Returns
    -------
    Tensor
        ``[B, k]`` for a standalone module, ``[P, B, k]`` for a pack; each row sorted in
        decreasing order.
    """
    t, sizes = _model_tensors(module, dtype)
    arch = module.arch
    p, n = t["w_hh"].shape[0], t["w_hh"].shape[2]
    factor = 2 if arch.kind == "lstm" else 1
    state_dim = factor * n
    k_max = factor * int(sizes.min())
    if k is None:
        k = k_max
    k = checks.integer("k", k, 1, k_max, what=" (the smallest model's state size)")
    if inputs.dim() != 3 or inputs.shape[2] != arch.d_in:
        raise ParameterError(f"inputs must be [B, T, {arch.d_in}], got {list(inputs.shape)}")
    b, steps = inputs.shape[:2]
    warmup = checks.integer("warmup", warmup, 0, steps - 1)
    x = inputs.to(dtype)
    step = _step_fn(arch.kind, arch.gates, float(arch.gamma))

    def advance(tp, xt, s, q):
        f = lambda state: step(tp, xt, state)  # noqa: E731
        s_new = f(s)
        jq = vmap(lambda v: jvp(f, (s,), (v,))[1], in_dims=1, out_dims=1)(q)
        return s_new, jq

    batched = vmap(vmap(advance, in_dims=(None, 0, 0, 0)), in_dims=(0, None, 0, 0))
    # the frame starts on each model's real coordinates: h[:n_p] (and c[:n_p] for the LSTM)
    q = torch.zeros(p, b, state_dim, k, dtype=dtype)
    for i, n_p in enumerate(sizes.tolist()):
        real = torch.cat([torch.arange(n_p) + j * n for j in range(factor)])[:k]
        q[i, :, real, torch.arange(k)] = 1.0
    s = torch.zeros(p, b, state_dim, dtype=dtype)
    total = torch.zeros(p, b, k, dtype=dtype)
    counted = torch.zeros(b, dtype=dtype)
    floor = torch.finfo(dtype).eps  # a zero derivative (a dead ReLU) counts as log(eps) per step
    with torch.no_grad():
        for ti in range(steps):
            s_new, jq = batched(t, x[:, ti], s, q)
            q_new, r = torch.linalg.qr(jq)
            logs = r.diagonal(dim1=-2, dim2=-1).abs().clamp_min(floor).log()
            alive = torch.ones(b, dtype=torch.bool) if lengths is None else (ti < lengths.cpu())
            use = alive & (ti >= warmup)
            total += logs * use.to(dtype)[None, :, None]
            counted += use.to(dtype)
            a = alive[None, :, None]
            s = torch.where(a, s_new, s)
            q = torch.where(a[..., None], q_new, q)
    spectrum = (total / counted.clamp_min(1)[None, :, None]).sort(dim=-1, descending=True).values
    return spectrum if getattr(module, "stacked", False) else spectrum[0]


def max_lyapunov(module: nn.Module, inputs: Tensor, *, lengths: Tensor | None = None, warmup: int = 0) -> Tensor:
    """The maximal exponent averaged over the sequences: ``[P]`` (a scalar for one module)."""
    return lyapunov_spectrum(module, inputs, 1, lengths=lengths, warmup=warmup)[..., 0].mean(-1)
