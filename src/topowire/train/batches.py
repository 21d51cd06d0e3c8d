"""The batches of an epoch: which examples every training step of a pack sees.

One seeded permutation per epoch, from the data stream's key and the epoch
(``numpy.random.default_rng([*stream, epoch])``), cut into batches; with ``bucket`` the
batches hold examples of similar lengths (:func:`epoch_batches`). Every example is in
exactly one batch of an epoch either way.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["epoch_batches", "BUCKET_POOL"]

#: Batches per pool of a bucketed epoch: examples are sorted by length within a pool.
BUCKET_POOL = 50


def epoch_batches(n: int, batch_size: int, key: tuple[int, ...], lengths: Tensor | None = None,
                  bucket: bool = False, pool: int = BUCKET_POOL) -> list[Tensor]:
    """The index batches of one epoch over ``n`` examples.

    Parameters
    ----------
    n, batch_size : int
        Examples and batch size (the last batch may be smaller).
    key : tuple of int
        The stream's key and the epoch: the permutation is
        ``default_rng(key).permutation(n)``.
    lengths : Tensor [n], optional
        Sequence lengths; needed with ``bucket``.
    bucket : bool, default False
        Batches of similar lengths: the permutation is cut into pools of ``pool`` batches,
        each pool sorted by length (a stable sort: ties keep the seeded order) and cut into
        batches, and the batches are shuffled by the same generator.
    pool : int, default BUCKET_POOL
        Batches per pool.

    Returns
    -------
    list of Tensor
        int64 index batches; together they hold every example once.
    """
    rng = np.random.default_rng(list(key))
    order = rng.permutation(n)
    if not bucket or lengths is None:
        return list(torch.from_numpy(order).split(batch_size))
    lens = lengths.numpy() if isinstance(lengths, Tensor) else np.asarray(lengths)
    span = pool * batch_size
    batches = []
    for start in range(0, n, span):
        chunk = order[start:start + span]
        chunk = chunk[np.argsort(lens[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [torch.from_numpy(batches[i]) for i in rng.permutation(len(batches))]
