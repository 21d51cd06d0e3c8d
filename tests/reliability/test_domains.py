"""Class 2 of the third reliability round: every option has a declared domain, and a value
outside it is one line naming the flag, exit 2, before anything runs."""

import dataclasses
import math

import click
import pytest

from topowire import checks
from topowire.cli import all_commands, main
from topowire.compiler import TARGETS, Arch
from topowire.study import StudyConfig
from topowire.train import TrainConfig

from .conftest import one_error_line


def _options():
    for name, command in all_commands().items():
        for param in command.params:
            yield name, command, param


def test_every_option_of_every_command_has_a_declared_domain():
    undeclared = [f"{name} {param.opts[0]}" for name, _, param in _options()
                  if not (getattr(param, "is_flag", False) or isinstance(param.type, click.Path)
                          or (hasattr(param.type, "domain") and not param.type.undeclared))]
    assert undeclared == []


OPTIONS = list(dict.fromkeys(t.options(k) for t in TARGETS.values() for k in t.kinds))


@pytest.mark.parametrize("config", [TrainConfig, StudyConfig, Arch, *OPTIONS])
def test_every_config_field_has_a_declared_domain(config):
    fields = [f.name for f in dataclasses.fields(config) if f.name not in ("arch", "train", "options")]
    assert all(isinstance(checks.domain(f, config), checks.Domain) for f in fields)  # metadata or DOMAINS


def _placeholder(param) -> str:
    """A value inside the parameter's domain ("x" for a path)."""
    domain = getattr(param.type, "domain", None)
    if domain is None or domain.form in ("str", "path"):
        return "x"
    if domain.form == "choice":
        return str(domain.options()[0])
    return str((domain.lo + domain.hi) / 2 if domain.form == "float" else domain.lo)


def _required(command, param):
    """Arguments that make the rest of a command line parse: a placeholder for every
    required parameter but ``param``."""
    args = []
    for p in command.params:
        if p is not param and p.required:
            args += [_placeholder(p)] if isinstance(p, click.Argument) else [p.opts[0], _placeholder(p)]
    return args


NUMERIC = [(name, param.opts[0]) for name, _, param in _options()
           if hasattr(param.type, "domain") and param.type.domain.form in ("int", "float")]


@pytest.mark.parametrize("name, flag", NUMERIC)
@pytest.mark.parametrize("text", ["-1", str(10**30), "nan", "inf"])
def test_each_numeric_option_refuses_values_outside_its_domain(name, flag, text, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    command = all_commands()[name]
    param = next(p for p in command.params if p.opts[0] == flag)
    domain = param.type.domain
    try:
        domain.parse(param.name, text)
    except checks.ParameterError:
        pass
    else:  # inside the domain (a negative angle): it is declared so, and nothing else is accepted
        assert text == "-1" and domain.lo <= -1 and math.isfinite(domain.hi)  # a negative angle; joblib's -1 jobs
        return
    assert main([name, *_required(command, param), flag, text]) == 2
    line = one_error_line(capsys)
    assert flag in line and ("must be" in line or "exceeds the limit" in line or "over the limit" in line), line
    assert list(tmp_path.iterdir()) == []
