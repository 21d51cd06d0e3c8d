"""Optimizers for stacked parameters: one independent optimizer per model, per-model lr.

Adam and SGD act elementwise, so on ``[P, ...]`` tensors they are P independent
optimizers; these versions also take a learning rate per model (``lr [P]``). With a scalar
lr they match ``torch.optim.Adam`` / ``SGD`` to float rounding. ``stacked=False`` takes
the parameters of one standalone model (no model axis) as a pack of one.

On the CPU and CUDA, Adam's step is torch's fused Adam (``torch._fused_adam_``, what
``torch.optim.Adam(fused=True)`` runs: one pass over each parameter and its state), called
once per distinct learning rate over those models' slices; elsewhere, or with a learning
rate tensor on an accelerator (reading it would wait for the device), the elementwise
ops of :meth:`StackedAdam.step_elementwise`, the reference the tests compare with.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from topowire.compiler.functional import reads_are_free

__all__ = ["StackedAdam", "StackedSGD", "clip_per_model"]


def _lead(t: Tensor, stacked: bool) -> Tensor:
    """``t`` with its model axis: as is when stacked, else a ``[1, ...]`` view (writes go through)."""
    return t if stacked else t[None]


def _per_model(lr: float | Tensor, p: Tensor) -> Tensor | float:
    if isinstance(lr, Tensor):
        return lr.to(p.device, p.dtype).view(-1, *([1] * (p.dim() - 1)))
    return lr


def _fusable(live: list[tuple[Tensor, Tensor, Tensor]], lr: float | Tensor) -> bool:
    """Whether torch's fused Adam can take these parameters: on the CPU or CUDA, floating,
    and a learning rate it can read without waiting for a device."""
    return (hasattr(torch, "_fused_adam_") and all(p.device.type in ("cpu", "cuda") and p.is_floating_point()
                                                   for p, _, _ in live)
            and not (isinstance(lr, Tensor) and not reads_are_free(lr.device)))


def _lr_groups(lr: float | Tensor) -> list[tuple[float, list[int] | None]]:
    """The distinct learning rates and the models that take each (None: every model)."""
    values = lr.flatten().tolist() if isinstance(lr, Tensor) else [float(lr)]
    if len(set(values)) == 1:
        return [(values[0], None)]
    return [(value, [i for i, x in enumerate(values) if x == value]) for value in sorted(set(values))]


class StackedAdam:
    """Adam over parameters whose first axis is the model.

    Parameters
    ----------
    params : sequence of Tensor
        Stacked parameters ``[P, ...]``.
    lr : float or Tensor [P]
        Learning rate(s).
    betas, eps, weight_decay
        As ``torch.optim.Adam`` (L2 decay added to the gradient).
    stacked : bool, default True
        False: the parameters of one model without a model axis (a pack of one).
    """

    def __init__(self, params: Sequence[Tensor], lr: float | Tensor = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0, *,
                 stacked: bool = True) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps, self.weight_decay, self.stacked = lr, betas, eps, weight_decay, stacked
        self.m = [torch.zeros_like(_lead(p, stacked)) for p in self.params]
        self.v = [torch.zeros_like(_lead(p, stacked)) for p in self.params]
        self.t = 0
        self._steps: dict[torch.device, Tensor] = {}  # the fused op's step count, one per device

    @torch.no_grad()
    def step(self) -> None:
        """One Adam step of every model: fused where torch has it, else elementwise."""
        live = [(p, m, v) for p, m, v in zip(self.params, self.m, self.v) if p.grad is not None]
        groups = _lr_groups(self.lr) if live and _fusable(live, self.lr) else None
        if groups is None:
            self.step_elementwise()
            return
        self.t += 1
        for device in {p.device for p, _, _ in live} - self._steps.keys():
            self._steps[device] = torch.zeros((), device=device)
        for count in self._steps.values():
            count.fill_(self.t)
        b1, b2 = self.betas
        for lr, models in groups:
            params, grads, ms, vs, counts = [], [], [], [], []
            for param, m, v in live:
                tensors = (_lead(param, self.stacked), _lead(param.grad, self.stacked), m, v)
                for out, t in zip((params, grads, ms, vs), tensors):
                    out.extend([t] if models is None else [t[i] for i in models])
                counts.extend([self._steps[param.device]] * (1 if models is None else len(models)))
            torch._fused_adam_(params, grads, ms, vs, [], counts, lr=lr, beta1=b1, beta2=b2,
                               weight_decay=self.weight_decay, eps=self.eps, amsgrad=False, maximize=False)

    @torch.no_grad()
    def step_elementwise(self) -> None:
        """One Adam step in elementwise torch ops (any device; the fused step's reference)."""
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for param, m, v in zip(self.params, self.m, self.v):
            if param.grad is None:
                continue
            p, g = _lead(param, self.stacked), _lead(param.grad, self.stacked)
            if self.weight_decay:
                g = g.add(p, alpha=self.weight_decay)
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / c2).sqrt_().add_(self.eps)
            p.sub_(_per_model(self.lr, p) * (m / c1) / denom)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


class StackedSGD:
    """SGD with momentum, Nesterov's or the heavy ball, and L2 weight decay
    (``torch.optim.SGD`` semantics, dampening 0) and per-model lr."""

    def __init__(self, params: Sequence[Tensor], lr: float | Tensor = 1e-2, momentum: float = 0.9,
                 nesterov: bool = False, weight_decay: float = 0.0, *, stacked: bool = True) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.momentum, self.stacked = lr, momentum, stacked
        self.nesterov, self.weight_decay = nesterov, weight_decay
        self.buf: list[Tensor | None] = [None] * len(self.params)

    @torch.no_grad()
    def step(self) -> None:
        for i, param in enumerate(self.params):
            if param.grad is None:
                continue
            p, d = _lead(param, self.stacked), _lead(param.grad, self.stacked)
            if self.weight_decay:
                d = d.add(p, alpha=self.weight_decay)
            if self.momentum:
                self.buf[i] = d.clone() if self.buf[i] is None else self.buf[i].mul_(self.momentum).add_(d)
                d = d.add(self.buf[i], alpha=self.momentum) if self.nesterov else self.buf[i]
            p.sub_(_per_model(self.lr, p) * d)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


@torch.no_grad()
def clip_per_model(params: Sequence[Tensor], max_norm: float, *, stacked: bool = True) -> Tensor:
    """Scale each model's gradients so its total norm is at most ``max_norm``.

    Same coefficient as ``torch.nn.utils.clip_grad_norm_`` applied to each model alone:
    ``min(1, max_norm / (norm + 1e-6))``, the norm of the parameters' norms. Returns the
    per-model norms before clipping. Each gradient is read once for its norms (no squared
    copy) and, on the CPU, scaled only when some model's coefficient is below 1.
    """
    grads = [_lead(p.grad, stacked) for p in params if p.grad is not None]
    norms = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], 1),
                                     dim=1)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    if not reads_are_free(coef.device) or bool((coef < 1).any()):
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))
    return norms
