"""The main job: ``topowire run`` chains every stage of a study.

sample -> features -> compile, pack and train (resumable) -> cross-validated predictors
-> predictions for an unseen population -> report -> the best model exported. Each stage
is a library call; outputs land in one folder, and running again resumes training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from topowire.compiler import Arch, wire
from topowire.compiler.init import parameter_counts
from topowire.topology import Population, Recipe, parse_recipe, sample_population, write_population
from topowire.train import TrainConfig

__all__ = ["StudyConfig", "default_recipe", "run_study", "study_table"]


def default_recipe() -> Recipe:
    """The embedded default population (``graphs/quick.toml``: ER/WS/BA, 25 each, n in [16, 48])."""
    import tomllib

    text = resources.files("topowire.recipes").joinpath("quick.toml").read_text(encoding="utf-8")
    return parse_recipe(tomllib.loads(text))


@dataclass(frozen=True)
class StudyConfig:
    """What ``topowire run`` does: the task, the arch and how to train and score.

    The defaults are the embedded quick study: GRUs with symmetric recurrence over every
    neuron (``both``, all inputs, all outputs) on ``reber``, 6 epochs of 4,000 strings at
    batch 32 (single-edit negatives need a few hundred steps before models separate).
    """

    task: str = "reber"
    arch: Arch = field(default_factory=lambda: Arch("gru", orientation="both", inputs="all", outputs="all"))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=6, batch_size=32, lr=1e-2))
    n_train: int | None = 4000
    n_test: int | None = 400
    seed: int = 0
    n_estimators: int = 300
    export_onnx: bool = True


def study_table(results: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """One row per trained model with its topology's features (and effective parameters)."""
    cols = ["topology_id", "family", "replicate", "status", "test_acc", "test_loss", "params"]
    table = results[cols].join(features, on="topology_id")
    return table[table["status"] == "ok"].reset_index(drop=True)


def _feature_columns(features: pd.DataFrame) -> list[str]:
    return list(features.columns) + ["params"]


def _params_for(pop: Population, arch: Arch, seed: int) -> pd.Series:
    return pd.Series({t.id: parameter_counts(wire(t, arch.orientation, arch.inputs, arch.outputs, seed=seed),
                                             arch)["total"] for t in pop}, name="params")


def run_study(recipe: Recipe, out: str | Path, config: StudyConfig = StudyConfig(),
              log: Callable[[str], None] = print,
              progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run a whole study into ``out`` and return its summary.

    Files: ``population.jsonl``, ``features.csv``, ``runs.db``, ``results.csv``,
    ``scores.csv``, ``importances.csv``, ``predictor.skops`` (+ ``.json``),
    ``unseen_population.jsonl``, ``predictions.csv``, ``report/index.html``,
    ``best_model.safetensors`` (and ``best_model.onnx`` with the onnx extra).
    """
    from topowire.compiler.export import export_onnx, save
    from topowire.compiler.pack import PackedPopulation
    from topowire.data import make_task
    from topowire.features import feature_table
    from topowire.predict import cross_validate, fit_predictor, predict, save_predictor
    from topowire.report import write_report
    from topowire.store import Store
    from topowire.train import train_pack, train_population
    from topowire.train.trainer import init_seed, prepare_arch

    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pop = sample_population(recipe, config.seed)
    write_population(pop, out / "population.jsonl")
    log(f"sampled {len(pop)} topologies ({', '.join(f'{k}: {v}' for k, v in pop.summary()['graphs'].items())})")

    features = feature_table(pop, n_jobs=-1)
    features = features[~features.index.duplicated()]
    features.to_csv(out / "features.csv", float_format="%.17g")
    log(f"computed {features.shape[1]} graph features")

    task = make_task(config.task, seed=config.seed, n_train=config.n_train, n_test=config.n_test)
    arch = prepare_arch(config.arch, task)
    with Store(out / "runs.db") as store:
        results = train_population(list(pop), arch, task, config.train, store=store, progress=progress)
    results.drop(columns=["curves"]).to_csv(out / "results.csv", index=False)
    ok = results[results["status"] == "ok"]
    log(f"trained {len(results)} models ({len(ok)} ok); mean test accuracy {ok['test_acc'].mean():.3f}")

    table = study_table(results, features)
    names = _feature_columns(features)
    cv = cross_validate(table, "test_acc", names, seed=config.seed, n_estimators=config.n_estimators)
    scores = cv.table()
    scores.to_csv(out / "scores.csv", index=False)
    cv.importances.to_csv(out / "importances.csv", index=False)
    predictor = fit_predictor(table, "test_acc", names, seed=config.seed, n_estimators=config.n_estimators,
                              meta={"arch": arch.to_dict(), "task": config.task, "run_id": results["run_id"].iloc[0],
                                    "scores": scores.to_dict(orient="records")})
    save_predictor(predictor, out / "predictor.skops")

    unseen = sample_population(recipe, config.seed + 1)
    write_population(unseen, out / "unseen_population.jsonl")
    unseen_features = feature_table(unseen, n_jobs=-1).join(_params_for(unseen, arch, config.train.seed))
    unseen_features = unseen_features[~unseen_features.index.duplicated()]
    predictions = pd.DataFrame({"family": [unseen[i].family for i in unseen_features.index],
                                "predicted_test_acc": predict(predictor, unseen_features[names])},
                               index=unseen_features.index)
    predictions.to_csv(out / "predictions.csv")

    kfold = scores[scores["scheme"] == "kfold"].set_index("model")
    summary = {
        "models": str(len(results)),
        "mean test accuracy by family": ", ".join(f"{f}: {a:.3f}" for f, a in ok.groupby("family")["test_acc"].mean().items()),
        "R² (5-fold CV)": ", ".join(f"{m}: {kfold.loc[m, 'r2']:.3f}" for m in kfold.index),
        "top features": ", ".join(cv.importances["feature"].head(5)),
    }
    topologies = {t.id: t for t in pop}
    write_report(out / "report", results, features, cv, topologies=topologies, title=f"topowire study: {recipe.name}",
                 summary=summary)

    best = ok.groupby("topology_id")["test_acc"].mean().idxmax()
    spec_seed = init_seed(config.train.seed, best, 0)
    packed = PackedPopulation([wire(topologies[best], arch.orientation, arch.inputs, arch.outputs,
                                    seed=config.train.seed)], arch, [spec_seed])
    train_pack(packed, task, config.train)
    model = packed.unpack(0)
    save(model, out / "best_model.safetensors", topology=topologies[best])
    exported = ["best_model.safetensors"]
    if config.export_onnx:
        try:
            export_onnx(model, out / "best_model.onnx", seq_len=int(task.x_train.shape[1]))
            exported.append("best_model.onnx")
        except Exception as exc:  # the onnx extra is optional
            log(f"ONNX export skipped: {exc}")
    summary.update({"best topology": f"{best} ({topologies[best].family})", "report": str(out / "report" / "index.html"),
                    "exported": ", ".join(str(out / e) for e in exported),
                    "seconds": f"{time.perf_counter() - t_start:.0f}"})
    return summary
