"""Tasks: a data set as tensors plus what to predict and how to score it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from topowire.data import reber
from topowire.data.adding import make_adding
from topowire.data.mnist import load_mnist, mnist_view
from topowire.errors import ParameterError

__all__ = ["Task", "TASKS", "CHANCE", "make_task", "encode_strings"]

#: Task name -> (kind, sequence?, description).
TASKS = {
    "reber": ("classification", True, "grammatical vs ungrammatical Reber strings"),
    "reber-next": ("multilabel", True, "legal next Reber symbols at every step"),
    "embedded-reber": ("classification", True, "embedded Reber strings (long-range)"),
    "adding": ("regression", True, "adding problem, T = 50"),
    "mnist": ("classification", False, "MNIST digits, flat 784 pixels"),
    "mnist-50": ("classification", False, "MNIST resized to 50x50 (2,500 inputs)"),
    "smnist-rows": ("classification", True, "sequential MNIST, 28 rows of 28 pixels"),
    "smnist-pixels": ("classification", True, "sequential MNIST, 784 pixels"),
    "psmnist": ("classification", True, "permuted sequential MNIST, 784 pixels"),
}

#: Test accuracy of a guess, for the tasks whose classes are balanced (both Reber tasks
#: draw as many negatives as positives; MNIST has ten roughly equal classes).
CHANCE = {"reber": 0.5, "embedded-reber": 0.5, **{k: 0.1 for k in TASKS if "mnist" in k}}


#: Default (train, test) sizes of the string tasks: enough single-edit negatives for models
#: to separate from chance within the default training budget (measured, see README).
DEFAULT_SIZES = {"reber": (4000, 400), "embedded-reber": (4000, 400)}


@dataclass(frozen=True, eq=False)
class Task:
    """Tensors of one task.

    Attributes
    ----------
    name, kind : str
        ``kind`` is ``classification`` (y: class ids), ``multilabel`` (y: multi-hot per
        step) or ``regression`` (y: values).
    x_train, y_train, len_train, x_test, y_test, len_test : Tensor
        Inputs ``[N, T, d_in]`` (sequences, zero-padded after each length) or ``[N, d_in]``.
        ``len_*`` is None for static inputs.
    d_in, d_out : int
        Input width and readout width.
    """

    name: str
    kind: str
    x_train: Tensor
    y_train: Tensor
    len_train: Tensor | None
    x_test: Tensor
    y_test: Tensor
    len_test: Tensor | None
    d_in: int
    d_out: int

    @property
    def sequence(self) -> bool:
        return self.len_train is not None

    @property
    def per_step(self) -> bool:
        """Targets at every step (next-symbol prediction)."""
        return self.kind == "multilabel"


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


def make_task(name: str, *, seed: int = 0, n_train: int | None = None, n_test: int | None = None,
              data_dir: str | None = None, thesis_csv: str | None = None) -> Task:
    """Build a task's tensors.

    Parameters
    ----------
    name : str
        A key of :data:`TASKS`.
    seed : int
        Data seed (strings, adding sequences, MNIST permutation).
    n_train, n_test : int, optional
        Sizes (defaults: :data:`DEFAULT_SIZES`, 1000/200 for ``reber-next``, adding 2000/500,
        MNIST all available). A smaller MNIST
        size takes a random subset drawn with ``seed``.
    data_dir : str, optional
        MNIST folder with the IDX files (see :func:`topowire.data.mnist.load_mnist`). Unset:
        the bundled subset.
    thesis_csv : str, optional
        For ``reber``: read the strings and labels of the thesis's CSV instead of sampling
        (the first 80% train, the rest test, in file order).
    """
    if name not in TASKS:
        raise ParameterError(f"unknown task {name!r}: expected one of {', '.join(TASKS)}")
    kind = TASKS[name][0]
    if name in ("reber", "embedded-reber", "reber-next"):
        if thesis_csv is not None:
            if name != "reber":
                raise ParameterError("--thesis-csv holds classification data for the 'reber' task")
            strings, labels = reber.read_thesis_csv(thesis_csv)
            cut = int(0.8 * len(strings))
            split = reber.StringSplit(strings[:cut], labels[:cut], strings[cut:], labels[cut:])
        else:
            make = {"reber": reber.make_reber, "embedded-reber": reber.make_embedded_reber,
                    "reber-next": reber.make_reber_next}[name]
            default = DEFAULT_SIZES.get(name, (1000, 200))
            split = make(default[0] if n_train is None else n_train, default[1] if n_test is None else n_test,
                         seed=seed)
        x_tr, l_tr = encode_strings(split.train)
        x_te, l_te = encode_strings(split.test)
        if kind == "multilabel":
            y_tr, y_te = _per_step_targets(split.train, x_tr.shape[1]), _per_step_targets(split.test, x_te.shape[1])
            d_out = 7
        else:
            y_tr, y_te, d_out = torch.from_numpy(split.train_y), torch.from_numpy(split.test_y), 2
        return Task(name, kind, x_tr, y_tr, l_tr, x_te, y_te, l_te, 7, d_out)
    if name == "adding":
        x_tr, y_tr = make_adding(2000 if n_train is None else n_train, 50, seed=seed)
        x_te, y_te = make_adding(500 if n_test is None else n_test, 50, seed=seed + 1)
        full = lambda x: torch.full((x.shape[0],), x.shape[1])  # noqa: E731
        return Task(name, kind, x_tr, y_tr, full(x_tr), x_te, y_te, full(x_te), 2, 1)
    view = {"mnist": "flat", "mnist-50": "resized", "smnist-rows": "rows", "smnist-pixels": "pixels",
            "psmnist": "permuted"}[name]
    out = []
    for split_name, n in (("train", n_train), ("test", n_test)):
        images, labels = load_mnist(split_name, data_dir)
        if n is not None:  # a seeded random subset: files may be sorted by digit (the bundled one is)
            pick = np.random.default_rng([seed, split_name == "test"]).permutation(len(labels))[:n]
            images, labels = images[pick], labels[pick]
        x = mnist_view(images, view, seed=seed)
        lengths = torch.full((x.shape[0],), x.shape[1]) if x.ndim == 3 else None
        out.append((x, torch.from_numpy(labels.astype(np.int64)), lengths))
    (x_tr, y_tr, l_tr), (x_te, y_te, l_te) = out
    return Task(name, kind, x_tr, y_tr, l_tr, x_te, y_te, l_te, x_tr.shape[-1], 10)
