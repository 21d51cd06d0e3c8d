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


_OUTPUT_FLAGS = ("-o", "--png", "--topology")
_FILE = re.compile(r".*(\.(jsonl|toml|csv|skops|safetensors|graphml)|\*.*)$")


def _names_only_made_files(words: list[str]) -> bool:
    """Whether every file a command reads exists (its outputs and a store `train`/`run`/`suggest` may make aside)."""
    made_here = {"train", "run", "suggest"}  # suggest: with no store yet, its first batch covers the features
    for before, word in zip([""] + words, words):
        if before in _OUTPUT_FLAGS or (before == "--db" and words[0] in made_here):
            continue
        if (before == "--db" or _FILE.fullmatch(word)) and not list(Path().glob(word)):
            return False
    return "--address" not in words  # a cluster `ray start` made: not a topowire command


def _small_tasks(monkeypatch, cap: dict) -> None:
    """Every task built with at most ``cap["n_train"]`` training and 64 test examples, so the README's
    training commands run as pasted in seconds: what is checked is that they run, not what they learn."""
    import topowire.cli.models
    import topowire.data
    import topowire.data.tasks
    import topowire.study.config
    import topowire.train.trainer
    from topowire.data.tasks import make_task

    def small(name, *, seed=0, n_train=None, n_test=None, **options):
        n_train = min(n_train or cap["n_train"], cap["n_train"])
        return make_task(name, seed=seed, n_train=n_train, n_test=min(n_test or 64, 64), **options)

    for module in (topowire.data.tasks, topowire.data, topowire.cli.models, topowire.study.config, topowire.train.trainer):
        monkeypatch.setattr(module, "make_task", small)


def _small_forests(monkeypatch) -> None:
    """Every forest of `fit`, `report` and `run` cut to 10 trees (the README's commands leave 300)."""
    import topowire.predict.cv
    import topowire.predict.estimator
    from topowire.predict.models import make_model

    def small(name, columns, seed=0, n_estimators=300):
        return make_model(name, columns, seed=seed, n_estimators=min(n_estimators, 10))

    for module in (topowire.predict.cv, topowire.predict.estimator):
        monkeypatch.setattr(module, "make_model", small)


def test_every_readme_shell_block_runs_as_pasted(tmp_path, monkeypatch):
    """Every ``topowire`` command of every shell block, in the README's order, runs as pasted from a
    fresh folder when the files it reads were made by the blocks before it (the install blocks' `run`
    included; the Ray cluster lines, which need `ray start`, and the examples of the user's own files
    aside). The recipes are cut to four graphs a family and the tasks to 64 training examples, 256 for
    the study in ``runs.db`` that `fit`, `predict` and `report` read next and the search in
    ``search.db`` that `suggest` reads (and `search`), so that their models leave chance (:func:`_small_tasks`),
    and the forests to 10 trees (:func:`_small_forests`): the command lines are the README's,
    unchanged."""
    import shlex

    from topowire.cli import main

    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "graphs", tmp_path / "graphs")
    for recipe in (tmp_path / "graphs").glob("*.toml"):
        recipe.write_text(re.sub(r"(?m)^count = \d+", "count = 4", recipe.read_text()))
    cap = {"n_train": 64}
    _small_tasks(monkeypatch, cap)
    _small_forests(monkeypatch)
    ran, skipped = [], []
    for _, line in _shell_commands():
        words = [w for word in shlex.split(line) for w in (sorted(map(str, Path().glob(word))) or [word])]
        if not _names_only_made_files(words):
            skipped.append(line)
            continue
        cap["n_train"] = 256 if (words[0] == "train" and ("runs.db" in words or "search.db" in words)
                                 or words[0] == "search") else 64
        assert main(words) == 0, line
        ran.append(line)
    assert len(ran) >= 20, ran
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()  # the local cluster `train --executor ray` started is stopped with it
    assert all(("--address" in s or any(f in s for f in ("my_results.csv", "unseen.jsonl", "model.safetensors")))
               for s in skipped), skipped
    assert (tmp_path / "report" / "index.html").is_file() and (tmp_path / "predictor.skops").is_file()
    assert (tmp_path / "study" / "summary.json").is_file() and (tmp_path / "bs" / "summary.json").is_file()
    assert (tmp_path / "g.png").is_file() and (tmp_path / "features.csv").is_file() and (tmp_path / "model.onnx").is_file()
    assert len(list((tmp_path / "mlp_like").glob("*.safetensors"))) == 12  # four graphs a family


def _layout() -> list[str]:
    """The bullets of README's Layout section for ``src/topowire/`` (one string each)."""
    section = (ROOT / "README.md").read_text().split("\n## Layout\n")[1].split("\n\n`graphs/`")[0]
    return [" ".join(b.split()) for b in section.split("\n- ")[1:]]


def test_the_readme_layout_matches_the_tree():
    """Every module and package of src/topowire is in the Layout section -- a top-level one
    named (``name.py`` or ``name/``), one inside a package named or described in its
    package's bullet -- and every file the section names exists."""
    src = ROOT / "src" / "topowire"
    bullets = _layout()
    text = " ".join(bullets)
    for entry in sorted(src.iterdir()):
        if entry.name.startswith("__") or entry.suffix not in (".py", ""):
            continue
        name = entry.name + ("/" if entry.is_dir() else "")
        assert f"`{name}`" in text, f"README's layout does not name {name}"
        if entry.is_dir() and entry.name != "recipes":
            bullet = next(b for b in bullets if b.startswith(f"`{name}`"))
            for module in sorted(m for m in entry.rglob("*.py") if m.stem != "__main__"):
                stem = module.stem if module.stem != "__init__" else module.parent.name
                assert stem.lower() in bullet.lower(), f"README's layout of {name} leaves out {module.relative_to(src)}"
    named = set(re.findall(r"`([\w/]+\.py)`", text))
    existing = {p.name for p in src.rglob("*.py")}
    assert named <= existing, f"README's layout names files that do not exist: {sorted(named - existing)}"
