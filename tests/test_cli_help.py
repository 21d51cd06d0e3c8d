"""The command line teaches itself: help on every option, defaults that learn, progress."""

import dataclasses
import inspect
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from topowire.cli import COMMANDS, all_commands, main
from topowire.cli.options import _registry_help
from topowire.cli.options import param_help as _param_help
from topowire.compiler import Arch
from topowire.study import StudyConfig
from topowire.train import TrainConfig

COMMAND = all_commands()


@pytest.mark.parametrize("name", sorted(COMMAND))
def test_every_option_of_every_command_has_help(name):
    command = COMMAND[name]
    ctx = click.Context(command, info_name=name)
    text = command.get_help(ctx)
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{name} {param.opts[0]} has no help"
            assert param.opts[0] in text
    if name in ("train", "run"):  # choices come from the registries
        assert "layered" in text and "wcrnn" in text and "embedded-reber" in text and "psmnist" in text


@pytest.mark.parametrize("command, configs", [
    ("train", (TrainConfig(), Arch(), StudyConfig())),
    ("run", (StudyConfig().train, StudyConfig().arch, StudyConfig())),
])
def test_config_options_take_default_and_help_from_the_config(command, configs):
    """An option named after a config field shows that config's value and its documented meaning."""
    seen = set()
    for param in COMMAND[command].params:
        for config in configs:
            fields = inspect.signature(type(config)).parameters
            if param.name in fields and param.name not in seen and (command, param.name) != ("run", "seed"):
                seen.add(param.name)
                unset = fields[param.name].default is None
                value = None if unset else getattr(config, param.name)
                if command == "run" and param.name != "n_estimators":  # the --study's config decides
                    assert param.default is None, param.name
                    assert param.help == _param_help(type(config))[param.name] + _registry_help(param.name) + (
                        " (default: the study's)") + (
                        f" [default: {value}]" if value is not None else ""), param.name
                else:
                    assert param.default == value, param.name
                    assert param.help == _param_help(type(config))[param.name] + _registry_help(param.name)
    assert {"epochs", "lr", "kind", "orientation", "task", "replicates"} <= seen
    defaults = {p.name: p.default for p in COMMAND[command].params}
    assert (defaults["epochs"], defaults["kind"]) == ((5, "gru") if command == "train" else (None, None))


@pytest.mark.parametrize("args, study_seed, train_seed", [([], None, 0), (["--seed", "3"], 3, 3)])
def test_run_seed_seeds_the_whole_study_and_unset_keeps_the_recipes(monkeypatch, tmp_path, args, study_seed,
                                                                    train_seed):
    """`run --seed S` seeds the population, folds, forest and training; unset, the recipe's seed draws."""
    import topowire.study as pipeline

    seen = {}
    monkeypatch.setattr(pipeline, "run_study", lambda rec, out, config, **kw: seen.update(config=config) or {})
    assert main(["run", *args, "--epochs", "2", "-o", str(tmp_path / "s")]) == 0
    config = seen["config"]
    assert (config.seed, config.train.seed) == (study_seed, train_seed)
    assert config.train == dataclasses.replace(StudyConfig().train, epochs=2, seed=train_seed)
    assert config.arch == StudyConfig().arch


def test_a_documented_parameter_reads_as_plain_help():
    helps = _param_help(TrainConfig)
    assert helps["epochs"] == "Passes over the training set."
    assert helps["fused"].startswith("Run each time step of a dense recurrent forward as one torch.compile program; ")
    assert "``" not in " ".join(helps.values()) and ":func:" not in " ".join(helps.values())
    from topowire.compiler.targets.recurrent import ResidualOptions

    assert _param_help(ResidualOptions)["r"] == "The radius r of R."


def test_the_command_line_stays_thin():
    """The command line parses, calls the library and prints: no SQL, no store connection, no
    frames built, and no module of it long."""
    sources = {p.name: p.read_text() for p in (Path(__file__).parents[1] / "src" / "topowire" / "cli").glob("*.py")}
    assert max(len(s.splitlines()) for s in sources.values()) < 150
    assert sum(len(s.splitlines()) for s in sources.values()) < 620  # 15 commands (suggest and search: ~90 lines)
    assert not any(re.search(r"SELECT|INSERT|\.conn\b|DataFrame\(|\bpd\.", s) for s in sources.values())


def test_the_help_lists_each_command_by_its_own_first_line():
    assert list(COMMAND) == list(COMMANDS)
    for name, command in COMMAND.items():
        assert COMMANDS[name][1] == command.help.strip().splitlines()[0], name


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["generate", "--help"], ["show", "--help"]])
def test_commands_on_graphs_start_without_torch_or_sklearn(argv):
    code = (f"import sys; from topowire.cli import main; code = main({argv!r}); "
            "print(code, 'torch' in sys.modules, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 False False"


def test_the_arch_help_lists_every_registered_target_with_its_doc():
    from topowire.compiler import TARGETS

    text = COMMAND["train"].params[[p.name for p in COMMAND["train"].params].index("kind")].help
    for target in dict.fromkeys(TARGETS.values()):
        assert f"{'/'.join(target.kinds)}, {target.doc}" in text
