"""Class 5 of the third reliability round: files topowire writes, edited by hand, are
checked against their schema (and their sizes against the limits) before anything uses them."""

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file, save_file

from topowire.cli import main
from topowire.compiler import Arch, compile
from topowire.compiler.export import read_spec, save
from topowire.topology import er_graph

from .conftest import one_error_line


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    d = tmp_path_factory.mktemp("predictor")
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"density": rng.uniform(0, 1, 40), "n_nodes": rng.integers(8, 30, 40)})
    table["test_acc"] = 0.5 + 0.4 * table["density"] + rng.normal(0, 0.02, 40)
    table.to_csv(d / "t.csv", index=False)
    assert main(["fit", "--table", str(d / "t.csv"), "--trees", "5", "-o", str(d / "p.skops")]) == 0
    return d


def _edit_meta(meta):
    return {
        "list": lambda m: [m],
        "no-outcome": lambda m: {k: v for k, v in m.items() if k != "outcome"},
        "bad-ranges": lambda m: {**m, "training_ranges": {"density": [1.0]}},
        "nan-interval": lambda m: {**m, "interval": {"half_width": "wide"}},
    }[meta]


@pytest.mark.parametrize("edit, message", [
    ("list", "not a topowire predictor's metadata"),
    ("no-outcome", "'outcome' must be a column name"),
    ("bad-ranges", "'training_ranges' must map feature names to [min, max]"),
    ("nan-interval", "'interval' must hold a finite half_width"),
    ("latin1", "is not valid UTF-8"),
    ("deep", "nests brackets"),
    ("pickled-member", "skops cannot load it"),
    ("bomb", "the predictor archive p.skops unpacked would take"),
])
def test_an_edited_predictor_is_one_line(edit, message, predictor, tmp_path, capsys, monkeypatch):
    for name in ("p.skops", "p.skops.json", "t.csv"):
        (tmp_path / name).write_bytes((predictor / name).read_bytes())
    meta_path, model_path = tmp_path / "p.skops.json", tmp_path / "p.skops"
    meta = json.loads(meta_path.read_text())
    if edit in ("list", "no-outcome", "bad-ranges", "nan-interval"):
        meta_path.write_text(json.dumps(_edit_meta(edit)(meta)))
    elif edit == "latin1":
        meta_path.write_bytes(meta_path.read_bytes().replace(b"test_acc", b"test_\xe9acc"))
    elif edit == "deep":
        meta["extra"] = json.loads("[" * 200 + "]" * 200)  # json.dumps refuses nothing; the reader bounds it
        meta_path.write_text(json.dumps(meta))
    elif edit == "pickled-member":
        _replace_first_npy(model_path, np.array([{"a": 1}], dtype=object))
    elif edit == "bomb":
        monkeypatch.setenv("TOPOWIRE_MAX_MEMORY_MB", "1")
        with zipfile.ZipFile(model_path, "a", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("padding.bin", b"\0" * (8 * 2**20))
    assert main(["predict", str(model_path), str(tmp_path / "t.csv"), "-o", str(tmp_path / "out.csv")]) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "out.csv").exists()


def _replace_first_npy(path, array):
    """Rewrite the first .npy member of a skops archive with ``array`` (pickled, for an object array)."""
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    name = next(k for k in members if k.endswith(".npy"))
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    members[name] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    save(compile(er_graph(16, 0.3, seed=0), Arch("gru")), path)
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["wiring"].update(edges=[[0, 99]]), "a wiring's edge must be an integer with 0 <= a wiring's edge <= 15"),
    (lambda s: s["wiring"].update(edges=[[0, 10**30]]), "a wiring's edge must be an integer"),
    (lambda s: s["arch"].update(d_in=10**12), "the spec describes d_in = 1,000,000,000,000"),
    (lambda s: s["arch"].update(d_in=2**20), "the spec describes d_in = 1,048,576"),
    (lambda s: s["arch"].update(d_out=10**6), "the spec describes 16 neurons and d_out = 1000000"),
    (lambda s: s["arch"].update(kind="iterative", iterations=10**12), "iterations must be an integer"),
    (lambda s: s.update(extra=json.loads("[" * 100 + "]" * 100)), "nests brackets"),
])
def test_an_edited_model_spec_is_refused_before_building(edit, message, model, tmp_path, capsys):
    spec = read_spec(model)
    edit(spec)
    path = tmp_path / "m.safetensors"
    save_file(load_file(str(model)), str(path), metadata={"topowire": json.dumps(spec)})
    assert main(["export", str(path), "--format", "torchscript", "-o", str(tmp_path / "m.pt")]) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "m.pt").exists()
