"""Studies: the library calls behind ``topowire fit``, ``predict``, ``report`` and ``run``.

A study is a trained run joined with its topologies' features. Each command is one call
here -- :func:`load_study`, :func:`fit_study`, :func:`fit_table`,
:func:`predict_population`, :func:`report_study` -- and :func:`run_study` (the main job)
chains the same calls: sample -> features -> pack and train (resumable) -> cross-validated
predictors -> predictions for an unseen population -> report -> the best model exported.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from topowire import checks
from topowire._io import read_table, write_table
from topowire.compiler import Arch
from topowire.data import Task, make_task
from topowire.data.tasks import TASKS
from topowire.errors import DataError, ParameterError
from topowire.seeds import derive
from topowire.topology import Population, Recipe, Topology, parse_recipe, sample_population, write_population
from topowire.train import TrainConfig, results_line
from topowire.train.config import PROTOCOL_DEFAULTS
from topowire.train.spec import RunSpec

__all__ = ["StudyConfig", "Study", "default_recipe", "load_study", "model_features", "fit_study", "fit_table",
           "predict_population", "report_study", "run_study", "study_table"]

#: What :func:`run_study` writes into its folder (and nothing else: other files there are left alone).
STUDY_FILES = ("population.jsonl", "features.csv", "runs.db", "runs.db-wal", "runs.db-shm", "results.csv",
               "scores.csv", "importances.csv", "predictor.skops", "predictor.skops.json", "unseen_population.jsonl",
               "predictions.csv", "report", "best_model.safetensors", "best_model.onnx", "summary.json")

#: ``progress(stage, done, total)``: how long work reports itself.
Progress = Callable[[str, int, int], None]


def default_recipe() -> Recipe:
    """The embedded default population (``graphs/quick.toml``: ER/WS/BA, 25 each, n in [8, 24])."""
    return study_preset("quick")[0]


def study_preset(name: str) -> tuple[Recipe, StudyConfig]:
    """The embedded recipe and config of a named study (:data:`STUDIES`)."""
    import tomllib

    checks.choice("study", name, tuple(STUDIES))
    recipe, config = STUDIES[name]
    text = resources.files("topowire.recipes").joinpath(recipe).read_text(encoding="utf-8")
    return parse_recipe(tomllib.loads(text)), config


@dataclass(frozen=True)
class StudyConfig:
    """What ``topowire run`` does: the task, the arch and how to train and score.

    The defaults are the embedded quick study, chosen by measurement so that a wiring effect
    can be seen (README, "The default study"): masked ``rnn-tanh`` nets in their natural
    wiring on ``reber`` (4,000 strings), 8 epochs at batch 32 and lr 1e-2, 3 replicate
    seeds per topology (the noise ceiling needs them).

    Parameters
    ----------
    task : str
        The task models are trained and scored on (see :func:`topowire.data.make_task`).
    arch : Arch
        The compile target and its wiring.
    train : TrainConfig
        How every model is trained.
    n_train : int, optional
        Training examples. Unset: the task's (reber 4,000).
    n_test : int, optional
        Test examples. Unset: the task's (reber 400).
    seed : int, optional
        Seed of the population sample, the folds and the forest (the unseen population is
        sampled with its ``unseen`` child, :func:`topowire.seeds.derive`). Unset: the
        recipe's seed, so a study draws the population that ``topowire generate`` draws
        from its recipe. Training has its own (``train.seed``).
    n_estimators : int
        Trees in the forest: 100, what the default study needs (300 changed its headline
        by 0.003 in R², BENCHMARKS.md, ``bench/bench_fit.py``).
    export_onnx : bool
        Also export the best model to ONNX.
    """

    task: str = "reber"
    arch: Arch = field(default_factory=lambda: Arch("rnn-tanh"))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=8, replicates=3))
    n_train: int | None = None
    n_test: int | None = None
    seed: int | None = None
    n_estimators: int = 100
    export_onnx: bool = True

    def __post_init__(self) -> None:
        checks.validate(self, skip=("arch", "train", "seed"))
        checks.check("seed", self.seed if self.seed is not None else 0)


#: The studies ``topowire run --study`` names: an embedded recipe and its config.
#: ``quick`` -- the default study (masked rnn-tanh on Reber, 75 ER/WS/BA graphs of 8-24
#: nodes); ``beyond-size`` -- graph2nn's design in small (31 graphs of 16 nodes spanning C
#: and L, relational MLPs width-matched to the dense one's FLOPs, on sklearn's digits):
#: size held fixed, so whatever the predictor finds is wiring.
STUDIES: dict[str, tuple[str, StudyConfig]] = {
    "quick": ("quick.toml", StudyConfig()),
    "beyond-size": ("beyond_size.toml", StudyConfig(
        task="digits", arch=Arch("relational", width=128, depth=3),
        train=TrainConfig(epochs=6, batch_size=128, replicates=3))),
}
checks.declare("study", checks.Domain("choice", choices=STUDIES))


@dataclass
class Study:
    """One trained run and its topologies' features (see :func:`load_study`).

    Attributes
    ----------
    results : DataFrame
        One row per model (:meth:`topowire.store.Store.results`).
    features : DataFrame
        Features indexed by topology id.
    topologies : dict of str to Topology
        The trained topologies by id.
    spec : RunSpec
        The run: its arch, task (with its sizes) and training config.
    run_id : str
        Its id.
    """

    results: pd.DataFrame
    features: pd.DataFrame
    topologies: dict[str, Topology]
    spec: RunSpec
    run_id: str

    @property
    def table(self) -> pd.DataFrame:
        return study_table(self.results, self.features)

    @property
    def arch(self) -> Arch:
        return self.spec.arch

    @property
    def task(self) -> str:
        return self.spec.task.name

    @property
    def train_seed(self) -> int:
        return self.spec.train.seed


def study_table(results: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """One row per trained model that ended ``ok``, with its topology's features."""
    cols = ["topology_id", "family", "replicate", "status", "test_acc", "test_loss", "params"]
    table = results[cols].join(features.drop(columns=["params"], errors="ignore"), on="topology_id")
    return table[table["status"] == "ok"].reset_index(drop=True)


def model_features(topologies: Sequence[Topology], names: Sequence[str] | None, arch: Arch, *,
                   task: Task | None = None, seed: int = 0, progress: Progress | None = None) -> pd.DataFrame:
    """The features a study's predictor may use, one row per unique topology id: the named
    ones (graph or model features), or every graph feature, ``params`` and the size the arch
    holds fixed where that is another count (``flops``) (``names=None``)."""
    from topowire.features import GROUPS, feature_table

    unique = list({t.id: t for t in topologies}.values())
    bar = (lambda d, t: progress("features", d, t)) if progress else None
    size = arch.target.size_measure(arch)
    every = [*GROUPS, "params", *([size] if size != "params" else [])]
    return feature_table(unique, every if names is None else names, n_jobs=-1, progress=bar,
                         arch=arch, task=task, seed=seed)


def load_study(db: str | Path, run_id: str | None = None, features: str | Path | None = None, *,
               progress: Progress | None = None) -> Study:
    """The results of one run with their topologies' features (computed, or read from a table)."""
    from topowire.store import open_existing

    with open_existing(db) as store:
        run = store.run(run_id)
        results = store.results(run["run_id"])
        topologies = store.topologies(results["topology_id"].unique())
    spec = RunSpec.from_record(run)
    if features is not None:
        table = read_table(features)
        table = table.set_index("id") if "id" in table.columns else table
    else:
        table = model_features([topologies[i] for i in dict.fromkeys(results["topology_id"])], None, spec.arch,
                               seed=spec.train.seed, progress=progress)
    missing = set(results["topology_id"]) - set(table.index)
    if missing:
        raise ParameterError(f"the feature table lacks {len(missing)} trained topologies (e.g. {sorted(missing)[0]})")
    return Study(results, table[~table.index.duplicated()], topologies, spec, run["run_id"])


def fit_study(study: Study, *, seed: int = 0, n_estimators: int = 300, dynamics: bool = False,
              group: str | None = None, size: str | Sequence[str] | None = None, model: str = "forest",
              progress: Progress | None = None):
    """Cross-validate and fit the forest of a study; returns ``(cv, predictor)``.

    Parameters
    ----------
    study : Study
        A trained run and its topologies' features (:func:`load_study`).
    seed : int
        Seed of the folds and the forest.
    n_estimators : int
        Trees in the forest.
    dynamics : bool
        Add the dynamics features at initialisation (max Lyapunov exponent, spectral radius
        and norm of W_hh) and score a graph-only forest on the same folds: the R² they add
        in each CV scheme is reported (see ``cv.notes``).
    group, size : optional
        As :func:`fit_table`: the leave-one-group-out column (unset: ``family``) and the
        size baselines' columns, which the study's table must have.
    model : {"forest", "hgb"}
        The predictor: a random forest, or histogram gradient boosting (scored beside the
        forest).
    progress : callable, optional
        ``progress("fit", done, total)`` as the cross-validations finish.
    """
    from topowire.predict import cross_validate, fit_predictor

    table = study.table
    group, size = _check_columns(table, group, size)
    if table.empty:
        raise DataError(f"{results_line(study.results)}: there is nothing to fit")
    names = [c for c in study.features.columns if c != "params"] + ["params"]
    extra, meta = None, {"run_id": study.run_id, "run": study.spec.to_dict()}
    if dynamics:
        from topowire.features import MODEL_REGISTRY

        dyn_names = list(MODEL_REGISTRY["dynamics"].docs)
        if not study.arch.masked_cell:
            raise ParameterError(f"--dynamics needs a masked recurrent run, this one is {study.arch.kind!r}")
        dyn = model_features(list(study.topologies.values()), dyn_names, study.arch, task=study.spec.task.build(),
                             seed=study.train_seed)
        table = table.join(dyn, on="topology_id")
        extra, names = {"forest-graph": names}, names + dyn_names
    cv = cross_validate(table, "test_acc", names, seed=seed, n_estimators=n_estimators, extra_forests=extra,
                        chance=TASKS[study.task].chance, groups=group or "family", size=size, model=model,
                        progress=_stage(progress, "fit"))
    predictor = fit_predictor(table, "test_acc", names, seed=seed, n_estimators=n_estimators, model=model,
                              meta={**meta, **_cv_meta(cv)})
    if extra:
        cv.notes.extend(_dynamics_notes(cv.table().set_index(["scheme", "model"])))
    return cv, predictor


def _dynamics_notes(table: pd.DataFrame) -> list[str]:
    """What the dynamics features add over the graph features, per CV scheme -- in words
    where neither forest beats the mean (a difference of two failures is not a gain)."""
    notes = []
    for scheme in table.index.get_level_values(0).unique():
        both, graph = table.loc[(scheme, "forest"), "r2"], table.loc[(scheme, "forest-graph"), "r2"]
        notes.append(f"dynamics features add {both - graph:+.3f} R² over graph features alone ({scheme})"
                     if max(both, graph) > 0 else
                     f"dynamics features: no gain can be measured ({scheme}): neither forest beats the mean "
                     f"(R² {both:.2f} with them, {graph:.2f} without)")
    return notes


def _stage(progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    """``progress`` for one stage: ``(done, total)`` reported as ``(stage, done, total)``."""
    return None if progress is None else lambda done, total: progress(stage, done, total)


def _cv_meta(cv) -> dict[str, Any]:
    return {"scores": cv.table().to_dict(orient="records"), "noise_ceiling": cv.ceiling,
            "importances": cv.importances.to_dict(orient="records"), "interval": cv.interval()}


def select_features(table: pd.DataFrame, target: str, columns: Sequence[str] | None = None,
                    exclude: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """The feature columns of a foreign table, and the columns left out.

    Used: the known features (graph and model features of the registry, ``params``) that
    the table has, plus every column ``columns`` names. Never used: any other column --
    an outcome such as ``test_loss`` or ``time`` would leak the target into the features.

    Raises
    ------
    ParameterError
        A named column is missing or is the target, or no feature is left.
    """
    from topowire.features import list_features

    named = list(columns or [])
    missing = [c for c in named if c not in table.columns]
    if missing:
        raise ParameterError(f"--columns names {', '.join(missing)}, not in the table (its columns: "
                             f"{', '.join(map(str, table.columns))})")
    if target in named:
        raise ParameterError(f"--columns names the target {target!r}: a predictor cannot use what it predicts")
    known = set(list_features()["name"])
    used = [c for c in table.columns if (c in known or c in named) and c != target and c not in exclude]
    ignored = [c for c in table.columns if c not in used and c != target]
    if not used:
        raise ParameterError("no feature in the table: none of its columns is a known feature (topowire features "
                             "--list); name the feature columns with --columns")
    return used, ignored


def _check_columns(table: pd.DataFrame, group: str | None, size: str | Sequence[str] | None):
    """``(group, size)`` with ``size`` as a list, or ParameterError naming a column the table lacks."""
    size = [x.strip() for x in size.split(",") if x.strip()] if isinstance(size, str) else size
    for what, names in (("group", [group] if group is not None else []), ("size", size or [])):
        for name in names:
            if name not in table.columns:
                raise ParameterError(f"{what} column {name!r} is not in the table (its columns: "
                                     f"{', '.join(map(str, table))})")
    return group, size


def fit_table(table: pd.DataFrame, target: str = "test_acc", columns: str | Sequence[str] | None = None, *,
              group: str | None = None, size: str | Sequence[str] | None = None, seed: int = 0,
              n_estimators: int = 300, model: str = "forest", progress: Progress | None = None):
    """Cross-validate and fit a forest on any table; returns ``(cv, predictor)``.

    ``cv.notes`` names the features used and the columns left out.

    Parameters
    ----------
    table : DataFrame
        One row per model (or topology): features, the target and anything else.
    target : str
        The column to predict.
    columns : str or list of str, optional
        Feature columns (a list or a comma-separated string) used beside the known
        features the table has (see :func:`select_features`); no other column is ever used.
    group : str, optional
        The column of the leave-one-group-out scheme. Unset: ``family``, when the table has it.
    size : str or list of str, optional
        The size baselines' columns (a list or comma-separated). Unset: ``params``,
        ``n_nodes``, ``n_edges`` where present.
    seed : int
        Seed of the folds and the forest.
    n_estimators : int
        Trees in the forest.
    model : {"forest", "hgb"}
        The predictor (see :func:`fit_study`).
    """
    from topowire.predict import cross_validate, fit_predictor

    columns = [x.strip() for x in columns.split(",") if x.strip()] if isinstance(columns, str) else columns
    group, size = _check_columns(table, group, size)
    group = group if group is not None else ("family" if "family" in table.columns else None)
    names, ignored = select_features(table, target, columns, exclude=[group, "id", "topology_id"])
    cv = cross_validate(table, target, names, groups=group, size=size, seed=seed, n_estimators=n_estimators,
                        model=model, progress=_stage(progress, "fit"))
    cv.notes.insert(0, f"features used ({len(names)}): {', '.join(map(str, names))}")
    if ignored:
        cv.notes.insert(1, f"columns ignored ({len(ignored)}; not known features -- name them with --columns): "
                           f"{', '.join(map(str, ignored))}")
    return cv, fit_predictor(table, target, names, seed=seed, n_estimators=n_estimators, meta=_cv_meta(cv),
                             model=model)


def predict_population(predictor, source: str | Path | Population | pd.DataFrame) -> pd.DataFrame:
    """Predictions and intervals for a population (its features computed as the predictor
    needs them) or a table (its other columns carried through); see :func:`topowire.predict.predict`.

    A path is read as a population when it is a ``.jsonl`` file, a graph file or a folder
    of them (:func:`~topowire.topology.read_population`), else as a table. The predictions
    of graphs read from files keep the file's name (a ``source`` column beside the id)."""
    from topowire.predict import predict
    from topowire.topology import GRAPH_FORMATS, read_population

    if isinstance(source, (str, Path)) and (Path(source).is_dir()
                                            or Path(source).suffix.lower() in (".jsonl", *GRAPH_FORMATS)):
        source = read_population(source)
    if isinstance(source, Population):
        from topowire.features.registry import MODEL_REGISTRY, model_feature_group

        groups = {model_feature_group(f) for f in predictor.features} - {None}
        spec = _predictor_run(predictor)
        if groups and spec is None:
            needs_run = [f for f in predictor.features if model_feature_group(f)]
            raise ParameterError(f"the predictor uses {', '.join(needs_run)} but records no run to build the models")
        task = spec.task.build() if any(MODEL_REGISTRY[g].needs_task for g in groups) else None
        table = model_features(list(source), predictor.features, spec.arch if spec else Arch(), task=task,
                               seed=spec.train.seed if spec else 0)
        names = {t.id: t.params["source"] for t in source if "source" in t.params}
        if names:
            return predict(predictor, table).assign(source=lambda f: [names.get(i, "") for i in f.index])
    else:
        table = source if isinstance(source, pd.DataFrame) else read_table(source)
        table = table.set_index("id") if "id" in table.columns else table
        from topowire.features.registry import model_feature_group

        missing = [f for f in predictor.features if f not in table.columns]
        built = [f for f in missing if model_feature_group(f)]
        if built:
            raise DataError(f"the table lacks the predictor's feature(s) {', '.join(missing)} ({', '.join(built)}: "
                            "features of the compiled networks; predict from the population's .jsonl instead, "
                            "which computes them with the predictor's arch)")
    return predict(predictor, table)


def _predictor_run(predictor) -> RunSpec | None:
    """The run a predictor was fitted on (None for one fitted on a table)."""
    meta = predictor.meta
    if "run" in meta:
        return RunSpec.from_dict(meta["run"])
    if "arch" in meta:  # a predictor of release 0.1
        return RunSpec.from_release_0_1(meta["arch"], meta["task"], {"seed": int(meta.get("train_seed", 0))})
    return None


def report_study(study: Study, out: str | Path, *, seed: int = 0, n_estimators: int = 300, cv=None,
                 title: str | None = None, summary: dict[str, str] | None = None,
                 progress: Progress | None = None) -> Path:
    """Write the HTML report of a study into the folder ``out``; returns its index.html.

    Parameters
    ----------
    study : Study
        A trained run and its topologies' features (:func:`load_study`).
    out : str or Path
        The report folder (replaced as a whole).
    seed : int
        Seed of the folds and the forest.
    n_estimators : int
        Trees in the forest.
    cv : CVResult, optional
        Scores already computed (unset: the study is cross-validated here).
    title : str, optional
        The page's title.
    summary : dict, optional
        Lines shown above the scores.
    progress : callable, optional
        ``progress("fit", done, total)`` while the study is cross-validated here.
    """
    from topowire.predict import cross_validate
    from topowire.report import write_report

    if cv is None:  # fit's guards: a target at chance or constant is refused, not reported
        names = [c for c in study.features.columns if c != "params"] + ["params"]
        cv = cross_validate(study.table, "test_acc", names, seed=seed, n_estimators=n_estimators,
                            chance=TASKS[study.task].chance, progress=_stage(progress, "fit"))
    summary = summary or {"run id": study.run_id, "models": str(len(study.results))}
    return write_report(out, study.results, study.features, cv, topologies=study.topologies,
                        title=title or f"topowire study: run {study.run_id}",
                        summary={"run": describe_run(study.spec), **summary})


def validate(recipe: Recipe, config: StudyConfig) -> tuple[Task, RunSpec]:
    """The task and the run, or ParameterError -- before anything is written."""
    from topowire.train.config import check_device

    task = make_task(config.task, seed=config.train.seed, n_train=config.n_train, n_test=config.n_test)
    return task, RunSpec.of(config.arch, task, config.train.replace(device=check_device(config.train.device)))


def run_study(recipe: Recipe, out: str | Path, config: StudyConfig = StudyConfig(),
              log: Callable[[str], None] = print, progress: Progress | None = None,
              executor="local") -> dict[str, str]:
    """Run a whole study into ``out`` and return its summary.

    Its stages, each taking what the one before made: sample the population, compute its
    features, train every model (resumable, every model's weights kept), fit the predictor
    beside its baselines, predict an unseen population, write the report, export the best
    model (from its trained weights: nothing is trained twice).

    Files: ``population.jsonl``, ``features.csv`` (graph features and ``params``: a valid
    ``predict`` input), ``runs.db``, ``results.csv``, ``scores.csv``, ``importances.csv``,
    ``predictor.skops`` (+ ``.json``), ``unseen_population.jsonl``, ``predictions.csv``,
    ``report/index.html``, ``best_model.safetensors`` (and ``best_model.onnx`` with the onnx extra).
    """
    t_start = time.perf_counter()
    task, spec = validate(recipe, config)
    pop = sample_population(recipe, config.seed)  # the recipe's seed when None; a bad draw makes no folder
    out = _study_folder(out)
    _sample(pop, out, log)
    features = _features(pop, spec, out, log, progress)
    study, trained = _train(pop, features, spec, task, out, log, progress, executor)
    inputs = _fingerprint(out, config)
    kept = None if trained else _kept_summary(out, inputs)
    if kept is not None:
        log("nothing changed since the last run: its fit, predictions, report and best model are kept "
            "(summary.json)")
        return {**kept, "seconds": f"{time.perf_counter() - t_start:.0f}"}
    summary = {"run": describe_run(spec),
               "models": f"{len(study.results)} ({len(pop)} topologies x {config.train.replicates} replicates)",
               **_accuracy_by_family(study.results)}
    try:
        cv, predictor = _fit(study, pop.seed, config, out, progress)
    except DataError as exc:  # a degenerate target is reported, never scored
        summary = {"WARNING": f"{exc}; no predictor was fitted", **summary}
        log(f"WARNING: {exc}")
    else:
        summary = {**_headline(cv), **summary, **_predict(predictor, recipe, pop.seed, out)}
        title = f"topowire study: {recipe.name}, {recipe.design()}"
        summary["report"] = str(report_study(study, out / "report", cv=cv, title=title, summary=summary,
                                             progress=progress))
    summary.update(_export_best(study, out, config, task, log))
    _keep_summary(out, inputs, summary)
    return {**summary, "seconds": f"{time.perf_counter() - t_start:.0f}"}


#: What a study's later stages read (their inputs) and write (their outputs), for :func:`_kept_summary`.
_FIT_INPUTS = ("population.jsonl", "features.csv", "results.csv")
_FIT_OUTPUTS = ("scores.csv", "importances.csv", "predictor.skops", "unseen_population.jsonl", "predictions.csv",
                "report/index.html", "best_model.safetensors", "best_model.onnx")


def _digest(path: Path) -> str | None:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _fingerprint(out: Path, config: StudyConfig) -> dict[str, Any]:
    """What the fit and everything after it depend on: the study's config, topowire's
    version, and the population, features and results files."""
    from topowire import __version__

    return {"config": repr(config), "version": __version__, **{name: _digest(out / name) for name in _FIT_INPUTS}}


def _keep_summary(out: Path, inputs: dict[str, Any], summary: dict[str, str]) -> None:
    """``summary.json``: the summary with the inputs it came from and its outputs' digests."""
    import json

    from topowire._io import atomic_open

    outputs = {name: _digest(out / name) for name in _FIT_OUTPUTS}
    with atomic_open(out / "summary.json") as fh:
        json.dump({"inputs": inputs, "outputs": outputs, "summary": summary}, fh, indent=1)


def _kept_summary(out: Path, inputs: dict[str, Any]) -> dict[str, str] | None:
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


def describe_run(spec: RunSpec) -> str:
    """One line naming what a run trained: the arch and its options, the task and its sizes,
    the training budget."""
    a, t, ref = spec.arch, spec.train, spec.task
    options = ", ".join(f"{k} {v}" for k, v in vars(a.options).items()) if a.options is not None else ""
    sizes = [n if n is not None else d for n, d in zip((ref.n_train, ref.n_test), ref.spec.sizes)]
    train, test = (f"{n:,}" if n is not None else "all" for n in sizes)
    protocol = "".join(f", {k.replace('_', ' ')} {v}" for k, v in t.run_key().items()
                       if k in PROTOCOL_DEFAULTS or (k, v) == ("optimizer", "sgd"))
    fixed = a.target.holds_fixed(a)
    return (f"{a.kind} ({a.orientation}/{a.inputs}/{a.outputs}{', ' + options if options else ''}"
            f"{'; ' + fixed if fixed else ''}) on {ref.name} ({train} train / {test} test), {t.epochs} epochs, "
            f"batch {t.batch_size}, lr {t.lr:g}{protocol}, {t.replicates} replicates, {t.device}")


def _study_folder(out: str | Path) -> Path:
    """The study folder, made and marked (none is left behind if even that fails)."""
    from topowire._io import check_output_folder, mark_folder

    out = Path(out)
    check_output_folder(out, kind="study")
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        mark_folder(out, "study", STUDY_FILES)
    except OSError:
        if made:  # a full disk leaves no empty study folder behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    return out


def _sample(pop: Population, out: Path, log) -> Population:
    write_population(pop, out / "population.jsonl")
    log(f"sampled {len(pop)} topologies ({', '.join(f'{k}: {v}' for k, v in pop.summary()['graphs'].items())})")
    return pop


def _features(pop: Population, spec: RunSpec, out: Path, log, progress) -> pd.DataFrame:
    features = model_features(list(pop), None, spec.arch, seed=spec.train.seed, progress=progress)
    write_table(features.rename_axis("id"), out / "features.csv")
    log(f"computed {features.shape[1] - 1} graph features and the parameter counts")
    return features


def _train(pop: Population, features: pd.DataFrame, spec: RunSpec, task: Task, out: Path, log, progress,
           executor) -> Study:
    from topowire.store import Store
    from topowire.train import train_population

    rid, total = spec.run_id(task), len({t.id for t in pop}) * spec.train.replicates
    before = 0
    if (out / "runs.db").is_file():
        with Store(out / "runs.db", readonly=True) as store:
            before = len(store.done(rid))
    if before >= total:
        log(f"nothing left to train: all {total} models of run {rid} are in runs.db")
    train_progress = _stage(progress, "training") if before < total else None
    results = train_population(list(pop), spec.arch, task, spec.train, store=out / "runs.db", progress=train_progress,
                               executor=executor, keep_weights=True)
    write_table(results.drop(columns=["curves"]), out / "results.csv", index=False)
    log(results_line(results))
    return Study(results, features, {t.id: t for t in pop}, spec, results["run_id"].iloc[0]), before < total


def _accuracy_by_family(results: pd.DataFrame) -> dict[str, str]:
    ok = results[results["status"] == "ok"]
    return {"mean test accuracy by family": ", ".join(f"{f}: {a:.3f}" for f, a in
                                                      ok.groupby("family")["test_acc"].mean().items())}


def _fit(study: Study, seed: int, config: StudyConfig, out: Path, progress: Progress | None = None):
    """The study's predictor, its scores and importances, into ``out``. ``seed`` is the
    study's population seed; it also seeds the folds and forest."""
    from topowire.predict import save_predictor

    cv, predictor = fit_study(study, seed=seed, n_estimators=config.n_estimators, progress=progress)
    write_table(cv.table(), out / "scores.csv", index=False)
    write_table(cv.importances, out / "importances.csv", index=False)
    save_predictor(predictor, out / "predictor.skops")
    return cv, predictor


def _headline(cv) -> dict[str, str]:
    kfold = cv.table()
    kfold = kfold[kfold["scheme"] == "kfold"].set_index("model")
    head = cv.headline()
    label = "R² (5-fold CV" + ("; not findings: this design cannot detect a wiring effect)" if "CANNOT DETECT" in head
                               else ", pooled out-of-fold)")
    return {**head, label: ", ".join(f"{m}: {kfold.loc[m, 'r2']:.3f}" for m in kfold.index),
            "top features": ", ".join(cv.importances["feature"].head(5)),
            **{f"note {i + 1}": n for i, n in enumerate(cv.notes)}}


def _predict(predictor, recipe: Recipe, seed: int, out: Path) -> dict[str, str]:
    """Predictions for a new draw of the recipe (the seed's ``unseen`` child), into ``out``."""
    unseen_seed = derive(seed, "unseen")
    unseen = sample_population(recipe, unseen_seed)
    write_population(unseen, out / "unseen_population.jsonl")
    predicted = predict_population(predictor, unseen)
    families = {t.id: t.family for t in unseen}
    write_table(predicted.assign(family=[families[i] for i in predicted.index]).rename_axis("id"),
                out / "predictions.csv")
    outside = int((predicted["outside_training"] != "").sum())
    return {"predictions": f"{len(predicted)} topologies of a new draw (seed {unseen_seed}) in predictions.csv"
                           + (f"; {outside} of them outside the training range (its outside_training column)"
                              if outside else "")}


def _export_best(study: Study, out: Path, config: StudyConfig, task: Task, log) -> dict[str, str]:
    """The best topology's first replicate, with its trained weights, as ``best_model.*``."""
    from topowire.compiler.export import export_onnx, save
    from topowire.predict.table import CHANCE_MARGIN, at_chance

    ok = study.results[study.results["status"] == "ok"]
    if ok.empty:
        return {"exported": "nothing: no model trained ok"}
    means = ok.groupby("topology_id")["test_acc"].mean()
    best, chance = means.idxmax(), TASKS[study.task].chance
    if at_chance(means, chance):  # fit's guard: no best among models at chance
        return {"exported": f"nothing: every topology's mean test accuracy is within {CHANCE_MARGIN} of chance "
                            f"({chance:g}; the best {means.max():.3f}), so no model is better than another"}
    model = trained_model(out / "runs.db", study.run_id, study.topologies[best], 0)
    save(model, out / "best_model.safetensors", topology=study.topologies[best], run=study.spec)
    exported = ["best_model.safetensors"]
    if config.export_onnx:
        try:
            export_onnx(model, out / "best_model.onnx", seq_len=int(task.x_train.shape[1]) if task.sequence else 20)
            exported.append("best_model.onnx")
        except Exception as exc:  # the onnx extra is optional
            log(f"ONNX export skipped: {exc}")
    return {"best topology": f"{best} ({study.topologies[best].family})",
            "exported": ", ".join(str(out / e) for e in exported)}


def trained_model(db: str | Path, run_id: str, topology: Topology, replicate: int = 0):
    """A model of a run with its final weights, as the store kept them (``keep_weights``).

    Raises
    ------
    DataError
        The store did not keep this model's weights (a run trained without keeping them,
        or by release 0.1).
    """
    from safetensors.torch import load

    from topowire.compiler import compile
    from topowire.store import open_existing

    with open_existing(db) as store:
        spec = RunSpec.from_record(store.run(run_id))
        weights = store.weights(run_id, topology.id, replicate)
        rows = store.results(run_id)
    if weights is None:
        raise DataError(f"the store kept no weights of topology {topology.id} replicate {replicate} in run {run_id} "
                        "(train with keep_weights to export a trained model)")
    row = rows[(rows["topology_id"] == topology.id) & (rows["replicate"] == replicate)].iloc[0]
    model = compile(topology, spec.arch, seed=int(row["init_seed"]))
    model.load_state_dict(load(weights))
    return model
