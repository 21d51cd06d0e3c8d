"""Plug-ins are found, not listed: a target file and a task file dropped into a copy of the
package train from the command line with no other edit."""

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from topowire.plugins import discover

SRC = Path(__file__).resolve().parents[1] / "src" / "topowire"

TOY_TARGET = '''
"""A toy cell: softsign over the masked recurrence, its recurrent weights scaled at birth."""
import dataclasses

import torch

from topowire import checks
from topowire.compiler.cells import Cell, register_cell
from topowire.compiler.targets import register_target
from topowire.compiler.targets.recurrent import CellTarget

register_cell("rnn-toy", Cell(1, lambda gx, gh, h, c, residual, gamma: (torch.nn.functional.softsign(gx + gh),
                                                                    None)))


@dataclasses.dataclass(frozen=True)
class ToyOptions:
    """The toy cell's options.

    Parameters
    ----------
    toy_scale : float
        Multiplies the recurrent weights at initialisation.
    """

    toy_scale: float = dataclasses.field(default=1.0, metadata={"domain": checks.Domain("float", 0, 10)})

    def __post_init__(self) -> None:
        checks.validate(self)


class ToyTarget(CellTarget):
    kinds = ("rnn-toy",)
    doc = "a masked softsign cell (a plug-in)"

    def options(self, kind):
        return ToyOptions

    def initial_tensors(self, wiring, arch, seed, backend="dense"):
        out = super().initial_tensors(wiring, arch, seed, backend)
        out["w_hh"] = out["w_hh"] * arch.toy_scale
        return out


register_target(ToyTarget())
'''

TOY_TASK = '''
"""A toy task: the adding problem at T = 10."""
import torch

from topowire.data.adding import make_adding
from topowire.data.tasks import Task, TaskSpec, register_task


def _build(spec, *, seed, n_train, n_test):
    x_tr, y_tr = make_adding(n_train, 10, seed=seed)
    x_te, y_te = make_adding(n_test, 10, seed=seed + 1)
    full = lambda x: torch.full((x.shape[0],), x.shape[1])  # noqa: E731
    return Task(spec.name, spec.objective, x_tr, y_tr, full(x_tr), x_te, y_te, full(x_te), 2, 1)


register_task(TaskSpec("toy-adding", "adding problem, T = 10", "regression", True, _build, sizes=(64, 32)))
'''


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A copy of topowire with a toy target (an option of its own) and a toy task dropped in."""
    root = tmp_path_factory.mktemp("plugged")
    shutil.copytree(SRC, root / "topowire", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "topowire" / "compiler" / "targets" / "toy.py").write_text(textwrap.dedent(TOY_TARGET))
    (root / "topowire" / "data" / "tasks" / "toy.py").write_text(textwrap.dedent(TOY_TASK))
    return root


def _cli(root: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-m", "topowire.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_a_dropped_in_target_and_task_train_from_the_command_line(package, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[[family]]\nkind = "er"\ncount = 2\nn = 6\np = 0.5\n')
    assert _cli(package, "generate", str(recipe), "-o", "pop.jsonl", cwd=tmp_path).returncode == 0
    help_ = _cli(package, "train", "--help", cwd=tmp_path)
    assert "rnn-toy" in help_.stdout and "--toy-scale" in help_.stdout and "toy-adding" in help_.stdout
    assert re.search(r"--cell \[[^]]*\brnn-toy\]", help_.stdout)  # a layer of the layered form too
    done = _cli(package, "train", "pop.jsonl", "--db", "r.db", "--kind", "rnn-toy", "--toy-scale", "0.5",
                "--task", "toy-adding", "--epochs", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 models" in done.stdout and "2 ok" in done.stdout
    layered = _cli(package, "train", "pop.jsonl", "--db", "l.db", "--kind", "layered", "--cell", "rnn-toy",
                   "--task", "toy-adding", "--epochs", "1", cwd=tmp_path)
    assert layered.returncode == 0 and "2 ok" in layered.stdout, layered.stderr
    bad = _cli(package, "train", "pop.jsonl", "--db", "r2.db", "--kind", "rnn-toy", "--toy-scale", "11",
               "--task", "toy-adding", cwd=tmp_path)
    assert bad.returncode == 2 and "toy_scale" in bad.stderr and not (tmp_path / "r2.db").exists()


def test_an_undeclared_option_is_refused_for_its_own_target_only(package, tmp_path):
    toy = package / "topowire" / "compiler" / "targets" / "toy.py"
    text = toy.read_text()
    toy.write_text(text.replace('toy_scale: float = dataclasses.field(default=1.0, metadata={"domain": '
                                'checks.Domain("float", 0, 10)})', "toy_scale: float = 1.0"))
    try:
        recipe = tmp_path / "r.toml"
        recipe.write_text('[[family]]\nkind = "er"\ncount = 2\nn = 6\np = 0.5\n')
        assert _cli(package, "generate", str(recipe), "-o", "pop.jsonl", cwd=tmp_path).returncode == 0
        assert _cli(package, "train", "--help", cwd=tmp_path).returncode == 0  # every command still starts
        other = _cli(package, "train", "pop.jsonl", "--db", "ok.db", "--kind", "rnn-tanh", "--task", "toy-adding",
                     "--epochs", "1", cwd=tmp_path)
        assert other.returncode == 0, other.stderr  # another target is untouched
        bad = _cli(package, "train", "pop.jsonl", "--db", "bad.db", "--kind", "rnn-toy", "--task", "toy-adding",
                   cwd=tmp_path)
        lines = bad.stderr.strip().splitlines()
        assert bad.returncode == 2 and len(lines) == 1 and "toy_scale" in lines[0] and "declares no domain" in lines[0]
        assert not (tmp_path / "bad.db").exists()
    finally:
        toy.write_text(text)


def test_discover_imports_the_built_ins_first_then_the_rest_by_name():
    import topowire.compiler.targets as targets

    loaded = discover(targets.__name__, targets.__path__, ("relational",))
    assert loaded[0] == "topowire.compiler.targets.relational"
    assert loaded[1:] == sorted(loaded[1:]) and "topowire.compiler.targets.recurrent" in loaded
