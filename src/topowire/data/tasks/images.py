"""Image tasks: MNIST in its views (flat, resized, sequential rows or pixels, permuted),
Fashion-MNIST (flat) and scikit-learn's 8x8 digits (flat).

MNIST is read from the standard IDX files of ``--data-dir`` (or ``$TOPOWIRE_MNIST_DIR``),
else from the bundled subset (:mod:`topowire.data.mnist`); Fashion-MNIST, all 60,000 +
10,000 images, from ``--data-dir``, ``$TOPOWIRE_FASHION_MNIST_DIR`` or the Debian package
``dataset-fashion-mnist``; the digits (1,797 images) come with scikit-learn. A smaller
``n_train`` / ``n_test`` takes a seeded random subset (the files may be sorted by class).
"""

from __future__ import annotations

import numpy as np
import torch

from topowire.data.mnist import find_fashion_mnist, load_mnist, mnist_view, read_idx_folder
from topowire.data.tasks.base import Task, TaskSpec, register_task

_VIEWS = {"mnist": "flat", "mnist-50": "resized", "smnist-rows": "rows", "smnist-pixels": "pixels",
          "psmnist": "permuted", "fashion-mnist": "flat"}


_DATA_DIR = {"data_dir": "Image tasks: the folder with the standard IDX files (unset: MNIST's $TOPOWIRE_MNIST_DIR, "
                         "else the bundled subset; Fashion-MNIST's $TOPOWIRE_FASHION_MNIST_DIR, else the Debian "
                         "package dataset-fashion-mnist)"}


def _images(name: str, split: str, data_dir, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if name == "fashion-mnist":
        return read_idx_folder(find_fashion_mnist(data_dir), split, "Fashion-MNIST")
    if name == "digits":  # 8x8 images of 0-16, split 80/20 by a permutation of the data seed
        from sklearn.datasets import load_digits

        digits = load_digits()
        order = np.random.default_rng([seed, 0xD161]).permutation(len(digits.target))
        cut = int(0.8 * len(order))
        pick = order[:cut] if split == "train" else order[cut:]
        return digits.images[pick] * (255 / 16), digits.target[pick]
    return load_mnist(split, data_dir)


def _build(spec: TaskSpec, *, seed: int, n_train: int | None, n_test: int | None, data_dir=None) -> Task:
    out = []
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = _images(spec.name, split, data_dir, seed)
        if n is not None:
            pick = np.random.default_rng([seed, split == "test"]).permutation(len(labels))[:n]
            images, labels = images[pick], labels[pick]
        x = mnist_view(images, _VIEWS[spec.name], seed=seed) if spec.name != "digits" else \
            torch.from_numpy(images.reshape(len(images), 64).astype(np.float32) / 255)
        lengths = torch.full((x.shape[0],), x.shape[1]) if x.ndim == 3 else None
        out.append((x, torch.from_numpy(labels.astype(np.int64)), lengths))
    (x_tr, y_tr, l_tr), (x_te, y_te, l_te) = out
    side = int(round(x_tr.shape[-1] ** 0.5))
    image = (1, side, side) if x_tr.ndim == 2 and side * side == x_tr.shape[-1] else None
    return Task(spec.name, spec.objective, x_tr, y_tr, l_tr, x_te, y_te, l_te, x_tr.shape[-1], 10, image=image)


for name, sequence, doc in (("mnist", False, "MNIST digits, flat 784 pixels"),
                            ("mnist-50", False, "MNIST resized to 50x50 (2,500 inputs)"),
                            ("smnist-rows", True, "sequential MNIST, 28 rows of 28 pixels"),
                            ("smnist-pixels", True, "sequential MNIST, 784 pixels"),
                            ("psmnist", True, "permuted sequential MNIST, 784 pixels")):
    register_task(TaskSpec(name, doc, "classification", sequence, _build, chance=0.1, options=_DATA_DIR))
register_task(TaskSpec("fashion-mnist", "Fashion-MNIST clothing images, flat 784 pixels (60,000 + 10,000)",
                       "classification", False, _build, chance=0.1, options=_DATA_DIR))
register_task(TaskSpec("digits", "scikit-learn's 8x8 digits, flat 64 pixels (1,437 + 360)", "classification", False,
                       _build, chance=0.1))
