"""Input transforms of image tasks: standardisation per channel and the random crop and
flip of graph2nn's CIFAR protocol, applied to flat image batches ``[B, C*H*W]``.

Both are pure functions of their inputs and a seed: the same batch and key give the same
augmented batch, on any device.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from topowire.data.tasks import Task
from topowire.errors import ParameterError

__all__ = ["standardized", "augment", "check_image_task"]


def check_image_task(task: Task, what: str) -> tuple[int, int, int]:
    """The task's image shape, or ParameterError naming ``what`` needs one."""
    if task.image is None:
        raise ParameterError(f"{what} applies to image tasks with static inputs (mnist, mnist-50, fashion-mnist, "
                             f"digits), not {task.name!r}")
    return task.image


def standardized(task: Task) -> Task:
    """The task with its inputs standardised per channel by the training set's mean and
    standard deviation (the test set with the same statistics)."""
    c, _, _ = check_image_task(task, "standardize")
    per_channel = task.x_train.reshape(len(task.x_train), c, -1).transpose(0, 1).reshape(c, -1).double()
    mean, std = per_channel.mean(1), per_channel.std(1).clamp_min(1e-12)

    def norm(x: Tensor) -> Tensor:
        shaped = x.reshape(len(x), c, -1)
        return ((shaped - mean[:, None].float()) / std[:, None].float()).reshape(x.shape)

    return dataclasses.replace(task, x_train=norm(task.x_train), x_test=norm(task.x_test))


def augment(x: Tensor, image: tuple[int, int, int], key: tuple[int, ...]) -> Tensor:
    """A flat image batch randomly cropped and flipped: zero-padded by ``max(1, H // 8)``
    pixels on every side, cropped back to H x W at a uniform offset, and flipped
    left-right with probability 1/2, per example, drawn from ``key`` (CPU generator)."""
    c, h, w = image
    b, q = len(x), max(1, h // 8)
    gen = torch.Generator().manual_seed(_key_seed(key))
    dy, dx = (torch.randint(0, 2 * q + 1, (b,), generator=gen) for _ in range(2))
    flip = torch.rand(b, generator=gen) < 0.5
    padded = torch.nn.functional.pad(x.reshape(b, c, h, w), (q, q, q, q))
    cols = torch.arange(w)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + dx[:, None]
    rows = torch.arange(h) + dy[:, None]
    device = x.device
    out = padded[torch.arange(b, device=device)[:, None, None], :, rows.to(device)[:, :, None],
                 cols.to(device)[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).reshape(b, c * h * w)


def _key_seed(key: tuple[int, ...]) -> int:
    import numpy as np

    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1, dtype=np.uint64)[0] >> 1)
