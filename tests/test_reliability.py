"""Bad input and faults: one clear line, exit 2, nothing written; limits before allocation."""

import json
import os
import stat
import struct

import pandas as pd
import pytest
import torch

from topowire._io import atomic_dir, write_table
from topowire.cli import main
from topowire.topology import Population, er_graph, read_population, write_population


def _err(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture
def pop(tmp_path):
    path = tmp_path / "p.jsonl"
    write_population(Population(tuple(er_graph(8, 0.4, seed=s) for s in range(3))), path)
    return path


RECIPE = '[population]\nname = "x"\n[[family]]\nkind = "{kind}"\ncount = {count}\nn = 10\n{extra}\n'


@pytest.mark.parametrize("argv, files, message", [
    (["features", "{dir}/big.jsonl", "-o", "{dir}/f.csv"], {"big.jsonl": '{"n": 1000000000, "edges": [[0, 1]]}\n'},
     "n = 1,000,000,000 exceeds the limit of 100,000 nodes in one graph; raise it with TOPOWIRE_MAX_NODES"),
    (["generate", "{dir}/r.toml", "-o", "{dir}/x.jsonl"],
     {"r.toml": RECIPE.format(kind="er", count=100000000000, extra="p = 0.1")},
     "count = 100,000,000,000 exceeds the limit of 1,000,000 graphs"),
    (["generate", "{dir}/r.toml", "-o", "{dir}/x.jsonl"],
     {"r.toml": RECIPE.format(kind="ws", count=1, extra='k = "9**9**9**9"\np = 0.1')}, "is too large"),
    (["generate", "--family", "ba", "--n", "10000000", "--m", "2", "-o", "{dir}/x.jsonl"], {}, "TOPOWIRE_MAX_NODES"),
    (["generate", "--family", "er", "--n", "50000", "--p", "0.05", "-o", "{dir}/x.jsonl"], {},
     "over the limit of 1,024 MiB for one allocation; raise it with TOPOWIRE_MAX_MEMORY_MB"),
])
def test_tiny_inputs_that_ask_for_too_much_are_refused(tmp_path, capsys, argv, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert main([a.format(dir=tmp_path) for a in argv]) == 2
    assert message in _err(capsys)
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "f.csv").exists()


def test_limits_are_raised_by_their_variables(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TOPOWIRE_MAX_NODES", "5")
    assert main(["generate", "--family", "er", "--n", "8", "--p", "0.5", "-o", str(tmp_path / "a.jsonl")]) == 2
    assert "n = 8 exceeds the limit of 5 nodes" in _err(capsys)
    monkeypatch.setenv("TOPOWIRE_MAX_NODES", "8")
    assert main(["generate", "--family", "er", "--n", "8", "--p", "0.5", "-o", str(tmp_path / "a.jsonl")]) == 0
    monkeypatch.setenv("TOPOWIRE_MAX_NODES", "lots")
    assert main(["generate", "--family", "er", "--n", "8", "--p", "0.5", "-o", str(tmp_path / "b.jsonl")]) == 2
    assert "TOPOWIRE_MAX_NODES must be a positive integer" in _err(capsys)


def test_a_model_file_whose_spec_was_enlarged_is_refused_before_building(tmp_path, pop, capsys):
    assert main(["compile", str(pop), "-o", str(tmp_path / "m")]) == 0
    path = next((tmp_path / "m").glob("*.safetensors"))
    raw = path.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + size])
    spec = json.loads(header["__metadata__"]["topowire"])
    spec["wiring"]["n_neurons"] = 100000
    header["__metadata__"]["topowire"] = json.dumps(spec)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    (tmp_path / "t.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + size:])
    capsys.readouterr()
    assert main(["export", str(tmp_path / "t.safetensors"), "--format", "torchscript", "-o", str(tmp_path / "x.pt")]) == 2
    assert "the spec describes 100,000 neurons and d_out = 2 but the file's readout tensor has shape [2, 8]" in _err(capsys)
    assert main(["export", str(path), "--format", "torchscript", "--seq-len", "1000000", "--batch", "1000",
                 "-o", str(tmp_path / "x.pt")]) == 2
    assert "export trace of batch 1000 x seq_len 1,000,000 would take" in _err(capsys)
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("extra, message", [
    (["--n-train", "0"], "n_train must be"),
    (["--lr", "inf"], "lr must be"),
    (["--clip", "-1"], "clip must be"),
    (["--device", "cuda"], "is not available"),
])
def test_train_refuses_bad_options_before_writing(tmp_path, pop, capsys, extra, message):
    if extra[0] == "--device" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["train", str(pop), "--db", str(tmp_path / "r.db"), "--epochs", "1", *extra]) == 2
    assert message in _err(capsys)
    assert not (tmp_path / "r.db").exists()


def test_features_jobs_zero_and_fit_group_missing_are_errors(tmp_path, pop, capsys):
    assert main(["features", str(pop), "-o", str(tmp_path / "f.csv"), "-j", "0"]) == 2
    assert "n_jobs must be a count of processes (>= 1) or negative (-1: every core), got n_jobs = 0" in _err(capsys)
    table = pd.DataFrame({"a": range(12), "b": [i % 3 for i in range(12)], "y": [i * 0.1 for i in range(12)],
                          "family": ["x", "y"] * 6})
    table.to_csv(tmp_path / "t.csv", index=False)
    args = ["fit", "--table", str(tmp_path / "t.csv"), "--outcome", "y", "--columns", "a,b", "--trees", "5"]
    assert main([*args, "--group", "nope", "-o", str(tmp_path / "p.skops")]) == 2
    assert "group column 'nope' is not in the table" in _err(capsys)
    assert not (tmp_path / "p.skops").exists()
    assert main([*args, "--trees", "0", "-o", str(tmp_path / "p.skops")]) == 2


def test_run_with_a_bad_task_writes_nothing(tmp_path, capsys):
    assert main(["run", "--task", "bogus", "-o", str(tmp_path / "study")]) == 2
    assert "bogus" in _err(capsys)
    assert not (tmp_path / "study").exists()


def test_population_files_must_be_utf8_and_whole(tmp_path, pop):
    from topowire.errors import FileFormatError

    lines = pop.read_bytes().splitlines(keepends=True)
    assert json.loads(lines[0])["count"] == 3
    (tmp_path / "cut.jsonl").write_bytes(b"".join(lines[:-1]))
    with pytest.raises(FileFormatError, match="announces 3 topologies but the file holds 2"):
        read_population(tmp_path / "cut.jsonl")
    (tmp_path / "bad.jsonl").write_bytes(lines[0] + lines[1].replace(b'"er"', b'"e\xffr"'))
    with pytest.raises(FileFormatError, match=r"bad.jsonl:2: not valid UTF-8"):
        read_population(tmp_path / "bad.jsonl")


def test_written_files_respect_the_umask_and_stale_temporaries_go(tmp_path):
    old = os.umask(0o022)
    try:
        stale = tmp_path / ".t.csv.pid999999999.abc.tmp"  # left by a process that no longer runs
        stale.write_text("half")
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
        assert stat.S_IMODE((tmp_path / "t.csv").stat().st_mode) == 0o644
        assert not stale.exists()
        with atomic_dir(tmp_path / "folder", "report") as d:
            (d / "x").write_text("1")
        assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "t.csv"]


def test_an_unwritable_output_is_named_not_its_temporary(tmp_path):
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(OSError) as info:
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "out.csv")
    assert info.value.filename == str(tmp_path / "out.csv")
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
