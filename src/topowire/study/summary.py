"""A study's summary: the headline lines, and ``summary.json`` -- what a rerun with
nothing changed keeps instead of fitting again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from topowire.study.config import StudyConfig


def accuracy_by_family(results: pd.DataFrame) -> dict[str, str]:
    ok = results[results["status"] == "ok"]
    return {"mean test accuracy by family": ", ".join(f"{f}: {a:.3f}" for f, a in
                                                      ok.groupby("family")["test_acc"].mean().items())}

def headline_lines(cv) -> dict[str, str]:
    kfold = cv.table()
    kfold = kfold[kfold["scheme"] == "kfold"].set_index("model")
    head = cv.headline()
    label = "R² (5-fold CV" + ("; not findings: this design cannot detect a wiring effect)" if "CANNOT DETECT" in head
                               else ", pooled out-of-fold)")
    return {**head, label: ", ".join(f"{m}: {kfold.loc[m, 'r2']:.3f}" for m in kfold.index),
            "top features": ", ".join(cv.importances["feature"].head(5)),
            **{f"note {i + 1}": n for i, n in enumerate(cv.notes)}}

#: What a study's later stages read (their inputs) and write (their outputs), for :func:`kept_summary`.
_FIT_INPUTS = ("population.jsonl", "features.csv", "results.csv")

_FIT_OUTPUTS = ("scores.csv", "importances.csv", "predictor.skops", "unseen_population.jsonl", "predictions.csv",
                "report/index.html", "best_model.safetensors", "best_model.onnx")

def _digest(path: Path) -> str | None:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None

def fingerprint(out: Path, config: StudyConfig) -> dict[str, Any]:
    """What the fit and everything after it depend on: the study's config, topowire's
    version, and the population, features and results files."""
    from topowire import __version__

    return {"config": repr(config), "version": __version__, **{name: _digest(out / name) for name in _FIT_INPUTS}}

def keep_summary(out: Path, inputs: dict[str, Any], summary: dict[str, str]) -> None:
    """``summary.json``: the summary with the inputs it came from and its outputs' digests."""
    import json

    from topowire._io import atomic_open

    outputs = {name: _digest(out / name) for name in _FIT_OUTPUTS}
    with atomic_open(out / "summary.json") as fh:
        json.dump({"inputs": inputs, "outputs": outputs, "summary": summary}, fh, indent=1)

def kept_summary(out: Path, inputs: dict[str, Any]) -> dict[str, str] | None:
    """The summary of the last run into ``out`` if its inputs are these and its outputs are
    untouched (else None: the fit and what follows run again)."""
    import json

    try:
        kept = json.loads((out / "summary.json").read_text())
        if kept["inputs"] != inputs or kept["outputs"] != {name: _digest(out / name) for name in _FIT_OUTPUTS}:
            return None
        return {str(k): str(v) for k, v in kept["summary"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
