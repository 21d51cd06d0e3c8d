"""The README's Python API snippets run as written, each on its own from the repository root."""

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _api_snippets() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def _run(code: str, where: Path) -> dict:
    (where / "graphs").mkdir()
    shutil.copy(ROOT / "graphs" / "quick.toml", where / "graphs" / "quick.toml")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    return scope


def test_the_python_api_section_has_its_three_snippets():
    assert len(_api_snippets()) == 3


@pytest.mark.parametrize("index", [0, 1, 2])
def test_readme_python_api_snippet_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scope = _run(_api_snippets()[index], tmp_path)
    if index == 0:
        assert (tmp_path / "pop.jsonl").exists()
        assert len(scope["df"]) == len(scope["pop"]) and "avg_path_length" in scope["df"].columns
    elif index == 1:
        frame, df = scope["frame"], scope["df"]
        assert len(frame) == 8 and set(frame["status"]) == {"ok"}
        assert list(df.columns[-4:]) == ["params", "dyn_max_lyapunov", "dyn_spectral_radius", "dyn_spectral_norm"]
    else:
        study, net = scope["study"], scope["net"]
        assert study.spec.task.n_train == 400 and len(study.results) == 16
        assert sum(p.numel() for p in net.parameters()) > 0


def _shell_commands() -> list[tuple[int, str]]:
    """Every ``topowire`` command of the README's shell blocks: (block index, command line),
    continuations joined, comments and leading environment assignments dropped."""
    import shlex

    commands = []
    for index, block in enumerate(re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    words = words[1:]
                if words[:1] == ["topowire"]:
                    commands.append((index, shlex.join(words[1:])))
    return commands


def test_every_readme_command_parses():
    """Each command line of the README names options that exist, with values in their domains
    (parsed as the command line would, without running it)."""
    import shlex

    import click

    from topowire.cli import all_commands

    commands = all_commands()
    assert len(_shell_commands()) >= 25
    for _, line in _shell_commands():
        words = shlex.split(line)
        if not words:  # `topowire run` alone
            continue
        command = commands[words[0]]
        if "--help" in words:
            with pytest.raises(click.exceptions.Exit):
                command.make_context(words[0], words[1:])
            continue
        command.make_context(words[0], words[1:])


def test_the_readme_command_line_block_runs_as_pasted(tmp_path, monkeypatch, capsys):
    """The blocks of `generate`, `features` and `show`, then `compile` and `export`, run in order, as
    pasted, from a fresh folder."""
    import shlex

    from topowire.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "graphs").mkdir()
    shutil.copy(ROOT / "graphs" / "quick.toml", tmp_path / "graphs" / "quick.toml")
    block = [line for index, line in _shell_commands() if line.startswith(("generate", "features", "show", "compile",
                                                                           "export"))]
    assert len(block) == 11
    for line in block:  # the shell's glob, as pasted into one
        words = [w for word in shlex.split(line) for w in (sorted(map(str, Path().glob(word))) or [word])]
        assert main(words) == 0, line
    assert (tmp_path / "g.png").is_file() and (tmp_path / "features.csv").is_file()
    assert (tmp_path / "model.onnx").is_file() and len(list((tmp_path / "mlp_like").glob("*.safetensors"))) == 75
