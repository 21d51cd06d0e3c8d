"""The Reber grammar tasks: ``reber``, ``reber-next`` and ``embedded-reber``.

Strings over the 7 symbols BTPSXVE, one-hot and zero-padded after each length
(:func:`encode_strings`); the strings come from :mod:`topowire.data.reber`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from topowire.data import reber
from topowire.data.tasks.base import Task, TaskSpec, register_task

__all__ = ["encode_strings"]


def encode_strings(strings: list[str]) -> tuple[Tensor, Tensor]:
    """One-hot ``[N, T_max, 7]`` over BTPSXVE, zero-padded, and the lengths ``[N]``."""
    t_max = max(len(s) for s in strings)
    x = np.zeros((len(strings), t_max, len(reber.ALPHABET)), dtype=np.float32)
    for i, s in enumerate(strings):
        x[i, np.arange(len(s)), [reber.INDEX[c] for c in s]] = 1.0
    return torch.from_numpy(x), torch.tensor([len(s) for s in strings])


def _per_step_targets(strings: list[str], t_max: int) -> Tensor:
    y = np.zeros((len(strings), t_max, len(reber.ALPHABET)), dtype=np.float32)
    for i, s in enumerate(strings):
        y[i, : len(s)] = reber.next_symbol_sets(s)
    return torch.from_numpy(y)


_SAMPLERS = {"reber": reber.make_reber, "embedded-reber": reber.make_embedded_reber,
             "reber-next": reber.make_reber_next}


def _build(spec: TaskSpec, *, seed: int, n_train: int, n_test: int, thesis_csv=None) -> Task:
    if thesis_csv is not None:
        strings, labels = reber.read_thesis_csv(thesis_csv)
        cut = int(0.8 * len(strings))
        split = reber.StringSplit(strings[:cut], labels[:cut], strings[cut:], labels[cut:])
    else:
        split = _SAMPLERS[spec.name](n_train, n_test, seed=seed)
    x_tr, l_tr = encode_strings(split.train)
    x_te, l_te = encode_strings(split.test)
    if spec.objective == "multilabel":
        y_tr, y_te = _per_step_targets(split.train, x_tr.shape[1]), _per_step_targets(split.test, x_te.shape[1])
        return Task(spec.name, spec.objective, x_tr, y_tr, l_tr, x_te, y_te, l_te, 7, 7, per_step=True)
    return Task(spec.name, spec.objective, x_tr, torch.from_numpy(split.train_y), l_tr, x_te,
                torch.from_numpy(split.test_y), l_te, 7, 2)


# (train, test) sizes: enough single-edit negatives for models to separate from chance
# within the default training budget (measured, see README)
register_task(TaskSpec("reber", "grammatical vs ungrammatical Reber strings", "classification", True,
                       _build, chance=0.5, sizes=(4000, 400),
                       options={"thesis_csv": "Reber only: read the strings and labels of the thesis's CSV instead of "
                                              "sampling (the first 80% train, the rest test, in file order)"}))
register_task(TaskSpec("reber-next", "legal next Reber symbols at every step", "multilabel", True, _build,
                       sizes=(1000, 200)))
register_task(TaskSpec("embedded-reber", "embedded Reber strings (long-range)", "classification", True, _build,
                       chance=0.5, sizes=(4000, 400)))
