"""Magnitude pruning of compiled recurrent networks, and a network's connectivity as a graph.

Part 1 of arXiv 2407.20601 prunes trained RNNs by weight magnitude and retrains them with
the pruned weights fixed at zero. In topowire a connection is what a mask entry stands
for, so pruning removes *connections*: an input connection (neuron v <- data feature i)
or a recurrent one (v <- u). A connection's magnitude is the L2 norm of its weights over
the gate blocks (for ``rnn-*`` and ``wcrnn`` cells: its one weight's absolute value);
biases and the readout are never pruned. Pruning writes the masks, so the pruned weights
stay exactly zero through any later training (their gradient is masked) and through
save/load (the masks are saved buffers).

``on`` picks the weights: ``ih`` (input connections), ``hh`` (recurrent), or ``both``.
``scope="global"`` ranks every selected connection of a model together; ``"layer"`` prunes
each weight tensor (each layer's ``ih`` and ``hh`` of the layered form) at the rate on its
own. The count removed is ``round(rate * existing)``, ties broken by position. In a pack
every model is pruned on its own weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from topowire import checks
from topowire.compiler.modules import stacked
from topowire.compiler.pack import PackedPopulation
from topowire.compiler.targets.layered import LayeredRecurrentNet, PackedLayered
from topowire.compiler.targets.recurrent import MaskedRecurrentNet
from topowire.errors import ParameterError
from topowire.topology.topology import Topology

__all__ = ["prune", "prune_model", "network_topology", "check_arguments", "ON", "SCOPES"]

ON = ("ih", "hh", "both")
SCOPES = ("global", "layer")


@dataclass
class _Target:
    """One prunable weight tensor: weights ``[P, G, R, C]`` and the mask buffer it obeys."""

    name: str
    side: str  # "ih" or "hh"
    weight: Tensor
    mask: Tensor  # [P, R, C], written in place
    exists: Tensor  # [P, R, C] bool: connections present before pruning


def _targets(module: nn.Module) -> list[_Target]:
    if isinstance(module, (LayeredRecurrentNet, PackedLayered)):
        out = []
        g = module.arch.gates
        for kind, weights in (("ih", module.w_ih), ("hh", module.w_hh)):
            for li, w in enumerate(weights):
                w, mask = stacked(module, w.data), stacked(module, getattr(module, f"mask_{kind}{li}"))
                out.append(_Target(f"layer{li}.{kind}", kind, w.view(w.shape[0], g, -1, w.shape[-1]), mask, mask > 0))
        return out
    if isinstance(module, (MaskedRecurrentNet, PackedPopulation)) and module.arch.masked_cell:
        if getattr(module, "backend", "dense") != "dense":
            raise ParameterError("pruning needs the dense backend (the masks as matrices)")
        g = module.arch.gates
        w_ih, w_hh = stacked(module, "w_ih").data, stacked(module, "w_hh").data
        p, _, d_in = w_ih.shape
        n = w_hh.shape[2]
        ih_mask, mask, in_mask = (stacked(module, k) for k in ("ih_mask", "mask", "in_mask"))
        return [
            _Target("ih", "ih", w_ih.view(p, g, n, d_in), ih_mask, (ih_mask * in_mask[:, :, None]) > 0),
            _Target("hh", "hh", w_hh.view(p, g, n, n), mask, mask > 0),
        ]
    raise ParameterError(f"prune() takes a masked recurrent model or a layered model, or a pack of them, "
                         f"got {type(module).__name__}" + (f" of kind {module.arch.kind!r}"
                                                          if hasattr(module, "arch") else ""))


def check_arguments(rate, on, scope) -> float:
    """``rate`` as a float, or ParameterError naming the bad rate, ``on`` or ``scope``."""
    rate = checks.number("rate", rate, 0, 1, what=" (a fraction)")
    if on not in ON:
        raise ParameterError(f"on must be one of {', '.join(ON)}, got {on!r}")
    if scope not in SCOPES:
        raise ParameterError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    return float(rate)


def _prune_group(group: list[_Target], p: int, rate: float) -> None:
    """Remove the ``round(rate * existing)`` weakest connections of model p across the group."""
    scores = torch.cat([t.weight[p].pow(2).sum(0).sqrt().flatten() for t in group])
    exists = torch.cat([t.exists[p].flatten() for t in group])
    idx = torch.nonzero(exists).flatten()
    k = int(round(rate * idx.numel()))
    if k == 0:
        return
    order = torch.sort(scores[idx], stable=True).indices[:k]
    drop = torch.zeros_like(exists)
    drop[idx[order]] = True
    start = 0
    for t in group:
        size = t.exists[p].numel()
        t.mask[p].view(-1)[drop[start:start + size]] = 0.0
        start += size


@torch.no_grad()
def prune(module: nn.Module, rate: float, on: str = "both", scope: str = "global") -> list[dict[str, int]]:
    """Magnitude-prune a trained model (or every model of a pack) in place.

    Parameters
    ----------
    module : MaskedRecurrentNet, PackedPopulation, LayeredRecurrentNet or PackedLayered
        Dense recurrent models.
    rate : float
        Fraction in [0, 1] of the existing selected connections to remove.
    on : {"ih", "hh", "both"}
        Input connections, recurrent connections, or both.
    scope : {"global", "layer"}
        One ranking over all selected tensors of a model, or one per tensor.

    Returns
    -------
    list of dict
        Per model: ``{tensor name: connections remaining}`` and ``{name}_before``.
    """
    rate = check_arguments(rate, on, scope)
    targets = [t for t in _targets(module) if on in ("both", t.side)]
    n_models = targets[0].mask.shape[0]
    before = [{t.name: int(t.exists[p].sum()) for t in targets} for p in range(n_models)]
    groups = [targets] if scope == "global" else [[t] for t in targets]
    for p in range(n_models):
        for group in groups:
            _prune_group(group, p, rate)
    for t in targets:  # pruned weights are zero in the parameters too
        t.weight.mul_(t.mask[:, None])
    return [{**{t.name: int((t.mask[p] * t.exists[p]).sum()) for t in targets},
             **{f"{k}_before": v for k, v in before[p].items()}} for p in range(n_models)]


def network_topology(module: nn.Module, p: int = 0) -> Topology:
    """The connectivity of a (pruned) model as a directed graph on its neurons.

    An edge ``u -> v`` exists where the model has a recurrent connection with a non-zero
    weight in some gate: for a masked recurrent model, ``W_hh``'s graph; for the layered
    form, the surviving edges between layers (the intra-layer recurrence is not part of
    the topology it was compiled from). Recompile it with ``orientation="as-is"``.

    Parameters
    ----------
    module : MaskedRecurrentNet, PackedPopulation or LayeredRecurrentNet
    p : int, default 0
        The model of a pack.
    """
    if isinstance(module, LayeredRecurrentNet):
        g = module.arch.gates
        order = module.order.numpy()
        edges = []
        for li in range(1, len(module.w_ih)):
            mask = getattr(module, f"mask_ih{li}")
            w = (module.w_ih[li].detach().view(g, *mask.shape) * mask).abs().sum(0)
            dst, src = torch.nonzero(w > 0, as_tuple=True)
            edges.append(np.stack([order[src.numpy()], order[dst.numpy() + module.offsets[li]]], axis=1))
        e = np.concatenate(edges) if edges else np.zeros((0, 2), np.int64)
        n = module.wiring.n_neurons
    else:
        targets = _targets(module)
        hh = next(t for t in targets if t.side == "hh")
        if not 0 <= p < hh.mask.shape[0]:
            raise IndexError(f"model index {p} out of range for {hh.mask.shape[0]} models")
        n = int(module.sizes[p]) if isinstance(module, PackedPopulation) else module.wiring.n_neurons
        live = ((hh.weight[p] * hh.mask[p]).abs().sum(0) > 0)[:n, :n]
        dst, src = torch.nonzero(live, as_tuple=True)
        e = np.stack([src.numpy(), dst.numpy()], axis=1)
    source = module.wirings[p].topology_id if isinstance(module, PackedPopulation) else module.wiring.topology_id
    return Topology(n, e, directed=True, family="pruned", params={"source": source or ""})


@dataclass(frozen=True)
class PruneReport:
    """What :func:`prune_model` did: per tensor the connections left and ``{name}_before``
    (``counts``), and the test accuracy before, after pruning and after ``retrain`` epochs."""

    counts: dict[str, int]
    before: float
    pruned: float
    after: float
    retrain: int = 0

    def __str__(self) -> str:
        kept = ", ".join(f"{k} {v}/{self.counts[k + '_before']}" for k, v in self.counts.items()
                         if not k.endswith("_before"))
        retrained = f" -> {self.after:.3f} after {self.retrain} retraining epochs" if self.retrain else ""
        return f"connections kept {kept}; test accuracy {self.before:.3f} -> {self.pruned:.3f} pruned{retrained}"


def prune_model(model, output, *, rate: float, on: str = "both", scope: str = "global", retrain: int = 0,
                task: str = "reber", lr: float | None = None, batch_size: int | None = None, seed: int | None = None,
                n_train: int | None = None, n_test: int | None = None,
                topology_out=None) -> PruneReport:
    """Prune a saved model, optionally retrain it (masks fixed) and save it: ``topowire prune``.

    Parameters
    ----------
    model, output : str or Path
        The saved model, and the file the pruned one is written to.
    rate : float
        Fraction of the selected connections to remove, in [0, 1].
    on : {"ih", "hh", "both"}
        Connections to prune: input, recurrent, or both.
    scope : {"global", "layer"}
        Ranking: one over all selected tensors of the model, or one per tensor.
    retrain : int
        Retraining epochs after pruning, masks fixed (0: none).
    task, n_train, n_test
        The task the model is scored (and retrained) on, as :func:`topowire.data.make_task`.
    lr, batch_size, seed
        Retraining settings (unset: :class:`~topowire.train.TrainConfig`'s).
    topology_out : str or Path, optional
        Also write the pruned connectivity as a one-topology population.

    Returns
    -------
    PruneReport
        The kept/before connection counts and the test accuracy before, after pruning and
        after retraining.
    """
    from topowire.compiler.export import load, save
    from topowire.data import make_task
    from topowire.train import TrainConfig, evaluate_module, train_module

    check_arguments(rate, on, scope)
    checks.integer("retrain", retrain, 0)
    net = load(model)
    _targets(net)  # a model with nothing to prune (the iterative map) is refused before any work
    given = {"lr": lr, "batch_size": batch_size, "seed": seed}
    config = TrainConfig(epochs=max(1, retrain), **{k: v for k, v in given.items() if v is not None})
    data = make_task(task, seed=config.seed, n_train=n_train, n_test=n_test)
    if (net.arch.d_in, net.arch.d_out) != (data.d_in, data.d_out):
        raise ParameterError(f"the model reads {net.arch.d_in} features into {net.arch.d_out} outputs, task {task!r} "
                             f"has {data.d_in} and {data.d_out}")
    before = evaluate_module(net, data)["test_acc"]
    counts = prune(net, rate, on, scope)[0]
    pruned = evaluate_module(net, data)["test_acc"]
    after = train_module(net, data, config)["test_acc"] if retrain else pruned
    save(net, output)
    if topology_out is not None:
        from topowire.topology import Population, write_population

        write_population(Population([network_topology(net)]), topology_out)
    return PruneReport(counts, before, pruned, after, retrain)
