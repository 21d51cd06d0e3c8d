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
