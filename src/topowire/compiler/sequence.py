"""Recurrent cells run over a whole sequence with their own backward pass, computing only
their graph's connections.

A pack's sequence is one kernel call (:mod:`~topowire.compiler.kernels`) forward and one
backward, in which each model runs its time steps one after another (its state stays in
cache from one step to the next; the models split over torch's threads). Per step and unit
the recurrent product sums over the unit's edges alone (a graph of mean degree 4 among 48
units is a twelfth of the dense product's work), and the gate arithmetic follows while the
sums are in registers. Buffers are unit-major, ``[P, T, N, Bp]``: a unit's row holds the
batch's lanes (padded to whole vectors), so every operation runs on whole vectors whatever
the graph. The input's gate pre-activations are, for one-hot inputs, a per-lane pick from
the table ``W_ih.T + b_ih`` (one row per symbol,
:func:`~topowire.compiler.functional.symbol_table`); for other inputs narrower than a
vector, a per-lane sum of the rows of ``W_ih.T`` and ``b_ih`` weighted by the lane's
values; else one product over every step (:func:`_inputs`). The
kernels read the graph's weights from the dense ``W_hh`` times its mask (each model's edges
gathered once per call, the edge lists kept per mask: :func:`edges`) and write its gradient dense,
accumulated per edge; the gradients of ``b_hh`` and of the input table are summed inside
too. Nothing per step is left to torch, and little per call.

A training step whose loss is the cross-entropy or squared error of the last state's readout
is one call (:func:`sequence_loss`): each model's forward, loss and backward one after
another, its states and saved rows in a buffer of its thread's that stays in cache, where a
pack's forward keeps every model's rows until the loss is known and the backward reads them
back from memory.

A sequence stops updating after its length: its state is held and its gates get no
gradient, so the last state is every sequence's last real one. Lanes sorted longest first
(the trainer's batches) let each step compute only the vectors still running.

The torch path (:data:`~topowire.compiler.cells.CELLS` step by step under autograd, dense
masked products) stays the reference: the tests compare the two, values and gradients, for
every cell this module runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import Tensor

from topowire.compiler import kernels
from topowire.compiler.functional import cache_bytes, one_hot_symbols, symbol_table

__all__ = ["Family", "KINDS", "OBJECTIVES", "supports", "sequence_forward", "sequence_loss", "edges", "lanes",
           "reused_buffers"]

#: The losses a training step computes in its kernel call (:func:`sequence_loss`).
OBJECTIVES = ("classification", "regression")


@dataclass(frozen=True)
class Family:
    """How one cell runs here: its kernels' calls on a sequence's arguments (``s``, a namespace
    of sizes and addresses, see :class:`_Sequence`; ``s.seq`` the arguments every kernel
    takes first).

    Attributes
    ----------
    gates : int
        Gates per unit (G).
    saved : int
        Rows kept per unit and step for the backward pass (beside the states).
    memory : bool
        Carries a cell state c (the LSTM).
    recurrent_bias : bool
        ``b_hh`` is added to the recurrent sums by the kernel, apart from the input's rows
        (the GRU, whose reset gate scales it); a summed cell's rows carry both biases instead.
    forward, backward, train : callable
        ``(lib, s) -> None``: the sequence's kernel call (train: a training step's, forward,
        loss and backward model by model, see :func:`sequence_loss`).
    """

    gates: int
    saved: int
    memory: bool
    recurrent_bias: bool
    forward: Callable
    backward: Callable
    train: Callable


def _act(which: int) -> Family:
    return Family(1, 0, False, False,
                  lambda lib, s: lib.act_forward(*s.seq, which, s.h, s.hs, s.ring, s.every, s.streamed),
                  lambda lib, s: lib.act_backward(*s.seq, which, s.g, s.prev, *s.outside, s.h, s.hs, s.dx, s.dxs,
                                                  s.dg, s.dw),
                  lambda lib, s: lib.act_train(*s.seq, which, *s.head, s.dx, s.dxs, s.dw))


#: The cells run here.
KINDS: dict[str, Family] = {
    "gru": Family(3, 4, False, True,
                  lambda lib, s: lib.gru_forward(*s.seq, s.bias, s.h, s.hs, s.ring, s.every, s.streamed, s.saved,
                                                 s.ss),
                  lambda lib, s: lib.gru_backward(*s.seq, s.g, s.prev, *s.outside, s.saved, s.ss, s.h, s.hs, s.dx,
                                                  s.dxs, s.dg, s.db, s.dw),
                  lambda lib, s: lib.gru_train(*s.seq, s.bias, *s.head, s.dx, s.dxs, s.db, s.dw)),
    "lstm": Family(4, 5, True, False,
                   lambda lib, s: lib.lstm_forward(*s.seq, s.h, s.c, s.hs, s.ring, s.every, s.streamed, s.saved,
                                                  s.ss),
                   lambda lib, s: lib.lstm_backward(*s.seq, s.g, s.gc, s.prev, s.gc_prev, *s.outside, s.saved, s.ss,
                                                    s.c, s.h, s.hs, s.dx, s.dxs, s.dg, s.dw),
                   lambda lib, s: lib.lstm_train(*s.seq, *s.head, s.dx, s.dxs, s.dw)),
    "rnn-tanh": _act(0),
    "rnn-relu": _act(1),
}


def supports(kind: str, x: Tensor) -> bool:
    """Whether ``kind`` runs here for inputs ``x``: one of :data:`KINDS`, float32 on the CPU,
    with the kernels built and not switched off (:func:`~topowire.compiler.kernels.enabled`)."""
    return kind in KINDS and x.device.type == "cpu" and x.dtype == torch.float32 and kernels.enabled()


def edges(mask: Tensor) -> tuple[Tensor, Tensor, int]:
    """A pack's graphs as the kernels read them: ``(rowptr [P, N + 1], col [E], most)``.

    Edge e (ordered by model, then unit) joins unit ``col[e]`` into unit v of model p, for
    e in ``[rowptr[p, v], rowptr[p, v + 1])``; ``most`` is the most edges of a model.
    ``mask [P, N, N]``: ``mask[p, v, u] != 0`` iff ``u -> v``. Computed once per mask and
    version (a pruned mask is listed again), and kept while the mask lives.
    """
    base = mask if mask._base is None else mask._base
    view = (mask.data_ptr(), tuple(mask.shape), mask.stride())
    views = _edges_of(base)
    kept = views.get(view)
    if kept is not None and kept[0] == mask._version:
        return kept[1]
    p, n, _ = mask.shape
    at = (mask != 0).nonzero()  # (p, v, u), ordered
    counts = (mask != 0).sum(2).flatten()
    rowptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    rowptr = torch.cat([rowptr[:-1].view(p, n), rowptr[n::n].view(p, 1)], 1).contiguous()
    out = rowptr, at[:, 2].contiguous(), int((rowptr[:, n] - rowptr[:, 0]).max()) if p else 0
    views[view] = (mask._version, out)
    return out


_EDGES: dict[int, tuple[weakref.ref, dict]] = {}  # id(mask) -> (the mask, {view: (version, edges)})


def _edges_of(base: Tensor) -> dict:
    """The edge lists kept for the mask ``base`` (by view), dropped when it dies."""
    key = id(base)
    entry = _EDGES.get(key)
    if entry is None or entry[0]() is not base:
        entry = _EDGES[key] = (weakref.ref(base, lambda _, key=key: _EDGES.pop(key, None)), {})
    return entry[1]


def lanes(lengths: Tensor | None, t_steps: int, b: int, vec: int) -> tuple[Tensor, list[int]]:
    """Which lanes run at each step, ``live [T, Bp]`` (int32; Bp = B rounded up to ``vec``,
    the padding never), and how many vectors of lanes each step computes: up to its last
    running lane (every running one, when the lengths are sorted longest first)."""
    bp = -(-b // vec) * vec
    live = torch.zeros(t_steps, bp, dtype=torch.int32)
    live[:, :b] = 1 if lengths is None else (lengths[None, :] > torch.arange(t_steps)[:, None]).to(torch.int32)
    last = (live * torch.arange(1, bp + 1, dtype=torch.int32)).amax(1) if t_steps else live.new_zeros(0)
    return live, (-(-last // vec)).tolist()


def _present(sym: Tensor | None, live: Tensor, rows: int) -> Tensor:
    """Per step, the symbols some running lane has (bit r for symbol r; int32 ``[T]``): the
    backward sums the input table's gradient over those alone. All bits without a table."""
    if sym is None:
        return torch.full((len(live),), -1, dtype=torch.int32)
    has = torch.zeros(len(live), rows, dtype=torch.int32).scatter_add_(1, sym.long(), live) > 0
    return (has.to(torch.int32) << torch.arange(rows, dtype=torch.int32)).sum(1, dtype=torch.int32)


def _inputs(x: Tensor, w_ih_t: Tensor, bias_ih: Tensor, bp: int, vec: int) -> tuple[Tensor, Tensor | None,
                                                                                    Tensor | None]:
    """The input's gate pre-activations as the kernels read them, and what they are taken by.
    Inputs of fewer than ``vec`` columns are a table ``[P, G*N, vec]`` (its rows, then zeros):
    one-hot ones the columns of ``W_ih.T + b_ih`` and a last of ``b_ih`` (padding), picked per
    lane by the symbols ``[T, Bp]`` (int32); other narrow ones the columns of ``W_ih.T`` and a
    last of ``b_ih``, summed per lane weighted by the values ``[T, d + 1, Bp]`` (the last row
    1): computed in the kernels, where every step's projection would be a ``[P, G*N, T * Bp]``
    tensor (367 MB for 64 LSTMs over the adding problem's 50 steps at batch 128) and its
    gradient another. Wider inputs: every step's projection ``[P, G*N, T * Bp]``, then
    (None, None)."""
    b, t, d = x.shape
    if d >= vec:
        xs = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, bp - b)).permute(2, 1, 0).reshape(1, d, t * bp)
        return (torch.baddbmm(bias_ih.transpose(1, 2), w_ih_t.transpose(1, 2), xs.expand(len(w_ih_t), d, t * bp)),
                None, None)
    symbols = one_hot_symbols(x)
    if symbols is not None:
        table = symbol_table(w_ih_t, bias_ih).transpose(1, 2)  # [P, G*N, d + 1]
        sym = symbols.new_zeros(t, bp, dtype=torch.int32)
        sym[:, :b] = symbols.t()
        return torch.nn.functional.pad(table, (0, vec - d - 1)).contiguous(), sym, None
    table = torch.cat([w_ih_t, bias_ih], dim=1).transpose(1, 2)  # [P, G*N, d + 1]
    values = x.new_ones(t, d + 1, bp)
    values[:, :d] = torch.nn.functional.pad(x.permute(1, 2, 0), (0, bp - b))
    return torch.nn.functional.pad(table, (0, vec - d - 1)).contiguous(), None, values


def sequence_forward(kind: str, x: Tensor, w_ih_t: Tensor, bias_ih: Tensor, w_hh: Tensor, mask: Tensor,
                     bias_hh: Tensor, lengths: Tensor | None, states: bool = True,
                     sizes: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Every state of ``kind`` over the sequences ``x [B, T, d]``, from h0 = 0, and the last:
    ``([P, T, B, N], [P, B, N])`` (without ``states``, the first may be empty).

    The two are views of one buffer; each gets its own gradient, so neither costs a
    zero-filled ``[P, T, B, N]`` gradient when only the other is used.

    Parameters
    ----------
    w_ih_t : Tensor [P, d, G*N]; bias_ih : Tensor [P, 1, G*N]
        The masked input weights, transposed, and ``b_ih``.
    w_hh : Tensor [P, G*N, N]; mask : Tensor [P, N, N]
        The recurrent weights and their mask (``mask[p, v, u] != 0`` iff ``u -> v``), tiled per
        gate: only the graph's connections are computed, with the weights times the mask, and
        only they get a gradient (times the mask, as through the product ``w_hh * mask``); the
        weights are not masked first, a pass over ``[P, G*N, N]`` and another in the backward.
    bias_hh : Tensor [P, 1, G*N]
    lengths : Tensor [B], optional
        Real lengths: a sequence's state is held after its end, so the last state is every
        sequence's last real one.
    states : bool, default True
        Every state is read. Without, the lanes and padding units a step skips are not held
        step by step (the last state gets each one's value once, at the end), without a
        gradient to follow the kernels keep the last two steps' states alone, and the first
        result is empty.
    sizes : Tensor [P], optional
        Each model's own neurons, the first ``sizes[p]`` (default: all N). The rest are a
        narrower model's padding in a pack -- no connections, no input, not read out -- and
        are not computed: their states stay zero and their parameters get no gradient, as
        on the torch path (whose zero padding computes zeros).
    """
    family, sh, xin, w, b_hh = _prepared(kind, x, w_ih_t, bias_ih, w_hh, mask, bias_hh, lengths, states, sizes)
    return _Sequence.apply(family, sh, xin, w, b_hh)


def sequence_loss(kind: str, x: Tensor, w_ih_t: Tensor, bias_ih: Tensor, w_hh: Tensor, mask: Tensor,
                  bias_hh: Tensor, lengths: Tensor | None, readout_w: Tensor, b_out: Tensor, y: Tensor,
                  sizes: Tensor | None = None, objective: str = "classification") -> Tensor:
    """Every model's mean loss over the batch, ``[P]``, of the readout of its last state against
    ``y``: the loss of :func:`sequence_forward`'s last state read out by ``readout_w [P, O, N]``
    (the masked readout weights) and ``b_out [P, O]`` -- for a ``"classification"``, the
    cross-entropy against the classes ``y [B]`` as ``torch.nn.functional.cross_entropy``
    computes it; for a ``"regression"``, the squared error against ``y [B, O]``, averaged over
    the outputs too -- in one kernel call that runs each model's forward, loss and backward one
    after another while its rows are in cache (its gradients are kept for the backward, which
    scales them by each model's upstream gradient).

    Kept for the whole pack until its loss was known, the rows the backward reads (36 MB of
    states and 144 MB of saved rows for 64 GRUs at batch 128) went to memory and back; this
    way a training step of a pack of 64 (its losses and backward) takes 43% less time than
    the outputs scored at batch 128 and 33% less at 32 for the GRU (LSTM 52% / 42%, tanh RNN
    46% / 17%; AMD EPYC, one thread). The other arguments are :func:`sequence_forward`'s; for
    a training step (nothing else is returned).
    """
    y = _targets(y, objective, x.shape[0], readout_w.shape[1])
    family, sh, xin, w, b_hh = _prepared(kind, x, w_ih_t, bias_ih, w_hh, mask, bias_hh, lengths, False, sizes)
    return _SequenceLoss.apply(family, sh, xin, w, b_hh, readout_w.contiguous(), b_out.contiguous(), y)


def _targets(y: Tensor, objective: str, b: int, o: int) -> Tensor:
    """``y`` as the kernels read it (classes int64, a regression's float32, contiguous), or a
    ValueError naming what was expected."""
    if objective == "regression":
        if tuple(y.shape) != (b, o):
            raise ValueError(f"regression targets must be [{b}, {o}], got {list(y.shape)}")
        return y.to(torch.float32).contiguous()
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if tuple(y.shape) != (b,) or (b and not 0 <= int(y.min()) <= int(y.max()) < o):
        span = f" in [{int(y.min())}, {int(y.max())}]" if y.numel() else ""
        raise ValueError(f"classes must be {b} values in [0, {o}), got {list(y.shape)}{span}")
    return y.to(torch.int64).contiguous()


def _prepared(kind, x, w_ih_t, bias_ih, w_hh, mask, bias_hh, lengths, states, sizes):
    """The kernels' arguments for a sequence (see :func:`sequence_forward`): the cell's family,
    the sequence's sizes and index tensors (a namespace), the input's pre-activations, and
    ``w_hh`` and ``b_hh`` (None where the family adds it to the input's rows) contiguous."""
    family, vec = KINDS[kind], kernels.vector_floats()
    b, t_steps, _ = x.shape
    live, computed = lanes(None if lengths is None else lengths.cpu(), t_steps, b, vec)
    apart = family.recurrent_bias
    xin, sym, vals = _inputs(x, w_ih_t, bias_ih if apart else bias_ih + bias_hh, live.shape[1], vec)
    table = sym is not None or vals is not None  # the input's rows picked or weighted per lane
    rowptr, col, most = edges(mask)
    n, rows = mask.shape[1], x.shape[2] + 1  # rows: of the input table, one per symbol and padding's
    shape = SimpleNamespace(b=b, t=t_steps, bp=live.shape[1], n=n, rows=rows, live=live, mask=mask.contiguous(),
                            computed=torch.tensor(computed, dtype=torch.int64), sym=sym, vals=vals, table=table,
                            rowptr=rowptr, col=col, most=most,
                            slot=kernels.scratch_floats(most, family.gates, n, rows if table else 0),
                            grad=torch.is_grad_enabled(), states=states, present=_present(sym, live, rows),
                            sizes=torch.full((len(w_hh),), n) if sizes is None else sizes.to(torch.int64).contiguous())
    return family, shape, xin, w_hh.contiguous(), bias_hh.contiguous() if apart else None


class _Buffers:
    """A forward's buffers given back by its backward pass, for the next forward to take, by
    role (states, cell states, saved rows)."""

    def __init__(self) -> None:
        self.free: dict[str, list[Tensor]] = {}

    def take(self, role: str, count: int) -> Tensor:
        """A flat float32 buffer of at least ``count`` floats for ``role``: the smallest given
        back that is large enough, else a new one an eighth larger (sequences vary in length
        from batch to batch), the smaller ones dropped."""
        free = self.free.setdefault(role, [])
        fits = [i for i, t in enumerate(free) if t.numel() >= count]
        if fits:
            return free.pop(min(fits, key=lambda i: free[i].numel()))
        free.clear()
        return torch.empty(count + count // 8)

    def give(self, role: str, buffer: Tensor) -> None:
        self.free.setdefault(role, []).append(buffer)


_REUSED: contextvars.ContextVar[_Buffers | None] = contextvars.ContextVar("topowire_reused_buffers", default=None)


@contextlib.contextmanager
def reused_buffers():
    """Inside, the buffers of a sequence's forward that a backward will follow (its states and
    the rows it saves: the largest of a training step) go back to a pool once that backward
    has run, and the next forward reuses them: the same memory, warm, batch after batch.
    Freed and allocated anew instead, glibc's heap fragments and grows as the batches'
    lengths vary, and each growth faults its pages in (:mod:`~topowire.train.heap`). For a
    loop that runs each graph's backward once and reads its states no later (the trainer):
    a second backward of a graph (``retain_graph``), or its states read after another
    forward, would see what that forward wrote."""
    token = _REUSED.set(_Buffers())
    try:
        yield
    finally:
        _REUSED.reset(token)


def _forward_buffers(family: Family, shape: tuple[int, int, int, int], ring: int, saving: bool):
    """A forward's states h and c (``[P, ring, N, Bp]``, the first step zero; c for a cell
    with memory) and saved rows (``[P, T, saved * N, Bp]``, when ``saving``) for ``shape``
    ``(P, T, N, Bp)``, and -- while :func:`reused_buffers` and ``saving`` -- the pool they
    are taken from, with the flat buffers to give back to it."""
    p, t_steps, n, bp = shape
    pool = _REUSED.get() if saving else None
    wanted = {"h": (p, ring, n, bp), "c": (p, ring, n, bp) if family.memory else None,
              "saved": (p, t_steps, family.saved * n, bp) if family.saved and saving else None}
    out, flats = dict.fromkeys(wanted), {}
    for role, dims in ((r, d) for r, d in wanted.items() if d is not None):
        count = math.prod(dims)
        flats[role] = pool.take(role, count) if pool is not None else torch.empty(count)
        out[role] = flats[role][:count].view(dims)
        if role != "saved":
            out[role][:, 0] = 0  # the first state
    return out["h"], out["c"], out["saved"], (pool, flats) if pool is not None else None


def _sequence_args(sh, threads: int, xin: Tensor, w: Tensor, scratch: Tensor) -> tuple:
    """The arguments every kernel takes first (see ``SEQ_ARGS`` in kernels.c)."""
    ptr, p, gn = kernels.pointer, xin.shape[0], xin.shape[1]
    x_ps, x_cs, x_ts = (gn * xin.shape[2], xin.shape[2], 0) if sh.table else (gn * sh.t * sh.bp, sh.t * sh.bp, sh.bp)
    return (threads, p, sh.t, sh.n, sh.bp, ptr(sh.computed), sh.rows, ptr(sh.rowptr), ptr(sh.col), ptr(w),
            ptr(sh.mask), ptr(xin), x_ps, x_cs, x_ts, ptr(sh.sym), ptr(sh.vals), ptr(sh.live), ptr(sh.present),
            ptr(sh.sizes), ptr(scratch), sh.slot, sh.most)


def _give_back(ctx) -> None:
    """The forward's buffers back to their pool, if they came from one (once: its backward
    has run)."""
    if ctx.pool is not None:
        for role, flat in ctx.pool[1].items():
            ctx.pool[0].give(role, flat)
        ctx.pool = None


def _input_grad(xin: Tensor, sh) -> Tensor:
    """The buffer the kernels write the input's gradient to: a table's ``[P, G*N, VEC]``, whole,
    or every step's projection's, zero where a step computes nothing."""
    return xin.new_empty(*xin.shape[:2], kernels.vector_floats()) if sh.table else torch.zeros_like(xin)


def _streamed(h: Tensor, c: Tensor | None, backward: bool, sh) -> bool:
    """Whether a forward's steps compute in a working ring of their own and stream their states
    to ``h`` (and ``c``) for the backward (the kernels' ``working_ring``): where every step is
    kept for a ``backward``, not read as states, and the states outgrow the last-level cache
    (written in place, each line is first read from memory). One pack of 64 (AMD EPYC, 32 MiB
    L3): at batch 128 (36 MB of GRU states) the forward 18% faster and the backward 3% slower
    (it reads them from memory, not partly from the cache), the GRU's and the LSTM's calls 9%
    faster in all, the tanh RNN's the same; with 18 MB 1-4% faster, with 9 MB up to 4% slower."""
    size = h.numel() + (0 if c is None else c.numel())
    return backward and not sh.states and 4 * size > cache_bytes(3)


class _Sequence(torch.autograd.Function):
    """The kernel calls. ``s`` carries the sequence's arguments (the kernels split the models
    over torch's thread count), model strides (``hs`` states, ``ss`` saved, ``dxs`` the
    input's gradient) and addresses to the family's kernel call."""

    @staticmethod
    def forward(ctx, family, sh, xin, w, b_hh):
        ptr, p, n, bp, t_steps = kernels.pointer, xin.shape[0], sh.n, sh.bp, sh.t
        backward = sh.grad and any(ctx.needs_input_grad)  # else (evaluation) nothing is saved for one
        ring = t_steps + 1 if backward or sh.states else min(t_steps + 1, 2)  # every state, or the last two
        h, c, saved, ctx.pool = _forward_buffers(family, (p, t_steps, n, bp), ring, backward)
        threads = torch.get_num_threads()
        ctx.scratch = xin.new_empty(threads * sh.slot)  # each thread's, for the model it runs (model_scratch)
        s = SimpleNamespace(seq=_sequence_args(sh, threads, xin, w, ctx.scratch), bias=ptr(b_hh), h=ptr(h),
                            c=ptr(c), hs=ring * n * bp, ring=ring, every=int(sh.states),
                            streamed=int(_streamed(h, c, backward, sh)), saved=ptr(saved),
                            ss=t_steps * family.saved * n * bp)
        family.forward(kernels.library(), s)
        ctx.family, ctx.sh, ctx.s = family, sh, s  # its addresses: of tensors saved below
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(xin, w, h, c, saved)
        last = h[:, t_steps % ring, :, :sh.b].transpose(1, 2)
        return (h[:, 1:, :, :sh.b].transpose(2, 3) if sh.states else h.new_empty(0)), last  # held only when read

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_states, grad_last):
        ptr, family, sh = kernels.pointer, ctx.family, ctx.sh
        xin, w, h, c, saved = ctx.saved_tensors
        p, t1, n, bp = h.shape
        t_steps, b = t1 - 1, sh.b
        outside = None
        if grad_states is not None and t_steps:
            outside = h.new_zeros(p, t_steps, n, bp)
            outside[..., :b] = grad_states.transpose(2, 3)
        g = h.new_zeros(p, n, bp)  # the gradient reaching h_T; the kernel's ping-pong buffer with prev
        if outside is not None:
            g += outside[:, -1]
        if grad_last is not None:
            g[..., :b] += grad_last.transpose(1, 2)
        # written whole by the kernel: a table's gradient, the weights' (dense) and b_hh's; each step's
        # input gradient (dense inputs) only where a step computes
        dx = _input_grad(xin, sh)
        dw, db = torch.empty_like(w), h.new_empty(p, 1, family.gates * n) if family.recurrent_bias else None
        gc, gc_prev = (h.new_zeros(p, n, bp), h.new_empty(p, n, bp)) if family.memory else (None, None)
        prev, dg = h.new_empty(p, n, bp), h.new_empty(p, family.gates * n, bp)  # scratch
        s = SimpleNamespace(**vars(ctx.s), dx=ptr(dx), dxs=dx[0].numel(), dg=ptr(dg), db=ptr(db), dw=ptr(dw),
                            g=ptr(g), prev=ptr(prev), gc=ptr(gc), gc_prev=ptr(gc_prev),
                            outside=(ptr(outside), t_steps * n * bp))
        family.backward(kernels.library(), s)
        _give_back(ctx)
        return None, None, dx, dw, db


class _SequenceLoss(torch.autograd.Function):
    """A training step's kernel call (the family's ``train``): the models' losses, their gradients
    kept for the backward."""

    @staticmethod
    def forward(ctx, family, sh, xin, w, b_hh, wr, bo, y):
        ptr, p, n, bp, t_steps, o = kernels.pointer, xin.shape[0], sh.n, sh.bp, sh.t, wr.shape[1]
        threads = torch.get_num_threads()
        per = kernels.train_floats(t_steps, n, bp, family.gates, family.saved, family.memory, o)
        pool = _REUSED.get()
        work = pool.take("work", threads * per) if pool is not None else torch.empty(threads * per)
        scratch = xin.new_empty(threads * sh.slot)
        loss, dwr, dbo = xin.new_empty(p), torch.empty_like(wr), torch.empty_like(bo)
        dx, dw = _input_grad(xin, sh), torch.empty_like(w)
        db = torch.empty_like(b_hh) if family.recurrent_bias else None
        s = SimpleNamespace(seq=_sequence_args(sh, threads, xin, w, scratch), bias=ptr(b_hh),
                            head=(sh.b, o, int(y.is_floating_point()), ptr(y), ptr(wr), ptr(bo), ptr(work), per,
                                  ptr(loss), ptr(dwr), ptr(dbo)),
                            dx=ptr(dx), dxs=dx[0].numel(), db=ptr(db), dw=ptr(dw))
        family.train(kernels.library(), s)
        if pool is not None:
            pool.give("work", work)
        ctx.grads = dx, dw, db, dwr, dbo
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss):
        grads, ctx.grads = ctx.grads, None
        if not bool((grad_loss == 1).all()):  # the trainer's: every model's loss counts once
            grads = tuple(None if g is None else g * grad_loss.view(-1, *([1] * (g.dim() - 1))) for g in grads)
        return (None, None, *grads, None)
