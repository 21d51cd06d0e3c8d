"""The relational graph MLP of graph2nn (You, Leskovec, He & Xie, ICML 2020).

A graph of n nodes; each node is a group of channels (the W channels of a layer split as
evenly as possible, node i taking ``W // n`` or one more). In every relational layer node
i's channels read the channels of ``N(i) + {i}`` from the layer before: a linear layer
masked by ``(A + I) (x) 1`` -- the same graph in every layer -- then BatchNorm and ReLU.
A dense stem (Linear, BatchNorm, ReLU) reads the data and a dense head reads the last
layer out. Self-loops are added here; a topology stays a simple graph.

Size held fixed by design, by one of three rules:

* ``match="flops"`` (graph2nn's AUTO_MATCH, the default): the stem keeps the dense MLP's
  width ``width`` and the width W of the relational layers is searched so that the
  network's FLOPs -- graph2nn's count: the multiply-accumulates of its linear layers, each
  masked layer counted by its mask's non-zeros -- equal the dense MLP's within 1%. The stem
  fixed, that matches the relational stage and the head: a sparse graph gets layers up to
  ~3x wider (the first relational layer reads the stem's ``width`` channels, grouped by the
  same graph).
* ``match="params"``: W is searched so that the whole network's trainable parameters, the
  ``d_in x W`` stem included, equal the dense MLP's within 1%. With a wide input the stem
  dominates, so a sparser graph gets a *smaller* relational stage: not graph2nn's rule.
* ``match="none"``: every graph has width ``width``.

Packed, models of different widths are padded to the widest; a channel mask zeroes the
padding after every BatchNorm, so padding is never read and model p computes what it
computes alone.

On the CPU a relational layer computes only its graph's blocks
(:mod:`topowire.compiler.blocks`) where that measures faster than the dense masked product
(sparse graphs, below the crossover), else the dense product masked to zero; the two agree
to float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from topowire.compiler.blocks import BlockPlan, block_plan, block_product, blocks_pay
from topowire.compiler.modules import stacked
from topowire.compiler.targets.base import Target, register_target
from topowire.compiler.wiring import Wiring
from topowire.errors import ParameterError

__all__ = ["RelationalOptions", "RelationalNet", "PackedRelational", "RelationalTarget", "channel_counts",
           "relational_width", "relational_counts"]

#: BatchNorm's running-average momentum and epsilon (torch's defaults).
BN_MOMENTUM, BN_EPS = 0.1, 1e-5
#: How far from the dense model's parameter count a matched width may land.
MATCH_TOLERANCE = 0.01


@dataclass(frozen=True)
class RelationalOptions:
    """The options of the relational graph MLP.

    Parameters
    ----------
    width : int
        The width (channels per layer) of the complete graph's network, the dense MLP every
        graph is matched to; with ``match="none"``, every graph's width.
    depth : int
        Relational layers between the stem and the head.
    batchnorm : bool
        BatchNorm after every linear layer but the head (without it the layers have biases).
    match : {"flops", "params", "none"}
        ``flops`` (graph2nn's rule): the stem keeps ``width`` and the relational layers' width
        is searched so the network's FLOPs equal the dense model's within 1%; ``params``:
        the width of every layer, stem included, is searched so the trainable parameters
        equal the dense model's within 1%; ``none``: every graph takes ``width``.
    """

    width: int = 64
    depth: int = 3
    batchnorm: bool = True
    match: str = "flops"

    def __post_init__(self) -> None:
        from topowire import checks

        checks.validate(self)


def channel_counts(width: int, n: int) -> np.ndarray:
    """Channels of each of n nodes for a layer of ``width`` channels: as even as possible,
    the first ``width % n`` nodes taking one more (graph2nn's split)."""
    counts = np.full(n, width // n)
    counts[: width % n] += 1
    return counts


def _block_nonzeros(rows: np.ndarray, cols: np.ndarray, edges: np.ndarray) -> int:
    """Non-zeros of the ``(A + I) (x) 1`` mask of a layer whose nodes have ``rows`` output and
    ``cols`` input channels: each node with itself and, per undirected edge, both directions."""
    u, v = (edges[:, 0], edges[:, 1]) if len(edges) else (np.zeros(0, int), np.zeros(0, int))
    both = int((rows[u] * cols[v]).sum() + (rows[v] * cols[u]).sum())
    return int((rows * cols).sum()) + both


def stem_width(arch, width: int) -> int:
    """The stem's width: the dense MLP's (``arch.width``) under ``match="flops"``, else the
    graph's ``width``."""
    return arch.width if arch.match == "flops" else width


def relational_counts(n: int, undirected: np.ndarray, width: int, arch) -> dict[str, int]:
    """Trainable parameters of a relational network of ``width`` on a graph of n nodes with
    these undirected edges: graph (the masked relational weights), interface (stem and
    head), bias (biases, or BatchNorm's scale and shift), total; and ``flops``, graph2nn's
    count of its multiply-accumulates per example (stem, masked relational layers, head)."""
    stem = stem_width(arch, width)
    out_c, in_c = channel_counts(width, n), channel_counts(stem, n)
    graph = _block_nonzeros(out_c, in_c, undirected) + (arch.depth - 1) * _block_nonzeros(out_c, out_c, undirected)
    interface = stem * arch.d_in + arch.d_out * width
    bias = (stem + arch.depth * width) * (2 if arch.batchnorm else 1) + arch.d_out
    return {"graph": graph, "interface": interface, "bias": bias, "total": graph + interface + bias,
            "flops": arch.d_in * stem + graph + width * arch.d_out, "width": width}


def _undirected(wiring: Wiring) -> np.ndarray:
    e = np.sort(wiring.edges, axis=1)
    return np.unique(e[e[:, 0] != e[:, 1]], axis=0) if len(e) else np.zeros((0, 2), dtype=np.int64)


def relational_width(wiring: Wiring, arch) -> int:
    """The width of this graph's relational layers: ``arch.width``, or the width whose FLOPs
    (``match="flops"``) or parameters (``match="params"``) are nearest the complete graph's
    at ``arch.width`` (within 1%).

    Raises
    ------
    ParameterError
        No width lands within 1% (a graph too small for the budget).
    """
    n = wiring.n_neurons
    if arch.match == "none":
        return arch.width
    measure = "flops" if arch.match == "flops" else "total"
    complete = np.array([(u, v) for u in range(n) for v in range(u + 1, n)], dtype=np.int64).reshape(-1, 2)
    budget = relational_counts(n, complete, arch.width, arch)[measure]
    edges = _undirected(wiring)

    def total(w: int) -> int:
        return relational_counts(n, edges, w, arch)[measure]

    low, high = 1, 16 * arch.width + n  # the count grows with the width: bisect for the first at the budget
    while low < high:
        mid = (low + high) // 2
        low, high = (mid + 1, high) if total(mid) < budget else (low, mid)
    best = min((w for w in (low - 1, low) if w >= 1), key=lambda w: (abs(total(w) - budget), w))
    off = abs(total(best) - budget) / budget
    if off > MATCH_TOLERANCE:
        raise ParameterError(f"no width of this {n}-node graph has {budget:,} "
                             f"{'FLOPs' if measure == 'flops' else 'parameters'} within "
                             f"{MATCH_TOLERANCE:.0%} (the nearest, {best}, is {off:.1%} off): raise width")
    return best


def neighbours(wiring: Wiring) -> list[list[int]]:
    """Every node's inputs in a relational layer: itself and its neighbours, ascending."""
    nodes = [{u} for u in range(wiring.n_neurons)]
    for u, v in _undirected(wiring):
        nodes[u].add(int(v))
        nodes[v].add(int(u))
    return [sorted(s) for s in nodes]


def layer_plans(module: nn.Module, first: bool) -> tuple[BlockPlan, BlockPlan]:
    """The block plans of a relational module's (one or a pack) layers and of their
    transposes (:func:`~topowire.compiler.blocks.block_plan`): the first layer's (reading the
    stem's channels) or the others'. Built once per module, from its graphs and widths."""
    cache = module.__dict__.setdefault("_block_plans", {})
    if first not in cache:
        wirings = getattr(module, "wirings", None) or [module.wiring]
        widths = getattr(module, "widths", None) or [module.width]
        inputs = [stem_width(module.arch, w) if first else w for w in widths]
        nb = [neighbours(w) for w in wirings]
        outs = [channel_counts(c, w.n_neurons) for w, c in zip(wirings, widths)]
        ins = [channel_counts(c, w.n_neurons) for w, c in zip(wirings, inputs)]
        rows, cols = max(widths), max(inputs)
        cache[first] = block_plan(nb, outs, ins, rows, cols), block_plan(nb, ins, outs, cols, rows)
    return cache[first]


def _mask(wiring: Wiring, width: int, inputs: int | None = None) -> Tensor:
    """``(A + I) (x) 1`` of a layer from ``inputs`` (default ``width``) to ``width``
    channels: channel a of node u reads channel b of node v iff u = v or u - v."""
    n = wiring.n_neurons
    rows = np.repeat(np.arange(n), channel_counts(width, n))
    cols = np.repeat(np.arange(n), channel_counts(width if inputs is None else inputs, n))
    adjacent = np.eye(n, dtype=bool)
    edges = _undirected(wiring)
    adjacent[edges[:, 0], edges[:, 1]] = adjacent[edges[:, 1], edges[:, 0]] = True
    return torch.from_numpy(adjacent[rows][:, cols].astype(np.float32))


def _uniform(gen: torch.Generator, shape: tuple[int, ...], bound) -> Tensor:
    return (torch.rand(shape, generator=gen, dtype=torch.float32) * 2 - 1) * bound


def initial_tensors(wiring: Wiring, arch, seed: int) -> dict[str, Tensor]:
    """One model's parameters, nn.Linear's draw (bound ``1/sqrt(fan_in)``, the fan-in of a
    relational row being its mask's row count), masked entries zero; BatchNorm scale 1 and
    shift 0. Drawn from ``torch.Generator().manual_seed(seed)`` in a fixed order."""
    w = relational_width(wiring, arch)
    s = stem_width(arch, w)
    gen = torch.Generator().manual_seed(int(seed))
    masks = [_mask(wiring, w, s)] + [_mask(wiring, w)] * (arch.depth - 1)
    out = {"stem": _uniform(gen, (s, arch.d_in), 1 / math.sqrt(arch.d_in)),
           "stem_bias": _uniform(gen, (s,), 1 / math.sqrt(arch.d_in))}
    for layer, mask in enumerate(masks):
        fan = mask.sum(1, keepdim=True)
        out[f"weight{layer}"] = _uniform(gen, tuple(mask.shape), 1 / torch.sqrt(fan)) * mask
        out[f"bias{layer}"] = _uniform(gen, (w,), 1 / torch.sqrt(fan[:, 0]))
    out["head"] = _uniform(gen, (arch.d_out, w), 1 / math.sqrt(w))
    out["head_bias"] = _uniform(gen, (arch.d_out,), 1 / math.sqrt(w))
    if arch.batchnorm:  # BatchNorm's shift replaces the biases (drawn all the same: one stream either way)
        for layer in range(arch.depth + 1):
            del out["stem_bias" if layer == 0 else f"bias{layer - 1}"]
            c = s if layer == 0 else w
            out[f"bn_scale{layer}"], out[f"bn_shift{layer}"] = torch.ones(c), torch.zeros(c)
    return out


def relational_forward(module: nn.Module, x: Tensor) -> Tensor:
    """The relational networks of ``module`` (one, seen as P = 1, or a pack) on a shared
    batch ``x [B, d_in]`` -> ``[P, B, d_out]``; BatchNorm uses the batch (and updates its
    running statistics) in training mode, its running statistics otherwise."""
    arch, keep = module.arch, stacked(module, "channels")  # [P, W]: 1 on a model's own channels
    p = keep.shape[0]
    flops = arch.match == "flops"  # the stem keeps the dense width: every model has all its channels

    def norm(h: Tensor, layer: int) -> Tensor:  # h [P, B, W]; the bias of a layer without BatchNorm
        if not arch.batchnorm:
            return h + stacked(module, "stem_bias" if layer == 0 else f"bias{layer - 1}")[:, None]
        w = h.shape[2]
        flat = h.transpose(0, 1).reshape(h.shape[1], p * w)  # per model and channel: P*W channels
        flat = F.batch_norm(flat, stacked(module, f"bn_mean{layer}").reshape(-1),
                            stacked(module, f"bn_var{layer}").reshape(-1),
                            stacked(module, f"bn_scale{layer}").reshape(-1),
                            stacked(module, f"bn_shift{layer}").reshape(-1), module.training, BN_MOMENTUM, BN_EPS)
        return flat.view(h.shape[1], p, w).transpose(0, 1)

    h = torch.einsum("bd,pwd->pbw", x, stacked(module, "stem"))
    h = torch.relu(norm(h, 0))
    h = h if flops else h * keep[:, None]
    mask = stacked(module, "mask")
    for layer in range(arch.depth):
        first = layer == 0 and flops
        weight, plans = stacked(module, f"weight{layer}"), layer_plans(module, first)
        if blocks_pay(plans[0], h):  # only the graph's blocks: work proportional to its density
            h = block_product(h, weight, *plans)
        else:
            h = torch.bmm(h, (weight * (stacked(module, "mask_in") if first else mask)).transpose(1, 2))
        h = torch.relu(norm(h, layer + 1)) * keep[:, None]
    return torch.baddbmm(stacked(module, "head_bias")[:, None], h, stacked(module, "head").transpose(1, 2))


class RelationalNet(nn.Module):
    """One relational graph MLP (see the module docstring); ``forward(x [B, d_in]) -> [B, d_out]``.

    Parameters
    ----------
    wiring : Wiring
        The graph (its edges are read as undirected).
    arch : Arch
        ``kind="relational"``.
    seed : int, default 0
        Initialisation seed.
    """

    def __init__(self, wiring: Wiring, arch, seed: int = 0) -> None:
        super().__init__()
        self.wiring, self.arch, self.seed = wiring, arch, int(seed)
        self.backend = "dense"
        self.width = relational_width(wiring, arch)
        self.stem_width = stem_width(arch, self.width)
        self.register_buffer("mask", _mask(wiring, self.width))
        if arch.match == "flops":  # the first relational layer reads the stem's channels
            self.register_buffer("mask_in", _mask(wiring, self.width, self.stem_width))
        self.register_buffer("channels", torch.ones(self.width))
        for layer in range(arch.depth + 1 if arch.batchnorm else 0):
            c = self.stem_width if layer == 0 else self.width
            self.register_buffer(f"bn_mean{layer}", torch.zeros(c))
            self.register_buffer(f"bn_var{layer}", torch.ones(c))
        for name, t in initial_tensors(wiring, arch, self.seed).items():
            self.register_parameter(name, nn.Parameter(t))

    def forward(self, x: Tensor, lengths: Tensor | None = None, all_steps: bool = False) -> Tensor:
        if lengths is not None or all_steps or x.dim() != 2:
            raise ParameterError("the relational MLP takes static inputs [B, d_in], not sequences")
        return relational_forward(self, x)[0]

    def parameter_counts(self) -> dict[str, int]:
        return relational_counts(self.wiring.n_neurons, _undirected(self.wiring), self.width, self.arch)

    def extra_repr(self) -> str:
        c = self.parameter_counts()
        return (f"n_nodes={self.wiring.n_neurons}, n_edges={len(_undirected(self.wiring))}, width={self.width}, "
                f"stem_width={self.stem_width}, depth={self.arch.depth}, params={c['total']}, flops={c['flops']}")


class PackedRelational(nn.Module):
    """P relational MLPs as one program, padded to the widest; ``forward(x) -> [P, B, d_out]``."""

    stacked = True

    def __init__(self, wirings, arch, seeds) -> None:
        super().__init__()
        self.arch, self.wirings, self.seeds = arch, list(wirings), [int(s) for s in seeds]
        models = [RelationalNet(w, arch, s) for w, s in zip(self.wirings, self.seeds)]
        self.widths = [m.width for m in models]
        p = len(models)
        self.n_max = max(self.widths)
        for name, t in {**dict(models[0].named_buffers()), **dict(models[0].named_parameters())}.items():
            shape = np.max([getattr(m, name).shape for m in models], axis=0).tolist()  # the widest model's
            padded = torch.zeros(p, *shape)
            for i, m in enumerate(models):
                src = getattr(m, name).detach()
                padded[i][tuple(slice(0, d) for d in src.shape)] = src
            if isinstance(t, nn.Parameter):
                self.register_parameter(name, nn.Parameter(padded))
            else:
                self.register_buffer(name, padded)

    def __len__(self) -> int:
        return len(self.wirings)

    def forward(self, x: Tensor, lengths: Tensor | None = None, all_steps: bool = False) -> Tensor:
        if lengths is not None or all_steps:
            raise ParameterError("the relational MLP takes static inputs [B, d_in], not sequences")
        return relational_forward(self, x)

    def unpack(self, p: int) -> RelationalNet:
        """Model p as a standalone :class:`RelationalNet` with its current weights and statistics."""
        net = RelationalNet(self.wirings[p], self.arch, self.seeds[p])
        with torch.no_grad():
            for name, t in [*net.named_parameters(), *net.named_buffers()]:
                t.copy_(getattr(self, name)[p][tuple(slice(0, d) for d in t.shape)])
        return net

    def parameter_counts(self) -> list[dict[str, int]]:
        return [relational_counts(w.n_neurons, _undirected(w), width, self.arch)
                for w, width in zip(self.wirings, self.widths)]


class RelationalTarget(Target):
    """The relational graph MLP (see the module docstring)."""

    kinds = ("relational",)
    doc = "graph2nn's relational graph MLP: every layer masked by (A + I), width matched to the dense MLP's FLOPs"
    natural_wiring = ("both", "all", "all")

    def options(self, kind: str) -> type:
        return RelationalOptions

    def check_arch(self, arch) -> None:
        if arch.backend not in ("dense", "auto"):
            raise ParameterError("the relational target uses the dense backend")

    def size_measure(self, arch) -> str:
        return "flops" if arch.match == "flops" else "params"

    def model_width(self, topology, arch) -> int:
        from topowire.compiler.wiring import wire

        return relational_width(wire(topology, *self.natural_wiring), arch)

    def holds_fixed(self, arch) -> str:
        return {"flops": f"FLOPs of the dense MLP of width {arch.width} within 1%, stem fixed at that width",
                "params": f"parameters of the dense MLP of width {arch.width} within 1%, stem included",
                "none": f"width {arch.width} for every graph"}[arch.match]

    def parameter_counts(self, wiring, arch, seed=0):
        return relational_counts(wiring.n_neurons, _undirected(wiring), relational_width(wiring, arch), arch)

    def model_bytes(self, n_neurons, n_edges, arch) -> float:
        w = 4 * max(arch.width, n_neurons)  # a sparse graph's matched width: a few times the dense one
        return 4.0 * (3 * arch.depth * w * w + 3 * w * (arch.d_in + arch.d_out))

    def train_bytes(self, n, arch, batch, steps) -> int:
        w = 4 * max(arch.width, n)
        return int(4 * (4 * (arch.depth * w * w + w * (arch.d_in + arch.d_out)) + w * w + 4 * w * batch * arch.depth))

    def check_saved(self, n_neurons, arch, shapes):
        head, stem, mask = shapes.get("head"), shapes.get("stem"), shapes.get("mask")
        width, d_in, d_out = arch.get("width"), arch.get("d_in"), arch.get("d_out")
        if head is None or stem is None or mask is None or len(head) != 2 or len(stem) != 2:
            return f"the file lacks the relational tensors head, stem and mask (it has {', '.join(sorted(shapes))})"
        w = head[1]
        s = width if arch.get("match") == "flops" else w
        if not isinstance(width, int) or w > 16 * width + n_neurons or mask != (w, w) or head != (d_out, w) \
                or tuple(stem) != (s, d_in) or tuple(shapes.get("mask_in", (w, s))) != (w, s):
            return (f"the spec describes a relational MLP of width {width} (matched widths up to "
                    f"{16 * width + n_neurons if isinstance(width, int) else '?'}), d_in = {d_in}, d_out = {d_out} "
                    f"but the file's stem, head and mask have shapes {list(stem)}, {list(head)}, {list(mask)}")
        return None

    def build(self, wiring, arch, seed):
        return RelationalNet(wiring, arch, seed)

    def pack(self, wirings, arch, seeds):
        return PackedRelational(wirings, arch, seeds)


register_target(RelationalTarget())
