"""The layered recurrent form of arXiv 2407.20601 (random-structure RNNs).

The DAG wiring is cut into longest-path layers; layer l is a recurrent cell of width
|l|. At every time step the layers run in order: layer 0 (the sources) reads the data,
and layer l >= 1 reads the *current* states of all earlier layers through the graph's
edges (skip edges included). Inside a layer, hidden-to-hidden is ``dense`` (as the
thesis) or ``none``.

Ordering neurons by layer makes "all earlier layers" a prefix of the state vector, so
layer l's input is ``H[:, :offset_l]`` under the mask of edges into layer l.

Input width. ``input_width="fixed"`` (the corrected default) projects the d_in-wide data
onto the sources with trainable weights, so the data width never depends on the graph.
``input_width="sources"`` reproduces our reading of the thesis: the network's input width
*is* the number of sources, and the data are zero-padded or truncated to it (a graph
with fewer sources than symbols cannot see every symbol) -- a confound between the
number of sources and accuracy that this option lets one study. The thesis text was not
available to check this against; treat the preset as a hypothesis about its set-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from topowire.compiler.arch import Arch
from topowire.compiler.cells import CELLS
from topowire.compiler.functional import masked_recurrent_weights
from topowire.compiler.modules import stacked
from topowire.compiler.targets.base import Target, register_target
from topowire.compiler.wiring import Wiring
from topowire.errors import ParameterError

__all__ = ["LayeredRecurrentNet", "PackedLayered", "LayeredOptions", "layered_forward", "masked_layers",
           "LayeredTarget"]


@dataclass(frozen=True)
class LayeredOptions:
    """The options of the layered form.

    Parameters
    ----------
    cell : str
        The cell of every layer: a registered cell (plug-ins included) that needs no
        residual (:func:`~topowire.compiler.cells.layer_cells`).
    recurrence : {"dense", "none"}
        Hidden-to-hidden inside a layer.
    input_width : {"fixed", "sources"}
        A d_in-wide trainable projection onto the sources (corrected), or the thesis's input
        width = number of sources (see :mod:`topowire.compiler.targets.layered`).
    """

    cell: str = "gru"
    recurrence: str = "dense"
    input_width: str = "fixed"

    def __post_init__(self) -> None:
        from topowire import checks

        checks.validate(self)


def layered_forward(kind: str, x: Tensor, layers, readout: Tensor, readout_bias: Tensor,
                    lengths: Tensor | None = None) -> Tensor:
    """The layered form over a leading model axis P (one model: P = 1).

    Parameters
    ----------
    kind : str
        The cell of every layer.
    x : Tensor [B, T, d0]
        Inputs, shared by all models.
    layers : list of (w_ih_t, b_ih, w_hh_t, b_hh)
        Per layer: masked, transposed input weights ``[P, in_l, G*S_l]`` (``in_0 = d0``,
        ``in_l`` = the width of all earlier layers), biases ``[P, G*S_l]`` and masked,
        transposed recurrent weights ``[P, S_l, G*S_l]`` (None: no recurrence).
    readout : Tensor [P, O, N]; readout_bias : Tensor [P, O]
        Masked readout over all layers' neurons.
    lengths : Tensor [B], optional
        Real lengths; states stop updating after them.

    Returns
    -------
    Tensor [P, B, O]
    """
    b, t_steps, d0 = x.shape
    cell = CELLS[kind]
    p, g = readout.shape[0], cell.gates
    widths = [b_ih.shape[1] // g for _, b_ih, _, _ in layers]
    h = [x.new_zeros(p, b, s) for s in widths]
    c = [x.new_zeros(p, b, s) for s in widths] if cell.memory else None
    for t in range(t_steps):
        new_h, new_c = [], []
        xt = x[:, t].expand(p, b, d0)
        for li, (w_ih, b_ih, w_hh, b_hh) in enumerate(layers):
            inp = xt if li == 0 else torch.cat(new_h, dim=2)
            gx = torch.baddbmm(b_ih[:, None, :], inp, w_ih)
            gh = b_hh[:, None, :].expand(p, b, -1) if w_hh is None else torch.baddbmm(b_hh[:, None, :], h[li], w_hh)
            h_l, c_l = cell.step(gx, gh, h[li], None if c is None else c[li], None, 1.0)
            if lengths is not None:
                alive = (t < lengths).view(1, b, 1)
                h_l = torch.where(alive, h_l, h[li])
                if c_l is not None:
                    c_l = torch.where(alive, c_l, c[li])
            new_h.append(h_l)
            new_c.append(c_l)
        h, c = new_h, (new_c if c is not None else None)
    return torch.baddbmm(readout_bias[:, None, :], torch.cat(h, dim=2), readout.transpose(1, 2))


def masked_layers(module: nn.Module) -> list[tuple[Tensor, Tensor, Tensor | None, Tensor]]:
    """The ``layers`` argument of :func:`layered_forward` from a layered model or pack.

    Both name their tensors alike: per layer l, parameters ``w_ih[l]``, ``w_hh[l]`` (dense
    recurrence only), ``b_ih[l]``, ``b_hh[l]`` and mask buffers ``mask_ih{l}``, ``mask_hh{l}``;
    a pack's carry a leading model axis.
    """
    def lead(t: Tensor) -> Tensor:
        return stacked(module, t)

    layers = []
    for li, w_ih in enumerate(module.w_ih):
        w_hh = None
        if len(module.w_hh):
            w_hh = masked_recurrent_weights(lead(module.w_hh[li]), lead(getattr(module, f"mask_hh{li}")))
            w_hh = w_hh.transpose(1, 2)
        w_ih = masked_recurrent_weights(lead(w_ih), lead(getattr(module, f"mask_ih{li}"))).transpose(1, 2)
        layers.append((w_ih, lead(module.b_ih[li]), w_hh, lead(module.b_hh[li])))
    return layers


def masked_readout(module: nn.Module) -> tuple[Tensor, Tensor]:
    r, mask, bias = (stacked(module, k) for k in ("readout", "out_mask", "readout_bias"))
    return r * mask[:, None, :], bias


class LayeredRecurrentNet(nn.Module):
    """One recurrent cell per DAG layer (see the module docstring).

    Parameters
    ----------
    wiring : Wiring
        An acyclic wiring.
    arch : Arch
        ``kind="layered"`` with ``cell``, ``recurrence`` and ``input_width``.
    seed : int, default 0
        Initialisation seed (torch's RNN convention per layer cell: U(-1/sqrt(|l|), ...)).
    """

    def __init__(self, wiring: Wiring, arch: Arch, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(arch.target, LayeredTarget):
            raise ParameterError(f"LayeredRecurrentNet needs arch kind 'layered', got {arch.kind!r}")
        wiring.require_dag()
        self.wiring, self.arch, self.seed = wiring, arch, int(seed)
        self.backend = "dense"
        n, g = wiring.n_neurons, CELLS[arch.cell].gates
        layer = wiring.layer
        order = np.argsort(layer, kind="stable")
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        sizes = np.bincount(layer)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.sizes, self.offsets = sizes.tolist(), offsets.tolist()
        self.register_buffer("order", torch.from_numpy(order))
        src, dst = rank[wiring.edges[:, 0]], rank[wiring.edges[:, 1]]
        d0 = self.n_sources if arch.input_width == "sources" else arch.d_in
        dense = arch.recurrence == "dense"
        self.w_ih, self.w_hh = nn.ParameterList(), nn.ParameterList()
        self.b_ih, self.b_hh = nn.ParameterList(), nn.ParameterList()
        for li, (lo, hi) in enumerate(zip(offsets[:-1], offsets[1:])):
            width = hi - lo
            in_width = d0 if li == 0 else lo
            mask = torch.ones(width, in_width) if li == 0 else torch.zeros(width, in_width)
            if li > 0:
                into = (dst >= lo) & (dst < hi)
                mask[torch.from_numpy(dst[into] - lo), torch.from_numpy(src[into])] = 1.0
            self.register_buffer(f"mask_ih{li}", mask)
            self.w_ih.append(nn.Parameter(torch.zeros(g * width, in_width)))
            if dense:  # all ones until pruned
                self.register_buffer(f"mask_hh{li}", torch.ones(width, width))
                self.w_hh.append(nn.Parameter(torch.zeros(g * width, width)))
            self.b_ih.append(nn.Parameter(torch.zeros(g * width)))
            self.b_hh.append(nn.Parameter(torch.zeros(g * width)))
        out_mask = torch.zeros(n)
        out_mask[torch.from_numpy(rank[wiring.outputs])] = 1.0
        self.register_buffer("out_mask", out_mask)
        self.readout = nn.Parameter(torch.zeros(arch.d_out, n))
        self.readout_bias = nn.Parameter(torch.zeros(arch.d_out))
        self.reset_parameters()

    @property
    def n_sources(self) -> int:
        return int(np.sum(self.wiring.layer == 0))

    def reset_parameters(self) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        g = CELLS[self.arch.cell].gates

        def uniform(shape, bound):
            return (torch.rand(shape, generator=gen) * 2 - 1) * bound

        with torch.no_grad():
            for li, width in enumerate(self.sizes):
                k = 1.0 / math.sqrt(width)
                self.w_ih[li].copy_(uniform(self.w_ih[li].shape, k) * getattr(self, f"mask_ih{li}").repeat(g, 1))
                if len(self.w_hh):
                    self.w_hh[li].copy_(uniform(self.w_hh[li].shape, k))
                self.b_ih[li].copy_(uniform(self.b_ih[li].shape, k))
                self.b_hh[li].copy_(uniform(self.b_hh[li].shape, k))
            ko = 1.0 / math.sqrt(int(self.out_mask.sum()))
            self.readout.copy_(uniform(self.readout.shape, ko) * self.out_mask)
            self.readout_bias.copy_(uniform(self.readout_bias.shape, ko))

    def _inputs(self, x: Tensor) -> Tensor:
        if self.arch.input_width != "sources":
            return x
        k = self.n_sources
        if x.shape[-1] >= k:
            return x[..., :k]
        return torch.nn.functional.pad(x, (0, k - x.shape[-1]))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``x [B, T, d_in] -> [B, d_out]``, read at the last real step of each sequence."""
        return layered_forward(self.arch.cell, self._inputs(x), masked_layers(self), *masked_readout(self), lengths)[0]

    def parameter_counts(self) -> dict[str, int]:
        """graph (edges between layers, per gate), recurrent (intra-layer), interface, bias."""
        g = CELLS[self.arch.cell].gates
        graph = g * self.wiring.n_edges
        recurrent = g * sum(s * s for s in self.sizes) if self.arch.recurrence == "dense" else 0
        d0 = self.mask_ih0.shape[1]
        interface = g * self.sizes[0] * d0 + int(self.out_mask.sum()) * self.arch.d_out
        bias = 2 * g * self.wiring.n_neurons + self.arch.d_out
        return {"graph": graph, "recurrent": recurrent, "interface": interface, "bias": bias,
                "total": graph + recurrent + interface + bias}

    def extra_repr(self) -> str:
        c = self.parameter_counts()
        return (f"cell={self.arch.cell!r}, recurrence={self.arch.recurrence!r}, input_width={self.arch.input_width!r}, "
                f"n_neurons={self.wiring.n_neurons}, n_edges={self.wiring.n_edges}, layers={len(self.sizes)}, "
                f"params={c['total']}")


class PackedLayered(nn.Module):
    """P layered models run as one program (the layered form's :class:`PackedPopulation`).

    Layer l of every model is padded to the widest layer l of the pack, ``S_l``; layer l
    reads the padded states of layers < l through a ``[P, S_l, sum_{j<l} S_j]`` mask of
    its model's edges, so each time step is one batched matmul per layer index for all
    models. Padding neurons have zero weights, biases and masks: their state stays zero
    and is never read, and model p computes exactly what
    ``LayeredRecurrentNet(wiring_p, arch, seed_p)`` computes (it is initialised by copying
    that module's parameters). ``forward(x [B, T, d_in], lengths) -> [P, B, d_out]``.

    Parameters
    ----------
    wirings : sequence of Wiring
        Acyclic wirings.
    arch : Arch
        ``kind="layered"``.
    seeds : sequence of int
        Initialisation seed of every model.
    """

    stacked = True  # tensors carry the model axis (see topowire.compiler.modules.stacked)

    def __init__(self, wirings, arch: Arch, seeds) -> None:
        super().__init__()
        if len(wirings) == 0 or len(seeds) != len(wirings):
            raise ParameterError(f"PackedLayered needs one seed per wiring, got {len(seeds)} for {len(wirings)}")
        self.arch, self.wirings, self.seeds = arch, list(wirings), [int(s) for s in seeds]
        models = [LayeredRecurrentNet(w, arch, s) for w, s in zip(self.wirings, self.seeds)]
        self._counts = [m.parameter_counts() for m in models]
        p, g = len(models), CELLS[arch.cell].gates
        self.sizes = np.array([w.n_neurons for w in self.wirings])
        depth = max(len(m.sizes) for m in models)
        widths = [max(m.sizes[li] if li < len(m.sizes) else 0 for m in models) for li in range(depth)]
        offsets = np.concatenate([[0], np.cumsum(widths)]).astype(int).tolist()
        self.widths, self.offsets = widths, offsets
        d0 = max(m.mask_ih0.shape[1] for m in models)
        self.d0 = d0
        dense = arch.recurrence == "dense"
        self.w_ih, self.w_hh = nn.ParameterList(), nn.ParameterList()
        self.b_ih, self.b_hh = nn.ParameterList(), nn.ParameterList()
        for li, s in enumerate(widths):
            in_w = d0 if li == 0 else offsets[li]
            self.register_buffer(f"mask_ih{li}", torch.zeros(p, s, in_w))
            self.w_ih.append(nn.Parameter(torch.zeros(p, g * s, in_w)))
            if dense:
                self.register_buffer(f"mask_hh{li}", torch.zeros(p, s, s))
                self.w_hh.append(nn.Parameter(torch.zeros(p, g * s, s)))
            self.b_ih.append(nn.Parameter(torch.zeros(p, g * s)))
            self.b_hh.append(nn.Parameter(torch.zeros(p, g * s)))
        total = offsets[-1]
        self.register_buffer("out_mask", torch.zeros(p, total))
        self.readout = nn.Parameter(torch.zeros(p, arch.d_out, total))
        self.readout_bias = nn.Parameter(torch.zeros(p, arch.d_out))
        with torch.no_grad():
            for i, m in enumerate(models):
                for padded, index, small in self._slots(m, i):
                    padded[index] = small

    def _positions(self, m: LayeredRecurrentNet) -> Tensor:
        """Padded position of each of model m's (layer-ordered) neurons."""
        return torch.cat([torch.arange(s) + self.offsets[li] for li, s in enumerate(m.sizes)])

    def _slots(self, m: LayeredRecurrentNet, i: int) -> list[tuple[Tensor, tuple, Tensor]]:
        """Where model i's tensors live in the padded ones: ``(padded view, index, standalone)``;
        ``view[index]`` holds the standalone tensor (the index may gather columns)."""
        g = CELLS[self.arch.cell].gates
        pos = self._positions(m)
        every = slice(None)
        slots = []
        for li, s in enumerate(m.sizes):
            mask_ih = getattr(m, f"mask_ih{li}")
            cols = torch.arange(mask_ih.shape[1]) if li == 0 else pos[: m.offsets[li]]
            width = self.widths[li]
            rows = torch.arange(s)
            slots += [
                (self.w_ih[li].data[i].view(g, width, -1), (every, rows[:, None], cols[None, :]),
                 m.w_ih[li].data.view(g, s, -1)),
                (getattr(self, f"mask_ih{li}")[i], (rows[:, None], cols[None, :]), mask_ih),
                (self.b_ih[li].data[i].view(g, width), (every, rows), m.b_ih[li].data.view(g, s)),
                (self.b_hh[li].data[i].view(g, width), (every, rows), m.b_hh[li].data.view(g, s)),
            ]
            if len(m.w_hh):
                slots += [(self.w_hh[li].data[i].view(g, width, width), (every, rows[:, None], rows[None, :]),
                           m.w_hh[li].data.view(g, s, s)),
                          (getattr(self, f"mask_hh{li}")[i], (rows[:, None], rows[None, :]),
                           getattr(m, f"mask_hh{li}"))]
        slots += [(self.readout.data[i], (every, pos), m.readout.data), (self.out_mask[i], (pos,), m.out_mask),
                  (self.readout_bias.data[i], (every,), m.readout_bias.data)]
        return slots

    def __len__(self) -> int:
        return len(self.wirings)

    def forward(self, x: Tensor, lengths: Tensor | None = None, all_steps: bool = False) -> Tensor:
        if all_steps:
            raise ParameterError("the layered form reads out at the last step only")
        d = x.shape[-1]
        x = x[..., : self.d0] if d >= self.d0 else nn.functional.pad(x, (0, self.d0 - d))
        return layered_forward(self.arch.cell, x, masked_layers(self), *masked_readout(self), lengths)

    def unpack(self, i: int) -> LayeredRecurrentNet:
        """Model i as a standalone :class:`LayeredRecurrentNet` with its current weights."""
        if not 0 <= i < len(self):
            raise IndexError(f"model index {i} out of range for a pack of {len(self)}")
        m = LayeredRecurrentNet(self.wirings[i], self.arch, self.seeds[i])
        with torch.no_grad():
            for padded, index, small in self._slots(m, i):
                small.copy_(padded[index])
        return m

    def parameter_counts(self) -> list[dict[str, int]]:
        """Effective parameter counts of every model (as :meth:`LayeredRecurrentNet.parameter_counts`)."""
        return [dict(c) for c in self._counts]



class LayeredTarget(Target):
    """The layered form (see the module docstring): its own modules, packed by :class:`PackedLayered`."""

    kinds = ("layered",)
    doc = "the graph's DAG layers as stacked recurrent layers (arXiv 2407.20601)"
    over_time = True

    def options(self, kind: str) -> type:
        return LayeredOptions

    def check_arch(self, arch) -> None:
        if arch.backend not in ("dense", "auto"):
            raise ParameterError("the layered form uses the dense backend")

    def check_task(self, arch, task) -> None:
        super().check_task(arch, task)
        if task.per_step:
            raise ParameterError(f"task {task.name!r} is scored at every step; the layered form reads out at the last")

    def gates(self, arch) -> int:
        return CELLS[arch.cell].gates

    def build(self, wiring, arch, seed):
        return LayeredRecurrentNet(wiring, arch, seed)

    def pack(self, wirings, arch, seeds):
        return PackedLayered(wirings, arch, seeds)

    def export_layers(self, module):
        layers = [tuple(None if t is None else t[0] for t in layer) for layer in masked_layers(module)]
        readout, bias = (t[0] for t in masked_readout(module))
        return module.arch.cell, layers, None, 1.0, readout, bias, module.mask_ih0.shape[1]


register_target(LayeredTarget())
