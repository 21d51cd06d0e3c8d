import gzip

import numpy as np
import pytest
import torch

from topowire.data import load_mnist, make_adding, mnist_view, read_idx
from topowire.errors import FileFormatError, ParameterError


def _idx(data: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, data.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in data.shape)
    return header + data.astype(np.uint8).tobytes()


def _write_mnist(folder, n=6, gz=False):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    for stem, arr in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels),
                      ("t10k-images-idx3-ubyte", images[:2]), ("t10k-labels-idx1-ubyte", labels[:2])):
        raw = _idx(arr)
        (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(raw) if gz else raw)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_on_tiny_files(tmp_path, gz):
    images, labels = _write_mnist(tmp_path, gz=gz)
    x, y = load_mnist("train", tmp_path)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    assert load_mnist("test", tmp_path)[0].shape == (2, 28, 28)


def test_data_dir_from_environment(tmp_path, monkeypatch):
    images, _ = _write_mnist(tmp_path)
    monkeypatch.setenv("TOPOWIRE_MNIST_DIR", str(tmp_path))
    np.testing.assert_array_equal(load_mnist("train")[0], images)


@pytest.mark.parametrize("raw, match", [
    (b"", "bad magic number empty"),
    (b"\x01\x02\x08\x01", "not an IDX file"),
    (bytes([0, 0, 0x0D, 1]) + (4).to_bytes(4, "big") + b"\x00" * 16, "is not unsigned byte"),
    (bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"\x00" * 7, "announces shape \\(10,\\) \\(10 bytes\\) but the file holds 7"),
    (b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
])
def test_corrupt_or_truncated_idx(tmp_path, raw, match):
    (tmp_path / "f").write_bytes(raw)
    with pytest.raises(FileFormatError, match=match):
        read_idx(tmp_path / "f")


def test_missing_files(tmp_path):
    with pytest.raises(FileFormatError, match="has no train-images-idx3-ubyte"):
        load_mnist("train", tmp_path)
    with pytest.raises(FileFormatError, match="does not exist"):
        load_mnist("train", tmp_path / "nope")
    with pytest.raises(ParameterError, match="split must be"):
        load_mnist("valid")


def test_bundled_subset_is_balanced_and_disjoint():
    xtr, ytr = load_mnist("train")
    xte, yte = load_mnist("test")
    assert xtr.shape == (4000, 28, 28) and xte.shape == (1000, 28, 28)
    assert np.bincount(ytr).tolist() == [400] * 10 and np.bincount(yte).tolist() == [100] * 10
    train_rows = {r.tobytes() for r in xtr}
    assert not any(r.tobytes() in train_rows for r in xte)
    assert 20 < xtr.mean() < 50  # MNIST pixels: mostly black, mean about 33


def test_views():
    images, _ = load_mnist("test")
    images = images[:5]
    assert mnist_view(images, "flat").shape == (5, 784)
    assert mnist_view(images, "flat").max() <= 1.0
    r = mnist_view(images, "resized")
    assert r.shape == (5, 2500) and abs(float(r.mean()) - float(mnist_view(images).mean())) < 0.02
    assert mnist_view(images, "rows").shape == (5, 28, 28)
    px, perm = mnist_view(images, "pixels"), mnist_view(images, "permuted", seed=1)
    assert px.shape == perm.shape == (5, 784, 1)
    assert torch.equal(px.sort(dim=1).values, perm.sort(dim=1).values) and not torch.equal(px, perm)
    assert torch.equal(perm, mnist_view(images, "permuted", seed=1))
    with pytest.raises(ParameterError, match="unknown MNIST view"):
        mnist_view(images, "upside-down")


def test_adding_problem():
    x, y = make_adding(100, 20, seed=0)
    assert x.shape == (100, 20, 2) and y.shape == (100, 1)
    assert torch.all(x[..., 1].sum(1) == 2)
    assert torch.all(x[:, :10, 1].sum(1) == 1)
    torch.testing.assert_close((x[..., 0] * x[..., 1]).sum(1, keepdim=True), y)
    assert torch.equal(make_adding(5, 20, seed=3)[0], make_adding(5, 20, seed=3)[0])
    with pytest.raises(ParameterError, match="T must be an integer >= 2"):
        make_adding(5, 1)
