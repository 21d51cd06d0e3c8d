"""Class 6 of the third reliability round: a killed write leaves nothing the next write
beside it does not remove, and a full disk is one line naming the path, nothing half-written."""

import os
import subprocess
import sys

import pytest

from topowire._io import process_alive
from topowire.cli import main
from topowire.topology import Population, er_graph, write_population

from .conftest import one_error_line


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_zombie_is_not_a_live_writer():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    while open(f"/proc/{proc.pid}/stat").read().rpartition(")")[2].split()[0] != "Z":
        pass  # waits on the child's own state change: it exits, its parent has not reaped it
    assert process_alive(os.getpid()) and not process_alive(proc.pid)
    proc.wait()


def test_a_killed_compile_leaves_nothing_the_next_write_beside_it_keeps(tmp_path, capsys):
    stale = tmp_path / f".models.pid{_dead_pid()}.x1y2"  # what a compile killed mid-write leaves
    stale.mkdir()
    (stale / "00000_half.safetensors").write_bytes(b"half")
    stale_file = tmp_path / f".t.csv.pid{_dead_pid()}.abc.tmp"
    stale_file.write_text("half")
    write_population(Population(tuple(er_graph(10, 0.3, seed=s) for s in range(3))), tmp_path / "p.jsonl")
    assert main(["compile", str(tmp_path / "p.jsonl"), "-o", str(tmp_path / "other")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "p.jsonl"]


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB file system, full (skipped where this process may not mount one)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    fd = os.open(mount / "fill", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 1024):
            pass
    except OSError:
        pass
    os.close(fd)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)  # lazy: a file still open cannot keep it


@pytest.mark.parametrize("argv, target", [
    (["compile", "{pop}", "-o", "{disk}/models"], "models"),
    (["generate", "--family", "er", "--n", "60", "--p", "0.3", "--count", "300", "-o", "{disk}/p.jsonl"], "p.jsonl"),
    (["export", "{model}", "--format", "torchscript", "-o", "{disk}/m.pt"], "m.pt"),
    (["export", "{model}", "--format", "onnx", "-o", "{disk}/m.onnx"], "m.onnx"),
    (["results", "--db", "{db}", "-o", "{disk}/r.csv"], "r.csv"),
    (["train", "{pop}", "--db", "{disk}/r.db", "--epochs", "1", "--n-train", "16", "--n-test", "8"], "r.db"),
])
def test_a_full_disk_is_one_line_naming_the_path(argv, target, trained, full_disk, tmp_path, capsys):
    models = tmp_path / "models"
    assert main(["compile", str(trained["pop"]), "-o", str(models)]) == 0
    model = next(models.glob("*.safetensors"))
    pop = tmp_path / "wide.jsonl"
    write_population(Population(tuple(er_graph(60, 0.3, seed=s) for s in range(30))), pop)
    capsys.readouterr()
    code = main([a.format(pop=pop, disk=full_disk, model=model, db=trained["db"]) for a in argv])
    assert code == 2
    line = one_error_line(capsys)
    assert str(full_disk / target) in line and ("No space left" in line or "disk" in line), line
    assert sorted(p.name for p in full_disk.iterdir()) == ["fill"]


def test_a_writer_reporting_a_full_disk_in_its_own_words_is_an_os_error(tmp_path, monkeypatch, capsys):
    from safetensors import SafetensorError

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr("safetensors.torch.save_file", full)
    write_population(Population((er_graph(10, 0.3, seed=0),)), tmp_path / "p.jsonl")
    assert main(["compile", str(tmp_path / "p.jsonl"), "-o", str(tmp_path / "models")]) == 2
    assert one_error_line(capsys) == f"error: No space left on device: {tmp_path / 'models'}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl"]
