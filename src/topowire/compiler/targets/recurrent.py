"""The masked recurrent cells: ``rnn-tanh``, ``rnn-relu``, ``lstm``, ``gru`` and ``wcrnn``.

N hidden neurons; ``W_hh`` is masked by the wiring (``mask[v, u] = 1`` iff ``u -> v``), tiled
per gate as whole blocks; the input projection reaches the input neurons and the readout
reads the output neurons. Torch's cell equations (:data:`~topowire.compiler.cells.CELLS`):
with a full mask and copied weights a cell reproduces ``torch.nn.RNN`` / ``LSTM`` / ``GRU``.

``wcrnn`` is the weakly coupled residual cell of arXiv 2307.14823,
``h <- R h + gamma tanh(W_ih x + b_ih + (W_hh*M) h + b_hh)``, with R fixed: homogeneous
``r I``, rotational ``r [[cos phi, -sin phi], [sin phi, cos phi]]`` on neuron pairs, or
heterogeneous ``r_i``. R is held as two vectors, its diagonal and its pair coupling
(``R[v, v] = diag[v]``, ``R[v, v ^ 1] = pair[v]``), the buffers ``res_diag`` and
``res_pair`` of a model (``[N]``) or a pack (``[P, N_max]``, zero on padding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from topowire import checks
from topowire.compiler import sequence
from topowire.compiler.cells import CELLS
from topowire.compiler.functional import (
    fused_program,
    graph_step,
    input_mask,
    input_projection,
    masked_recurrent_weights,
    over_sub_packs,
    readout,
    readout_all_steps,
    readout_weights,
    reads_are_free,
    sub_pack_size,
)
from topowire.compiler.modules import CompiledNet, stacked, wiring_masks
from topowire.compiler.targets.base import NoOptions, Target, register_target
from topowire.errors import ParameterError

__all__ = ["MaskedRecurrentNet", "ResidualOptions", "RESIDUALS", "recurrent_forward", "recurrent_loss",
           "residual_vectors", "residual_matrix", "CellTarget"]

#: Residual matrices of the ``wcrnn`` cell.
RESIDUALS = ("homogeneous", "rotational", "heterogeneous")
checks.declare("residual", checks.Domain("choice", choices=RESIDUALS))


@dataclass(frozen=True)
class ResidualOptions:
    """The options of ``wcrnn`` (arXiv 2307.14823).

    Parameters
    ----------
    residual : {"homogeneous", "rotational", "heterogeneous"}
        The fixed residual matrix R of ``h <- R h + gamma tanh(W h + U x + b)``: ``r I``;
        2 x 2 rotation blocks of radius ``r`` and angle ``phi`` on neuron pairs (2i, 2i+1);
        or a diagonal of ``r_i`` drawn uniformly from ``[r - r_spread, r + r_spread]`` with
        the model's seed.
    r : float
        The radius r of R.
    phi : float
        The rotation angle of R (radians).
    gamma : float
        The coupling strength.
    r_spread : float
        The spread of the heterogeneous ``r_i``.
    """

    residual: str = "homogeneous"
    r: float = 0.9
    phi: float = 0.0
    gamma: float = 0.1
    r_spread: float = 0.0

    def __post_init__(self) -> None:
        from topowire import checks

        checks.validate(self)
        if self.r_spread > abs(self.r):
            raise ParameterError(f"r_spread must be in [0, |r|] = [0, {abs(self.r)}], got {self.r_spread!r}")


def residual_vectors(n: int, arch, seed: int) -> tuple[Tensor, Tensor]:
    """The fixed residual matrix R of one model as (diagonal, pair coupling), [N] each.

    An odd last neuron of a rotational R gets ``r``. Heterogeneous radii
    ``r_i ~ U(r - r_spread, r + r_spread)`` are drawn from
    ``numpy.random.default_rng([seed, 0x7E5])``, a stream apart from the parameters'.
    """
    diag = torch.full((n,), float(arch.r))
    pair = torch.zeros(n)
    if arch.residual == "rotational":
        paired = n - n % 2
        diag[:paired] = arch.r * math.cos(arch.phi)
        sin = arch.r * math.sin(arch.phi)
        pair[0:paired:2] = -sin  # row 2i reads neuron 2i+1 with -r sin(phi)
        pair[1:paired:2] = sin
    elif arch.residual == "heterogeneous":
        rng = np.random.default_rng([int(seed), 0x7E5])
        diag = torch.from_numpy(rng.uniform(arch.r - arch.r_spread, arch.r + arch.r_spread, n).astype(np.float32))
    return diag, pair


def residual_matrix(n: int, arch, seed: int) -> Tensor:
    """R as a dense ``[N, N]`` matrix (for analysis; the forward pass uses the vectors)."""
    diag, pair = residual_vectors(n, arch, seed)
    r = torch.diag(diag)
    idx = torch.arange(n - n % 2)
    r[idx, idx ^ 1] = pair[idx]
    return r


def _uniform(gen: torch.Generator, shape: tuple[int, ...], bound: Tensor | float) -> Tensor:
    return (torch.rand(shape, generator=gen, dtype=torch.float32) * 2 - 1) * bound


def first_masked_step(lengths: Tensor | None, t_steps: int) -> int:
    """The first time step whose update must be masked (a sequence may have ended): the
    shortest length when ``lengths`` is on the host; 0 on an accelerator, where reading it
    would stall the device (masking a step where every sequence is real changes nothing)."""
    if lengths is None:
        return t_steps
    return int(lengths.min()) if reads_are_free(lengths.device) else 0


def _held(alive: Tensor, new: tuple, old: tuple) -> tuple:
    """The new states (h, c) where a sequence is ``alive`` ([B]), the old ones after its end."""
    mask = alive.view(1, -1, 1)
    return tuple(None if n is None else torch.where(mask, n, o) for n, o in zip(new, old))


def _on_kernels(kind: str, x: Tensor, graph_op) -> bool:
    """Whether ``kind`` runs on the sequence kernels for inputs ``x``: a dense graph, no fused
    steps asked for, and a cell and device they cover (:func:`~topowire.compiler.sequence.supports`)."""
    return graph_op is None and fused_program() is None and sequence.supports(kind, x)


def recurrent_forward(
    kind: str, x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
    mask: Tensor, in_mask: Tensor, r: Tensor, out_mask: Tensor, b_out: Tensor,
    lengths: Tensor | None = None, return_states: bool = False, graph_op=None,
    residual: tuple[Tensor, Tensor] | None = None, gamma: float = 1.0, ih_mask: Tensor | None = None,
    sizes: Tensor | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Masked recurrent cells over a shared sequence batch, read out at the last real step.

    On the CPU (float32, dense weights) the GRU, LSTM, tanh and ReLU cells run over the whole
    sequence with fused gate kernels and their own backward
    (:mod:`~topowire.compiler.sequence`); every other case steps through
    :data:`~topowire.compiler.cells.CELLS` under autograd, the reference the kernels are tested
    against (the two agree to float rounding).

    Parameters
    ----------
    kind : {"rnn-tanh", "rnn-relu", "lstm", "gru", "wcrnn"}
        The cell (:data:`~topowire.compiler.cells.CELLS`).
    x : Tensor [B, T, d_in]
        Input sequences, shared by all P models (padded after each length).
    w_ih : Tensor [P, G*N, d_in]; w_hh : Tensor [P, G*N, N]; b_ih, b_hh : Tensor [P, G*N]
        Gate-stacked weights and biases.
    mask : Tensor [P, N, N]; in_mask : Tensor [P, N]
        Recurrent mask (``mask[p, v, u] = 1`` iff ``u -> v``) and the input neurons.
    r : Tensor [P, O, N]; out_mask : Tensor [P, N]; b_out : Tensor [P, O]
        Readout from the output neurons.
    lengths : Tensor [B], optional
        Real length of every sequence; the state stops updating after it, so the readout
        sees the last real step, never a padding step.
    return_states : bool, default False
        Also return every hidden state, ``[P, B, T, N]``.
    graph_op : callable, optional
        For a single model on a sparse backend: ``h [B, N] -> h @ W_hh.T`` (``w_hh`` and
        ``mask`` are then ignored).
    residual : (Tensor [P, N], Tensor [P, N]), optional
        ``wcrnn`` only: R as its diagonal and pair coupling.
    gamma : float, default 1.0
        ``wcrnn`` only: the coupling strength.
    ih_mask : Tensor [P, N, d_in], optional
        Per-connection input mask (pruning), multiplied with ``in_mask``.
    sizes : Tensor [P], optional
        Each model's own neurons in a pack (the rest padding), which the kernels skip.

    Returns
    -------
    Tensor [P, B, O] (and the states when asked)
    """
    d_in = w_ih.shape[2]
    w_ih_t = masked_recurrent_weights(w_ih, input_mask(in_mask, ih_mask, d_in)).transpose(1, 2)  # [P, d_in, G*N]
    bias_ih, bias_hh = b_ih[:, None, :], b_hh[:, None, :]
    if _on_kernels(kind, x, graph_op):
        states, h = sequence.sequence_forward(kind, x, w_ih_t, bias_ih, w_hh, mask, bias_hh, lengths, return_states,
                                              sizes)  # [P, T, B, N], [P, B, N]; w_hh masked inside
        states = states.transpose(1, 2) if return_states else None
    else:
        residual = None if residual is None else tuple(v[:, None, :] for v in residual)  # [P, 1, N]
        h, states = _by_steps(kind, x, w_ih_t, bias_ih, w_hh, bias_hh, mask, lengths, return_states, graph_op,
                              residual, gamma)
    out = readout(h, r, out_mask, b_out)
    return (out, states) if return_states else out


def _by_steps(kind, x, w_ih_t, bias_ih, w_hh, bias_hh, mask, lengths, return_states, graph_op, residual, gamma):
    """The reference path: :data:`~topowire.compiler.cells.CELLS` step by step under autograd (any
    cell, backend and device). Returns the last state ``[P, B, N]`` (each sequence's last real
    one) and, when asked, every state ``[P, B, T, N]``."""
    cell = CELLS[kind]
    p, n = w_ih_t.shape[0], w_ih_t.shape[2] // cell.gates
    b, t_steps, _ = x.shape
    step = graph_step(w_hh, mask, graph_op, cell.gates)  # masked, transposed weights hoisted (eager steps)
    h = x.new_zeros(p, b, n)
    c = x.new_zeros(p, b, n) if cell.memory else None
    states = []
    first_mask = first_masked_step(lengths, t_steps)
    fused = fused_program() if graph_op is None else None
    w_hh_t = masked_recurrent_weights(w_hh, mask).transpose(1, 2) if fused is not None else None
    summed = cell.summed  # a cell of gx + gh alone: gx (with both biases) added inside the recurrent product
    project = input_projection(x, w_ih_t, bias_ih + bias_hh if summed else bias_ih) if fused is None else None
    # read out at the last step only: from the first step a sequence may end at, every state is kept and
    # each sequence's own is picked at the end; every state asked for: an ended sequence's state is held
    tail = [] if lengths is not None and not return_states else None
    for t in range(t_steps):
        if tail is not None and t == first_mask:
            tail.append(h)
        if fused is not None:
            h_new, c_new = fused(kind, x[:, t], h, c, bias_ih, w_ih_t, bias_hh, w_hh_t, residual, gamma)
        elif summed is not None:
            h_new, c_new = summed(step(project(t), h), h, c, residual, gamma)
        else:
            h_new, c_new = cell.step(project(t), step(bias_hh, h), h, c, residual, gamma)
        h, c = (h_new, c_new) if tail is not None or t < first_mask else _held(t < lengths, (h_new, c_new), (h, c))
        if return_states or tail:  # tail holds states from the first step a sequence may end at
            (states if return_states else tail).append(h)
    if tail:
        h = torch.stack(tail).gather(0, (lengths - first_mask).view(1, 1, b, 1).expand(1, p, b, n))[0]
    return h, (torch.stack(states, dim=2) if return_states else None)


class MaskedRecurrentNet(CompiledNet):
    """A recurrent net (``rnn-tanh``, ``rnn-relu``, ``lstm``, ``gru``, ``wcrnn``) whose
    hidden-to-hidden connectivity is the wiring: torch's cell equations with ``W_hh`` masked
    per gate, or the weakly coupled residual cell ``h <- R h + gamma tanh(W h + U x + b)``
    with R fixed (buffers ``res_diag``, ``res_pair``).

    ``forward(x [B, T, d_in], lengths=None) -> [B, d_out]`` reads the output neurons at the
    last real step of every sequence.
    """

    def hidden_states(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Every hidden state, ``[B, T, N]``."""
        return _run(self, x, lengths, True)[1][0]


def _residual_args(module: nn.Module) -> dict:
    if not hasattr(module, "res_diag"):
        return {}
    return {"residual": (stacked(module, "res_diag"), stacked(module, "res_pair")), "gamma": module.arch.gamma}


def _sizes(module: nn.Module) -> Tensor | None:
    """A pack's models' own neurons (``[P]``), None for a standalone module (all its own)."""
    sizes = getattr(module, "sizes", None) if getattr(module, "stacked", False) else None
    return None if sizes is None else torch.as_tensor(sizes, dtype=torch.int64)


def _per_model(module: nn.Module) -> tuple[dict, dict, dict]:
    """The module's graph arguments, wcrnn's residual ones, and its tensors by the names
    :func:`recurrent_forward` takes them (``[P, ...]`` each)."""
    g = module.graph_args("w_hh")
    extra = _residual_args(module)
    per_model = {"w_ih": stacked(module, "w_ih"), "w_hh": g["w"], "b_ih": stacked(module, "b_ih"),
                 "b_hh": stacked(module, "b_hh"), "mask": g["mask"], "in_mask": stacked(module, "in_mask"),
                 "r": stacked(module, "readout"), "out_mask": stacked(module, "out_mask"),
                 "b_out": stacked(module, "readout_bias"), "residual": extra.get("residual"),
                 "ih_mask": stacked(module, "ih_mask"), "sizes": _sizes(module)}
    return g, extra, per_model


def _run(module: nn.Module, x: Tensor, lengths: Tensor | None, states: bool):
    """The module's recurrent forward; a pack's over sub-packs
    (:func:`~topowire.compiler.functional.sub_pack_size`: sized to the cache on the torch path,
    the whole pack on the sequence kernels unless a size is set)."""
    g, extra, per_model = _per_model(module)

    def run(**tensors):
        return recurrent_forward(module.arch.kind, x, **tensors, lengths=lengths, return_states=states,
                                 graph_op=g["graph_op"], gamma=extra.get("gamma", 1.0))

    p, gn = per_model["w_ih"].shape[:2]
    size = p if g["graph_op"] is not None else sub_pack_size(
        p, x.shape[0], gn, x.device, by_cache=not _on_kernels(module.arch.kind, x, g["graph_op"]))
    return over_sub_packs(run, per_model, size)


def recurrent_loss(kind: str, x: Tensor, y: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
                   mask: Tensor, in_mask: Tensor, r: Tensor, out_mask: Tensor, b_out: Tensor,
                   lengths: Tensor | None = None, ih_mask: Tensor | None = None, sizes: Tensor | None = None,
                   objective: str = "classification", **_) -> Tensor:
    """Every model's mean loss against ``y`` of :func:`recurrent_forward`'s outputs, ``[P]`` (a
    classification's cross-entropy, a regression's squared error), on the sequence kernels'
    training step (:func:`~topowire.compiler.sequence.sequence_loss`); the arguments are
    :func:`recurrent_forward`'s (a cell the kernels run)."""
    w_ih_t = masked_recurrent_weights(w_ih, input_mask(in_mask, ih_mask, w_ih.shape[2])).transpose(1, 2)
    return sequence.sequence_loss(kind, x, w_ih_t, b_ih[:, None, :], w_hh, mask, b_hh[:, None, :], lengths,
                                  readout_weights(r, out_mask), b_out, y, sizes, objective)


class CellTarget(Target):
    """The masked recurrent cells (see the module docstring)."""

    kinds = ("rnn-tanh", "rnn-relu", "lstm", "gru", "wcrnn")
    doc = "a masked recurrent cell over all neurons"
    natural_wiring = ("both", "all", "all")
    over_time = True
    masked_recurrence = True
    layout = {"w_ih": "gates", "w_hh": "gates+cols", "b_ih": "gates", "b_hh": "gates",
              "readout": "cols", "readout_bias": "none"}

    def options(self, kind: str) -> type:
        return ResidualOptions if CELLS[kind].residual else NoOptions

    def gates(self, arch) -> int:
        return CELLS[arch.kind].gates

    def initial_tensors(self, wiring, arch, seed, backend="dense"):
        """torch's RNN/LSTM/GRU convention: every weight and bias ~ U(-1/sqrt(N), 1/sqrt(N));
        the readout is nn.Linear's U(-1/sqrt(n_outputs), ...). Drawn from
        ``torch.Generator().manual_seed(seed)`` in a fixed order. With a sparse ``backend``
        the graph weights are drawn per edge (``graph.values``, CSR order): the same seed
        then gives a different draw than the dense backend."""
        m = wiring_masks(wiring, dense=backend == "dense")
        n, d_in, d_out, g = wiring.n_neurons, arch.d_in, arch.d_out, self.gates(arch)
        gen = torch.Generator().manual_seed(int(seed))
        k = 1.0 / math.sqrt(n)
        out: dict[str, Tensor] = {}
        w_ih = _uniform(gen, (g * n, d_in), k)
        if backend == "dense":
            w_hh = _uniform(gen, (g * n, n), k)
            out["w_hh"] = masked_recurrent_weights(w_hh[None], m["mask"][None])[0]
        else:
            out["graph.values"] = _uniform(gen, (g * wiring.n_edges,), k)
        out["b_ih"] = _uniform(gen, (g * n,), k)
        out["b_hh"] = _uniform(gen, (g * n,), k)
        out["w_ih"] = masked_recurrent_weights(w_ih[None], m["in_mask"][None, :, None].expand(1, n, d_in))[0]
        ko = 1.0 / math.sqrt(len(wiring.outputs))
        out["readout"] = _uniform(gen, (d_out, n), ko) * m["out_mask"][None, :]
        out["readout_bias"] = _uniform(gen, (d_out,), ko)
        return out

    def buffers(self, wirings, arch, seeds, n_max):
        """``ih_mask`` (per-connection input mask, all ones until pruned) and, for wcrnn,
        R as ``res_diag`` and ``res_pair``."""
        out = {"ih_mask": torch.ones(wirings[0].n_neurons, arch.d_in) if n_max is None
               else torch.ones(len(wirings), n_max, arch.d_in)}
        if CELLS[arch.kind].residual:
            vectors = [residual_vectors(w.n_neurons, arch, s) for w, s in zip(wirings, seeds)]
            if n_max is None:
                out["res_diag"], out["res_pair"] = vectors[0]
            else:
                diag, pair = torch.zeros(len(vectors), n_max), torch.zeros(len(vectors), n_max)
                for p, (d, q) in enumerate(vectors):
                    diag[p, :len(d)], pair[p, :len(q)] = d, q
                out["res_diag"], out["res_pair"] = diag, pair
        return out

    def forward(self, module, x, lengths=None, all_steps=False):
        if not all_steps:
            return _run(module, x, lengths, False)
        states = _run(module, x, lengths, True)[1]
        return readout_all_steps(states, stacked(module, "readout"), stacked(module, "out_mask"),
                                 stacked(module, "readout_bias"))

    def losses(self, module, x, lengths, y, objective):
        """On the sequence kernels, a classification's cross-entropy or a regression's squared
        error in their training step (:func:`recurrent_loss`), a pack over its sub-packs; None
        otherwise."""
        if objective not in sequence.OBJECTIVES or not torch.is_grad_enabled():
            return None
        g, _, per_model = _per_model(module)
        if not _on_kernels(module.arch.kind, x, g["graph_op"]):
            return None
        size = sub_pack_size(len(per_model["w_ih"]), x.shape[0], per_model["w_ih"].shape[1], x.device, by_cache=False)
        return over_sub_packs(lambda **t: recurrent_loss(module.arch.kind, x, y, **t, lengths=lengths,
                                                         objective=objective), per_model, size)

    def parameter_counts(self, wiring, arch, seed=0):
        g = self.gates(arch)
        graph = g * wiring.n_edges
        interface = g * len(wiring.inputs) * arch.d_in + len(wiring.outputs) * arch.d_out
        bias = 2 * g * wiring.n_neurons + arch.d_out
        return {"graph": int(graph), "interface": int(interface), "bias": int(bias),
                "total": int(graph + interface + bias)}

    def build(self, wiring, arch, seed):
        return MaskedRecurrentNet(wiring, arch, seed)

    def export_layers(self, module):
        in_mask = input_mask(module.in_mask[None], module.ih_mask[None], module.arch.d_in)
        w_ih = masked_recurrent_weights(module.w_ih[None], in_mask)[0]
        extra = _residual_args(module)
        residual = None if not extra else tuple(v[0] for v in extra["residual"])
        return (module.arch.kind, [(w_ih.t(), module.b_ih, module.effective_weight().t(), module.b_hh)], residual,
                float(extra.get("gamma", 1.0)), module.readout * module.out_mask[None], module.readout_bias,
                module.arch.d_in)


register_target(CellTarget())
