"""Image tasks: MNIST in its views (flat, resized, sequential rows or pixels, permuted).

Images are read from the standard IDX files of ``--data-dir`` (or ``$TOPOWIRE_MNIST_DIR``),
else from the bundled subset (:mod:`topowire.data.mnist`); a smaller ``n_train`` /
``n_test`` takes a seeded random subset (the files may be sorted by digit).
"""

from __future__ import annotations

import numpy as np
import torch

from topowire.data.mnist import load_mnist, mnist_view
from topowire.data.tasks import Task, TaskSpec, register_task

_VIEWS = {"mnist": "flat", "mnist-50": "resized", "smnist-rows": "rows", "smnist-pixels": "pixels",
          "psmnist": "permuted"}


def _build(spec: TaskSpec, *, seed: int, n_train: int | None, n_test: int | None, data_dir=None) -> Task:
    out = []
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = load_mnist(split, data_dir)
        if n is not None:
            pick = np.random.default_rng([seed, split == "test"]).permutation(len(labels))[:n]
            images, labels = images[pick], labels[pick]
        x = mnist_view(images, _VIEWS[spec.name], seed=seed)
        lengths = torch.full((x.shape[0],), x.shape[1]) if x.ndim == 3 else None
        out.append((x, torch.from_numpy(labels.astype(np.int64)), lengths))
    (x_tr, y_tr, l_tr), (x_te, y_te, l_te) = out
    return Task(spec.name, spec.objective, x_tr, y_tr, l_tr, x_te, y_te, l_te, x_tr.shape[-1], 10)


for name, sequence, doc in (("mnist", False, "MNIST digits, flat 784 pixels"),
                            ("mnist-50", False, "MNIST resized to 50x50 (2,500 inputs)"),
                            ("smnist-rows", True, "sequential MNIST, 28 rows of 28 pixels"),
                            ("smnist-pixels", True, "sequential MNIST, 784 pixels"),
                            ("psmnist", True, "permuted sequential MNIST, 784 pixels")):
    register_task(TaskSpec(name, doc, "classification", sequence, _build, chance=0.1, options={
        "data_dir": "Image tasks: the folder with the standard IDX files (unset: $TOPOWIRE_MNIST_DIR, else the "
                    "bundled subset)"}))
