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
from topowire.compiler.cells import CELLS
from topowire.compiler.functional import input_mask, masked_recurrent_weights
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
    if hasattr(module, "res_diag"):  # the residual matrix R of a wcrnn
        t["res_diag"], t["res_pair"] = lead("res_diag"), lead("res_pair")
    t = {k: v.to(dtype) for k, v in t.items()}
    sizes = torch.tensor([int(module.sizes[i]) for i in range(p)] if hasattr(module, "sizes") else [n])
    return t, sizes


def _step_fn(kind: str, gamma: float):
    """One step of one model on one sequence: ``(tensors, x_t [d_in], s [S]) -> s' [S]``;
    the state of a cell with a memory (the LSTM) is ``[h; c]``."""
    cell = CELLS[kind]

    def step(t: dict[str, Tensor], x: Tensor, s: Tensor) -> Tensor:
        n = t["w_hh"].shape[1]
        h = s[:n]
        gx = t["w_ih"] @ x + t["b_ih"]
        gh = t["w_hh"] @ h + t["b_hh"]
        residual = (t["res_diag"], t["res_pair"]) if cell.residual else None
        h_new, c_new = cell.step(gx, gh, h, s[n:] if cell.memory else None, residual, gamma)
        return torch.cat([h_new, c_new]) if cell.memory else h_new

    return step


def _complete_frame(jq: Tensor, q: Tensor, real: Tensor, tol: Tensor) -> tuple[Tensor, Tensor]:
    """Gram-Schmidt of ``jq`` [M, S, k] that replaces annihilated columns deterministically.

    Column ``j`` is orthogonalised (twice) against the new columns before it; when less than
    ``tol`` [M] of it is left, the step annihilated it: its ``R_jj`` is 0 and the new column
    is the first candidate with at least half its length outside the span so far, trying the
    previous frame's columns (``q``, from the ``j``-th on) and then the model's real
    coordinates (``real`` [M, S], 0/1) one by one.
    """
    m, s, k = jq.shape
    basis = jq.new_zeros(m, s, k)
    diag = jq.new_zeros(m, k)
    candidates = torch.cat([q, torch.diag_embed(real)], dim=-1)  # [M, S, k + S]

    def outside(v: Tensor, j: int) -> Tensor:
        u = basis[..., :j]
        for _ in range(2):
            v = v - u @ (u.transpose(-2, -1) @ v)
        return v

    for j in range(k):
        v = outside(jq[..., j:j + 1], j)[..., 0]
        norm = v.norm(dim=-1)
        rest = outside(torch.cat([candidates[..., j:k], candidates[..., k:]], dim=-1), j)
        first = (rest.norm(dim=-2) >= 0.5).to(torch.uint8).argmax(-1)
        pick = rest.gather(-1, first[:, None, None].expand(m, s, 1))[..., 0]
        dead = norm <= tol
        v = torch.where(dead[:, None], pick, v)
        basis[..., j] = v / v.norm(dim=-1, keepdim=True)
        diag[:, j] = torch.where(dead, 0.0, norm)
    return basis, diag


def _reorthonormalise(jq: Tensor, q: Tensor, real: Tensor, floor: float) -> tuple[Tensor, Tensor]:
    """The new frame and ``log |R_ii|`` from the propagated frame ``jq`` [..., S, k].

    A direction the step annihilates (a singular Jacobian: dead ReLUs, a neuron without
    inputs) leaves a column whose part orthogonal to the others is rounding noise. Plain QR
    would normalise that noise into a frame direction, so everything after it would hang on
    the BLAS kernel, the thread count and a pack's padding. Where a column keeps less than
    ``sqrt(eps)`` of the largest column norm, the frame is rebuilt by
    :func:`_complete_frame`, which counts ``log(floor)`` for the annihilated direction and
    continues it along a deterministic choice: a continuous function of the inputs, the
    same for a model alone and in a pack.
    """
    q_new, r = torch.linalg.qr(jq)
    diag = r.diagonal(dim1=-2, dim2=-1).abs()
    tol = jq.norm(dim=-2).amax(-1) * torch.finfo(jq.dtype).eps ** 0.5
    hit = (diag <= tol[..., None]).any(-1)
    if bool(hit.any()):
        lead, (s, k) = hit.shape, jq.shape[-2:]
        where = hit.reshape(-1).nonzero()[:, 0]
        real_b = real[:, None].expand(*lead, s).reshape(-1, s)[where]
        f, d = _complete_frame(jq.reshape(-1, s, k)[where], q.reshape(-1, s, k)[where], real_b,
                               tol.reshape(-1)[where])
        q_new = q_new.reshape(-1, s, k).index_copy(0, where, f).reshape(q_new.shape)
        diag = diag.reshape(-1, k).index_copy(0, where, d).reshape(diag.shape)
    return q_new, diag.clamp_min(floor).log()


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
    factor = 2 if CELLS[arch.kind].memory else 1  # the state [h; c] of an LSTM
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
    step = _step_fn(arch.kind, float(getattr(arch, "gamma", 1.0)))

    def advance(tp, xt, s, q):
        f = lambda state: step(tp, xt, state)  # noqa: E731
        s_new = f(s)
        jq = vmap(lambda v: jvp(f, (s,), (v,))[1], in_dims=1, out_dims=1)(q)
        return s_new, jq

    batched = vmap(vmap(advance, in_dims=(None, 0, 0, 0)), in_dims=(0, None, 0, 0))
    # the frame starts on each model's real coordinates: h[:n_p] (and c[:n_p] for the LSTM)
    q = torch.zeros(p, b, state_dim, k, dtype=dtype)
    real = torch.zeros(p, state_dim, dtype=dtype)  # each model's own coordinates, 0/1
    for i, n_p in enumerate(sizes.tolist()):
        coords = torch.cat([torch.arange(n_p) + j * n for j in range(factor)])
        real[i, coords] = 1.0
        q[i, :, coords[:k], torch.arange(k)] = 1.0
    s = torch.zeros(p, b, state_dim, dtype=dtype)
    total = torch.zeros(p, b, k, dtype=dtype)
    counted = torch.zeros(b, dtype=dtype)
    floor = torch.finfo(dtype).eps  # a zero derivative (a dead ReLU) counts as log(eps) per step
    with torch.no_grad():
        for ti in range(steps):
            s_new, jq = batched(t, x[:, ti], s, q)
            q_new, logs = _reorthonormalise(jq, q, real, floor)
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
