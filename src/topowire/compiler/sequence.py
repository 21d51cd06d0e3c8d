"""Recurrent cells run over a whole sequence with their own backward pass.

The gate arithmetic of a step is one fused kernel (:mod:`~topowire.compiler.kernels`); the
products stay torch's GEMMs. Forward, per step: one recurrent product and one kernel, which
adds the GRU's ``b_hh`` (a product with a broadcast bias would first copy it into its whole
output) and the input's gate pre-activations -- rows of a table
(:func:`~topowire.compiler.functional.input_rows`: for one-hot inputs ``W_ih.T + b_ih`` itself,
indexed by the symbols), so no ``[P, T, B, G*N]`` input tensor is made -- writes the new
state into the sequence's state buffer and keeps what the backward needs. Backward, per
step: one kernel (the gates' gradients into a buffer of a few steps, and summed into the
table's rows) and one ``baddbmm_`` reading them while they are in cache, the gradient
reaching the previous state; the recurrent weights' gradient is accumulated from that
buffer, one product per :data:`WEIGHT_ROWS` rows of steps. (cuDNN and oneDNN keep every
step's gate gradients and make the weight gradient one product over all steps; on a CPU
writing them out and reading them back cost more than the product saves: measured on 26
GRUs of N = 52, B = 128, T = 20, the backward 1.4x faster this way.)

Buffers are model-major, ``[P, T, B, W]``: a step is a strided view that the GEMMs read in
place. A sequence
stops updating after its length: its state is held and its gates get no gradient, so the
last state is every sequence's last real one.

The torch path (:data:`~topowire.compiler.cells.CELLS` step by step under autograd) stays the
reference: the tests compare the two, values and gradients, for every cell this module runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import Tensor

from topowire.compiler import kernels
from topowire.compiler.functional import input_rows

__all__ = ["Family", "KINDS", "supports", "sequence_forward", "sequence_states"]


@dataclass(frozen=True)
class Family:
    """How one cell runs here: its kernels' calls on one step's arguments (``s``, a namespace
    of sizes and addresses, see :class:`_Sequence`).

    Attributes
    ----------
    saved : int
        Floats kept per unit and step for the backward pass (beside the states).
    memory : bool
        Carries a cell state c (the LSTM).
    recurrent_bias : bool
        ``b_hh`` is added to the recurrent product by the kernel, apart from the input's rows
        (the GRU, whose reset gate scales it); a summed cell's rows carry both biases instead.
    forward, backward : callable
        ``(lib, s) -> None``: the step's kernel call.
    """

    saved: int
    memory: bool
    recurrent_bias: bool
    forward: Callable
    backward: Callable


def _act(which: int) -> Family:
    return Family(0, False, False,
                  lambda lib, s: lib.act_forward(s.threads, s.p, s.b, s.n, s.t, s.lengths, which, s.x, s.xs, s.xr,
                                                 s.step, s.gs, s.h, s.h_next, s.hs),
                  lambda lib, s: lib.act_backward(s.threads, s.p, s.b, s.n, s.t, s.lengths, which, s.g, s.h_next,
                                                  s.hs, *s.outside, s.dgh, s.ts, s.dx, s.xs, s.xr, s.prev))


#: Rows (steps x batch) per product for the recurrent weights' gradient: one step's at a batch
#: of 128 or more, several steps' at smaller batches (a product over 32 rows spends its time
#: reading and writing the gradient rather than multiplying).
WEIGHT_ROWS = 128

#: The cells run here.
KINDS: dict[str, Family] = {
    "gru": Family(4, False, True,
                  lambda lib, s: lib.gru_forward(s.threads, s.p, s.b, s.n, s.t, s.lengths, s.x, s.xs, s.xr, s.step,
                                                 s.gs, s.bias, s.h, s.h_next, s.hs, s.saved, s.ss),
                  lambda lib, s: lib.gru_backward(s.threads, s.p, s.b, s.n, s.t, s.lengths, s.g, s.saved, s.ss, s.h,
                                                  s.hs, *s.outside, s.dx, s.xs, s.xr, s.dgh, s.ts, s.db, s.prev)),
    "lstm": Family(5, True, False,
                   lambda lib, s: lib.lstm_forward(s.threads, s.p, s.b, s.n, s.t, s.lengths, s.x, s.xs, s.xr, s.step,
                                                   s.gs, s.h, s.h_next, s.c, s.c_next, s.hs, s.saved, s.ss),
                   lambda lib, s: lib.lstm_backward(s.threads, s.p, s.b, s.n, s.t, s.lengths, s.g, s.gc, s.saved,
                                                    s.ss, s.c, s.hs, *s.outside, s.dgh, s.ts, s.dx, s.xs, s.xr,
                                                    s.prev, s.gc_prev)),
    "rnn-tanh": _act(0),
    "rnn-relu": _act(1),
}


def supports(kind: str, x: Tensor) -> bool:
    """Whether ``kind`` runs here for inputs ``x``: one of :data:`KINDS`, float32 on the CPU,
    with the kernels built and not switched off (:func:`~topowire.compiler.kernels.enabled`)."""
    return kind in KINDS and x.device.type == "cpu" and x.dtype == torch.float32 and kernels.enabled()


def sequence_forward(kind: str, x: Tensor, w_ih_t: Tensor, bias_ih: Tensor, w_hh_t: Tensor, bias_hh: Tensor,
                     lengths: Tensor | None) -> tuple[Tensor, Tensor]:
    """:func:`sequence_states` of ``kind`` for inputs ``x [B, T, d]``, from the masked, transposed
    weights ``w_ih_t [P, d, G*N]`` and ``w_hh_t [P, N, G*N]`` and the biases ``[P, 1, G*N]``: a
    summed cell's input rows carry both biases, the GRU's ``b_ih`` alone."""
    apart = KINDS[kind].recurrent_bias
    table, rows = input_rows(x, w_ih_t, bias_ih if apart else bias_ih + bias_hh)
    return sequence_states(kind, table, rows, w_hh_t, bias_hh if apart else None, lengths)


def running_rows(lengths: Tensor | None, t_steps: int, b: int) -> list[int]:
    """How many rows of the batch each step's products compute: the sequences still running,
    where they are a prefix of the batch (lengths sorted longest first, as the trainer's
    batches are); every row otherwise (a held row's state is then copied by the kernel and
    its product wasted)."""
    if lengths is None or b < 2 or not bool((lengths[:-1] >= lengths[1:]).all()):
        return [b] * t_steps
    return (lengths[None, :] > torch.arange(t_steps)[:, None]).sum(1).tolist()


def sequence_states(kind: str, table: Tensor, rows: Tensor, w_t: Tensor, b_hh: Tensor | None,
                    lengths: Tensor | None) -> tuple[Tensor, Tensor]:
    """Every state of ``kind`` over a sequence, from h0 = 0, and the last: ``([P, T, B, N], [P, B, N])``.

    The two are views of one buffer (time-major: ``states[:, t]`` is one block of B rows);
    each gets its own gradient, so neither costs a zero-filled ``[P, T, B, N]`` gradient
    when only the other is used.

    Parameters
    ----------
    table : Tensor [P, R, G*N]; rows : Tensor [T, B] (int64)
        The input's gate pre-activations: row ``rows[t, b]`` of the table at step t of
        sequence b (:func:`~topowire.compiler.functional.input_rows`), with ``b_ih`` (a summed
        cell: with ``b_hh`` too).
    w_t : Tensor [P, N, G*N]
        The masked recurrent weights, transposed.
    b_hh : Tensor [P, 1, G*N], optional
        The GRU's recurrent bias (None for a summed cell).
    lengths : Tensor [B], optional
        Real lengths: a sequence's state is held after its end, so the last state is every
        sequence's last real one.
    """
    if not 0 <= int(rows.min()) <= int(rows.max()) < table.shape[1]:
        raise IndexError(f"input rows must lie in [0, {table.shape[1]}), got [{int(rows.min())}, {int(rows.max())}]")
    lengths = None if lengths is None else lengths.to(torch.int64).contiguous()
    b_hh = None if b_hh is None else b_hh.contiguous()
    return _Sequence.apply(KINDS[kind], table.contiguous(), rows.to(torch.int64).contiguous(), w_t, b_hh, lengths)


class _Sequence(torch.autograd.Function):
    """The time loops. Every buffer is model-major; ``s`` carries torch's thread count (the
    kernels split the models over it), a step's sizes, model strides
    (``hs`` states, ``xs`` table, ``ss`` saved, ``ts`` the step's gate gradients, ``gs`` the
    step's product) and addresses to the family's kernel call."""

    @staticmethod
    def forward(ctx, family, table, rows, w_t, b_hh, lengths):
        lib, ptr = kernels.library(), kernels.pointer
        p, t_steps, b, n, gn = table.shape[0], rows.shape[0], rows.shape[1], w_t.shape[1], w_t.shape[2]
        h = table.new_empty(p, t_steps + 1, b, n)
        h[:, 0] = 0
        c = table.new_zeros(p, t_steps + 1, b, n) if family.memory else None
        width = family.saved * n
        saved = table.new_empty(p, t_steps, b, width) if width else None
        running, buffer = running_rows(lengths, t_steps, b), table.new_empty(p * b * gn)
        s = SimpleNamespace(threads=torch.get_num_threads(), p=p, b=b, n=n, lengths=ptr(lengths), x=ptr(table),
                            xs=table.shape[1] * gn, hs=(t_steps + 1) * b * n, ss=t_steps * b * width,
                            bias=ptr(b_hh))
        for t, m in enumerate(running):
            step = buffer[:p * m * gn].view(p, m, gn)  # the rows still running: the others are held
            torch.bmm(h[:, t, :m], w_t, out=step)
            s.step, s.gs = ptr(step), m * gn
            s.t, s.xr, s.saved = t, ptr(rows, t * b), ptr(saved, t * b * width)
            s.h, s.h_next, s.c, s.c_next = (ptr(v, u * b * n) for v in (h, c) for u in (t, t + 1))
            family.forward(lib, s)
        ctx.family, ctx.table_rows, ctx.running = family, table.shape[1], running
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(rows, w_t, h, c, saved, lengths)
        return h[:, 1:], h[:, t_steps]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_states, grad_last):
        lib, ptr, family = kernels.library(), kernels.pointer, ctx.family
        rows, w_t, h, c, saved, lengths = ctx.saved_tensors
        p, t1, b, n = h.shape
        t_steps, gn = t1 - 1, w_t.shape[2]
        width = family.saved * n
        grad_states = None if grad_states is None or not t_steps else grad_states.contiguous()
        g = h.new_zeros(p, b, n)  # the gradient reaching h_{t+1}, from the last step back
        for outside in (None if grad_states is None else grad_states[:, -1], grad_last):
            if outside is not None:
                g += outside
        prev = h.new_empty(p, b, n)
        dx = h.new_zeros(p, ctx.table_rows, gn)
        k = max(1, min(t_steps, -(-WEIGHT_ROWS // b)))  # steps per product for W_hh's gradient
        dgh = h.new_empty(p, k, b, gn)  # the recurrent product's output gradient, k steps
        grad_w = h.new_zeros(p, n, gn) if ctx.needs_input_grad[3] else None
        db = h.new_zeros(p, 1, gn) if family.recurrent_bias else None  # b_hh's gradient
        gc, gc_prev = (h.new_zeros(p, b, n), h.new_empty(p, b, n)) if family.memory else (None, None)
        w = w_t.transpose(1, 2).contiguous()  # a transposed view slows every step's product
        s = SimpleNamespace(threads=torch.get_num_threads(), p=p, b=b, n=n, lengths=ptr(lengths), dx=ptr(dx),
                            xs=ctx.table_rows * gn, db=ptr(db), hs=t1 * b * n, ss=t_steps * b * width,
                            ts=k * b * gn)
        for t in reversed(range(t_steps)):
            slot, m = t % k, ctx.running[t]  # steps [t - slot, + k) share one weight-gradient product
            s.t, s.xr, s.saved, s.dgh = t, ptr(rows, t * b), ptr(saved, t * b * width), ptr(dgh, slot * b * gn)
            s.outside = (ptr(grad_states, (t - 1) * b * n), t_steps * b * n) if grad_states is not None and t \
                else (None, 0)  # reaching h_t from outside; h0's is never used
            s.h, s.h_next, s.c = ptr(h, t * b * n), ptr(h, (t + 1) * b * n), ptr(c, t * b * n)
            s.g, s.prev, s.gc, s.gc_prev = ptr(g), ptr(prev), ptr(gc), ptr(gc_prev)
            family.backward(lib, s)
            if t and m:  # h0 is a constant: nothing reaches it; a held row's gates get no gradient
                prev[:, :m].baddbmm_(dgh[:, slot, :m], w)
            if grad_w is not None and slot == 0 and m:
                span = min(k, t_steps - t)
                r = m if span == 1 else b  # one step: its running rows; a window: every row (held ones add 0)
                grad_w.baddbmm_(h[:, t:t + span, :r].reshape(p, span * r, n).transpose(1, 2),
                                dgh[:, :span, :r].reshape(p, span * r, gn))
            g, prev, gc, gc_prev = prev, g, gc_prev, gc
        return None, dx, None, grad_w, db, None
