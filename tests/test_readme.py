"""The README's Python API example runs as written."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_api_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace('"graphs/quick.toml"', repr(str(ROOT / "graphs" / "quick.toml")))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    frame, df = scope["frame"], scope["df"]
    assert len(frame) == 4 and set(frame["status"]) == {"ok"}
    assert list(df.columns[-4:]) == ["params", "dyn_max_lyapunov", "dyn_spectral_radius", "dyn_spectral_norm"]
    assert (tmp_path / "pop.jsonl").exists()
