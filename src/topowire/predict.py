"""Performance predictors: how well will a topology train, from its features alone?

``cross_validate`` scores a random forest (an sklearn Pipeline: median imputation, then
``RandomForestRegressor``, seeded) beside four baselines -- the mean, a linear model on
size (effective parameters, nodes, edges), a forest on size, and a forest on the single
feature chosen inside each training fold -- with repeated K-fold and leave-one-family-out
cross-validation. Every fitted step lives inside the Pipeline (or the fold), so nothing
is fitted outside a fold. When topologies were trained with several seeds, rows are
averaged per topology and the *noise ceiling* (the share of the averaged target's
variance that lies between topologies) bounds what any predictor can reach. A target
nothing can be learnt from is refused (:func:`check_target`); :meth:`CVResult.headline`
says in words what the scores allow, and the forest's out-of-fold residuals give a
split-conformal interval (:func:`conformal_half_width`).

Predictors are saved with skops and loaded only if every type the file would construct
(read from its schema) is on topowire's own explicit list -- not skops's broader default
trust -- with a JSON file of metadata beside them. Nothing is pickled.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from topowire import checks
from topowire._io import atomic_open, atomic_path
from topowire.errors import DataError, FileFormatError, ParameterError, TopowireError

__all__ = ["SIZE_FEATURES", "MODELS", "make_model", "noise_ceiling", "check_target", "cross_validate", "fit_predictor",
           "Predictor", "save_predictor", "load_predictor", "predict", "TRUSTED_TYPES", "conformal_half_width",
           "interval_coverage", "held_out_scores", "extrapolation_warning", "prediction_notes"]

#: How far beyond a feature's training range (as a fraction of its width) a value must lie
#: to count as outside it: with dozens of features and a few dozen topologies, some feature
#: of a new draw from the same recipe passes its training extreme by a hair more often than not.
OUTSIDE_MARGIN = 0.1

#: The "size only" features of the baselines.
SIZE_FEATURES = ("params", "n_nodes", "n_edges")
#: Models scored by cross_validate, in report order (``best-feature``: a forest on the one
#: feature with the largest |Spearman| on each training fold).
MODELS = ("forest", "mean", "linear-size", "forest-size", "best-feature")

TRUSTED_TYPES = [
    "sklearn.pipeline.Pipeline",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.linear_model._base.LinearRegression",
    "sklearn.dummy.DummyRegressor",
    "numpy.dtype",
    "numpy.ndarray",
    "builtins.dict",
    "builtins.list",
    "builtins.str",
    "builtins.tuple",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "builtins.NoneType",
]


def _file_types(path: Path) -> set[str]:
    """Every ``module.Class`` a skops file would construct, read from its schema.json."""
    import zipfile

    from topowire._io import check_nesting

    with zipfile.ZipFile(path) as z:
        text = z.read("schema.json").decode("utf-8")
    check_nesting(text, f"{path.name}/schema.json")
    schema = json.loads(text)
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node:
                found.add(f"{node.get('__module__')}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def make_model(name: str, seed: int = 0, n_estimators: int = 300):
    """An unfitted sklearn Pipeline for one of :data:`MODELS`."""
    checks.integer("n_estimators", n_estimators, 1)
    checks.integer("seed", seed, 0)
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    impute = ("impute", SimpleImputer(strategy="median", keep_empty_features=True))
    if name in ("forest", "forest-size"):
        rf = RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=2, random_state=seed, n_jobs=1)
        return Pipeline([impute, ("forest", rf)])
    if name == "linear-size":
        return Pipeline([impute, ("scale", StandardScaler()), ("linear", LinearRegression())])
    if name == "mean":
        return Pipeline([impute, ("mean", DummyRegressor(strategy="mean"))])
    raise ParameterError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")


def noise_ceiling(target: pd.Series, topology: pd.Series) -> dict[str, float] | None:
    """The highest R² any predictor of topology can reach on per-topology mean targets.

    With S replicates per topology, ``var(means) = s2_between + s2_within / S``; the
    ceiling is ``s2_between / var(means)`` (None with a single replicate).
    """
    groups = pd.DataFrame({"y": target.to_numpy(), "g": topology.to_numpy()}).groupby("g")["y"]
    sizes = groups.size()
    if sizes.max() < 2:
        return None
    within = float(groups.var(ddof=1).mean())
    means = groups.mean()
    s = float(sizes.mean())
    total = float(means.var(ddof=1))
    between = max(0.0, total - within / s)
    return {"ceiling": between / total if total > 0 else float("nan"), "var_between": between,
            "var_within": within, "replicates": s}


@dataclass
class CVResult:
    """Cross-validation scores and what they rest on.

    ``scores`` has one row per scheme, model and repetition, computed on the repetition's
    pooled out-of-fold predictions; ``folds`` one row per scheme, model and fold (the
    spreads are over folds). ``oof`` holds the forest's out-of-fold predictions,
    ``importances`` its held-out permutation importances, ``chosen`` the feature the
    ``best-feature`` baseline picked in each training fold, and ``notes`` every scheme or
    baseline that could not run, with the reason.
    """

    scores: pd.DataFrame
    oof: pd.DataFrame
    importances: pd.DataFrame
    ceiling: dict[str, float] | None
    n_rows: int
    features: list[str] = field(default_factory=list)
    folds: pd.DataFrame = field(default_factory=pd.DataFrame)
    chosen: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    target: str = "test_acc"

    def table(self) -> pd.DataFrame:
        """Per model and scheme: the pooled scores (mean over repeats), their spread over
        folds (``*_fold_sd``) and R² as a fraction of the noise ceiling."""
        t = self.scores.groupby(["scheme", "model"], sort=False).agg(
            r2=("r2", "mean"), mae=("mae", "mean"), spearman=("spearman", "mean")).reset_index()
        if not self.folds.empty:
            sd = self.folds.groupby(["scheme", "model"], sort=False)[["r2", "spearman"]].std()
            t = t.join(sd.add_suffix("_fold_sd"), on=["scheme", "model"])
        if self.ceiling:
            t["r2_of_ceiling"] = t["r2"] / self.ceiling["ceiling"]
        return t

    def interval(self, level: float = 0.9) -> dict[str, float]:
        """The forest's split-conformal interval: its half-width (from the first repeat's
        out-of-fold residuals, every topology once) and its coverage of held-out folds."""
        first = self.oof[(self.oof["scheme"] == "kfold") & (self.oof["repeat"] == 0)]
        return {"level": level, "half_width": conformal_half_width(first["measured"] - first["predicted"], level),
                "coverage": interval_coverage(self.oof, level)}

    @property
    def most_chosen(self) -> str:
        """The feature the ``best-feature`` baseline picked most often ("?" if it never ran)."""
        return pd.Series(self.chosen).value_counts().index[0] if self.chosen else "?"

    def headline(self) -> dict[str, str]:
        """What the study can say, in words, best first (a warning, when there is one, on
        top): the noise ceiling, the forest against it, size alone, the best single feature."""
        t = self.table()
        t = t[t["scheme"] == "kfold"].set_index("model")

        def score(model: str) -> str:
            row = t.loc[model]
            sd = row.get("r2_fold_sd", float("nan"))
            return f"R² {row['r2']:.2f}" + (f" ± {sd:.2f} (sd over folds)" if np.isfinite(sd) else "")

        lines = {}
        if self.ceiling:
            c = self.ceiling
            lines["noise ceiling"] = (f"{c['ceiling']:.2f} of the variance of mean {self.target} lies between "
                                      f"topologies ({c['replicates']:.0f} replicates each); no predictor can do better")
        else:
            lines["noise ceiling"] = ("unknown (one replicate per topology): seed noise and wiring cannot be told "
                                      "apart; train with --replicates 3")
        forest = t.loc["forest"]
        share = (f", {forest['r2'] / self.ceiling['ceiling']:.0%} of the ceiling"
                 if self.ceiling and self.ceiling["ceiling"] > 0 else "")
        lines["forest"] = f"{score('forest')}{share}; Spearman {forest['spearman']:.2f} (5-fold CV, all features)"
        size = [m for m in ("linear-size", "forest-size") if m in t.index]
        best_size = max(size, key=lambda m: t.loc[m, "r2"]) if size else None
        if best_size:
            lines["size alone"] = f"{score(best_size)} ({best_size})"
        if "best-feature" in t.index:
            lines["best single feature"] = (f"{score('best-feature')} (chosen inside each training fold; "
                                            f"most often {self.most_chosen})")
        iv = self.interval()
        lines["90% interval"] = (f"prediction ± {iv['half_width']:.3g} (split-conformal); it covered "
                                 f"{iv['coverage']:.0%} of held-out topologies in CV")
        mean_r2 = t.loc["mean", "r2"] if "mean" in t.index else 0.0
        beaten = [m for m in (best_size, "best-feature") if m in t.index and forest["r2"] <= t.loc[m, "r2"]]
        if forest["r2"] <= max(0.0, mean_r2):
            than = "the mean" if forest["r2"] <= mean_r2 else "zero"
            warning = (f"the forest does not beat the mean (its R² {forest['r2']:.2f} is not above {than}): the "
                       f"features do not predict {self.target} here")
        elif best_size in beaten:
            warning = (f"the forest does not beat size alone ({best_size}): nothing here shows an effect of wiring "
                       "beyond the size of the network")
        elif beaten:
            warning = (f"the forest does not beat the best single feature (most often {self.most_chosen}): one "
                       "statistic of the wiring carries all that the forest finds")
        else:
            return lines
        return {"WARNING": warning, **lines}


def _aggregate(table: pd.DataFrame, target: str, features: Sequence[str]) -> tuple[pd.DataFrame, dict | None]:
    if "topology_id" not in table.columns or not table["topology_id"].duplicated().any():
        return table.reset_index(drop=True), None
    ceiling = noise_ceiling(table[target], table["topology_id"])
    agg = {c: "first" for c in table.columns if c not in (target, "topology_id")}
    agg[target] = "mean"
    return table.groupby("topology_id", sort=False).agg(agg).reset_index(), ceiling


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from scipy.stats import spearmanr
    from sklearn.metrics import mean_absolute_error, r2_score

    rho = spearmanr(y, p).statistic if np.ptp(p) > 0 and np.ptp(y) > 0 else float("nan")
    return {"r2": float(r2_score(y, p)), "mae": float(mean_absolute_error(y, p)), "spearman": float(rho)}


def check_table(table: pd.DataFrame, target: str, features: Sequence[str]) -> None:
    """Raise DataError unless the table has the target and the features, numeric."""
    if target not in table.columns:
        raise DataError(f"target column {target!r} is not in the table (columns: {', '.join(map(str, table.columns))})")
    missing = [f for f in features if f not in table.columns]
    if missing:
        raise DataError(f"feature column(s) {', '.join(missing)} are not in the table")
    bad = [c for c in [target, *features] if not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        raise DataError(f"column(s) {', '.join(bad)} are not numeric")
    if table[target].isna().any():
        raise DataError(f"target {target!r} has {int(table[target].isna().sum())} missing value(s)")


def conformal_half_width(residuals: np.ndarray, level: float = 0.9) -> float:
    """Split-conformal half-width: the ``ceil((n + 1) level) / n`` quantile of ``|residuals|``
    (out-of-fold), so ``prediction ± width`` covers a new topology with probability >=
    ``level`` when topologies are exchangeable."""
    r = np.sort(np.abs(np.asarray(residuals, dtype=float)))
    k = int(np.ceil((len(r) + 1) * level))
    return float(r[min(k, len(r)) - 1])


def interval_coverage(oof: pd.DataFrame, level: float = 0.9) -> float:
    """How often the interval covers held-out topologies: for every K-fold fold, the width
    from the other folds' out-of-fold residuals (same repeat), applied to this fold."""
    kfold = oof[oof["scheme"] == "kfold"]
    res = (kfold["measured"] - kfold["predicted"]).abs()
    covered = []
    for _, rep in kfold.groupby("repeat"):
        for fold in rep["fold"].unique():
            inside = rep["fold"] == fold
            width = conformal_half_width(res[rep.index[~inside]], level)
            covered.append(res[rep.index[inside]] <= width)
    return float(pd.concat(covered).mean())


def check_target(y: np.ndarray, target: str, chance: float | None = None) -> None:
    """Refuse a target nothing can be learnt from: constant, near-constant, or at chance.

    Raises
    ------
    DataError
        When the target (per-topology means) does not vary (spread below 1e-9 of its
        scale, or 90% of the topologies sharing one value), or when every topology is
        within 0.02 of the task's chance level.
    """
    y = np.asarray(y, dtype=float)
    values, counts = np.unique(y, return_counts=True)
    if np.ptp(y) <= 1e-9 * max(1.0, float(np.abs(y).max())):
        raise DataError(f"target {target!r} is constant ({y[0]:.4g} for all {len(y)} topologies): nothing to predict")
    if counts.max() >= 0.9 * len(y):
        raise DataError(f"target {target!r} is near-constant ({counts.max()} of {len(y)} topologies share the value "
                        f"{values[counts.argmax()]:.4g}): nothing to predict")
    if chance is not None and np.abs(y - chance).max() <= 0.02:
        raise DataError(f"every topology's {target} is within 0.02 of chance ({chance:g}): the models did not learn, "
                        "so there is nothing to predict")


def _best_feature(x: pd.DataFrame, y: np.ndarray, features: Sequence[str]) -> str:
    """The feature with the largest |Spearman| with the target on these (training) rows."""
    ranks = x[list(features)].rank()
    rho = ranks.corrwith(pd.Series(y, index=x.index).rank()).abs().fillna(-1.0)
    return str(rho.idxmax())


def cross_validate(table: pd.DataFrame, target: str, features: Sequence[str], *, groups: str | None = "family",
                   n_splits: int = 5, n_repeats: int = 3, seed: int = 0, n_estimators: int = 300,
                   importances: bool = True, extra_forests: dict[str, Sequence[str]] | None = None,
                   size: Sequence[str] | None = None, chance: float | None = None) -> CVResult:
    """Score the forest and the baselines (see the module docstring).

    Parameters
    ----------
    table : DataFrame
        One row per model (or per topology); ``topology_id`` identifies replicates.
    target : str
        Column to predict.
    features : sequence of str
        Columns the forest uses; the size baselines use :data:`SIZE_FEATURES` present.
    groups : str or None
        Column for leave-one-group-out CV (skipped with fewer than two groups).
    extra_forests : dict of str to sequence of str, optional
        More forests, by name, on other columns, scored on the same folds -- e.g.
        ``{"forest-graph": graph_features}`` to measure what extra features add.
    size : sequence of str, optional
        Columns of the size baselines (default: those of :data:`SIZE_FEATURES` present).
    chance : float, optional
        The task's chance level: a target at chance everywhere is refused.

    Raises
    ------
    DataError
        A missing or non-numeric column, too few topologies, or a target nothing can be
        learnt from (see :func:`check_target`).
    """
    from sklearn.inspection import permutation_importance
    from sklearn.model_selection import LeaveOneGroupOut, RepeatedKFold

    features = list(features)
    check_table(table, target, features)
    data, ceiling = _aggregate(table, target, features)
    if len(data) < n_splits:
        raise DataError(f"need at least {n_splits} topologies for {n_splits}-fold CV, got {len(data)}")
    notes = []
    if size is None:
        size = [c for c in SIZE_FEATURES if c in data.columns]
        if not size:
            notes.append(f"size baselines skipped: none of {', '.join(SIZE_FEATURES)} is a column "
                         "(name the size columns with --size-columns)")
    else:
        size = list(size)
        check_table(table, target, size)
    check_target(data[target].to_numpy(dtype=float), target, chance)
    if ceiling is None:
        notes.append("noise ceiling skipped: one replicate per topology")
    if len(features) < 2:
        notes.append("best-feature skipped: the forest has a single feature")
    extra = {k: list(v) for k, v in (extra_forests or {}).items()}
    clash = set(extra) & set(MODELS)
    if clash:
        raise ParameterError(f"extra forest name(s) {', '.join(sorted(clash))} clash with the built-in models")
    check_table(table, target, [c for v in extra.values() for c in v])
    cols = {"forest": features, "mean": features[:1] or size[:1], "linear-size": size, "forest-size": size,
            "best-feature": features if len(features) > 1 else [], **extra}
    used = list(dict.fromkeys(features + size + [c for v in extra.values() for c in v]))
    x_all = data[used]
    y = data[target].to_numpy(dtype=float)
    schemes = [("kfold", list(RepeatedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed).split(x_all)))]
    if groups and groups in data.columns and data[groups].nunique() >= 2:
        schemes.append(("leave-one-family-out", list(LeaveOneGroupOut().split(x_all, y, data[groups]))))
    elif groups:
        notes.append(f"leave-one-{groups}-out skipped: " + (f"no column {groups!r}" if groups not in data.columns
                                                              else f"a single {groups}"))
    oof, imps, fold_rows, chosen = [], [], [], []
    pooled: dict[tuple[str, str, int], tuple[list, list]] = {}
    for scheme, splits in schemes:
        for fold, (tr, te) in enumerate(splits):
            repeat = fold // n_splits if scheme == "kfold" else 0
            for name in cols:
                if not cols[name]:
                    continue
                use = cols[name]
                if name == "best-feature":  # selected on the training rows only
                    use = [_best_feature(x_all.iloc[tr], y[tr], features)]
                    if scheme == "kfold":
                        chosen.append(use[0])
                model = make_model("forest" if name in extra or name == "best-feature" else name, seed, n_estimators)
                model.fit(x_all.iloc[tr][use], y[tr])
                pred = model.predict(x_all.iloc[te][use])
                ys, ps = pooled.setdefault((scheme, name, repeat), ([], []))
                ys.append(y[te])
                ps.append(pred)
                if len(te) >= 2:
                    fold_rows.append({"scheme": scheme, "model": name, "fold": fold, **_scores(y[te], pred)})
                if name == "forest":
                    oof.append(pd.DataFrame({"scheme": scheme, "fold": fold, "repeat": repeat, "row": te,
                                             "measured": y[te],
                                             "predicted": pred, "family": data[groups].to_numpy()[te]
                                             if groups and groups in data.columns else ""}))
                    # on the held-out folds of the first repeat: every row held out once
                    if importances and scheme == "kfold" and fold < n_splits and len(te) >= 2:
                        pi = permutation_importance(model, x_all.iloc[te][features], y[te], n_repeats=3,
                                                    random_state=seed + fold, scoring="r2")
                        imps.append(pi.importances_mean)
    # scores of the pooled out-of-fold predictions of each repetition: per-fold R² of small
    # folds is unstable (a fold with little variance sends it towards minus infinity)
    rows = [{"scheme": scheme, "model": name, "repeat": repeat,
             **_scores(np.concatenate(ys), np.concatenate(ps))}
            for (scheme, name, repeat), (ys, ps) in pooled.items()]
    imp = pd.DataFrame({"feature": features, "importance": np.mean(imps, axis=0) if imps else np.nan,
                        "std": np.std(imps, axis=0) if imps else np.nan}).sort_values("importance", ascending=False)
    return CVResult(pd.DataFrame(rows), pd.concat(oof, ignore_index=True), imp.reset_index(drop=True), ceiling,
                    len(data), features, pd.DataFrame(fold_rows), chosen, notes, target)


@dataclass
class Predictor:
    """A fitted forest with the feature list it needs and its provenance."""

    model: Any
    features: list[str]
    target: str
    meta: dict[str, Any]


def fit_predictor(table: pd.DataFrame, target: str, features: Sequence[str], *, seed: int = 0,
                  n_estimators: int = 300, meta: dict[str, Any] | None = None) -> Predictor:
    """Fit the forest on every row (per-topology means when replicates exist).

    ``meta`` gains ``training_ranges``: each feature's [min, max] over the rows fitted on,
    which :func:`predict` checks new rows against (a forest does not extrapolate).
    """
    features = list(features)
    check_table(table, target, features)
    data, _ = _aggregate(table, target, features)
    model = make_model("forest", seed, n_estimators).fit(data[features], data[target].to_numpy(dtype=float))
    ranges = {f: [float(data[f].min()), float(data[f].max())] for f in features if data[f].notna().any()}
    return Predictor(model, features, target, {**(meta or {}), "training_ranges": ranges})


def _versions() -> dict[str, str]:
    import sklearn
    import skops

    from topowire import __version__

    return {"topowire": __version__, "scikit-learn": sklearn.__version__, "skops": skops.__version__}


def save_predictor(predictor: Predictor, path: str | Path) -> None:
    """Write ``path`` (skops) and ``path + '.json'`` (features, target, metadata, versions)."""
    import skops.io as sio

    path = Path(path)
    meta = {"format": "topowire-predictor", "version": 1, "features": predictor.features,
            "target": predictor.target, "versions": _versions(), **predictor.meta}
    with atomic_path(path) as tmp:
        tmp.write_bytes(_canonical_skops(sio.dumps(predictor.model)))
    with atomic_open(str(path) + ".json") as fh:
        json.dump(meta, fh, indent=2, default=_json_default)


def _canonical_skops(data: bytes) -> bytes:
    """The same skops archive, byte-identical for the same model.

    skops names members and ``__id__`` fields after ``id()`` of the saved objects (memory
    addresses) and stamps members with the current time. The ids only have to be unique and
    consistent, so they are renumbered in the order the schema first names them, members
    are written in that order with a fixed timestamp, and the archive loads as before.
    """
    src = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(src.read("schema.json"))
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def renumber(node):
        if isinstance(node, list):
            return [renumber(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: renumber(v) for k, v in node.items()}
        if isinstance(node.get("__id__"), int):
            out["__id__"] = ids.setdefault(node["__id__"], len(ids))
        if isinstance(node.get("file"), str) and node["file"] in src.namelist():
            out["file"] = files.setdefault(node["file"], f"{len(files)}{Path(node['file']).suffix}")
        return out

    schema = renumber(schema)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        def put(name: str, content: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            dst.writestr(info, content)

        put("schema.json", json.dumps(schema, indent=2).encode())
        for old, new in files.items():
            put(new, src.read(old))
    return buffer.getvalue()


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(type(o).__name__)


def _check_archive(path: Path) -> None:
    """Refuse a predictor archive that would unpack to more than the memory limit (a zip bomb)."""
    from topowire import limits

    with zipfile.ZipFile(path) as z:
        total = sum(info.file_size for info in z.infolist())
    limits.check_memory(total, f"the predictor archive {path.name} unpacked")


def _check_meta(meta: Any, path: Path) -> dict[str, Any]:
    """The predictor metadata, checked against its schema before any of it is used."""
    def bad(what: str):
        return FileFormatError(f"{path}: {what} (not the metadata topowire writes beside a predictor)")

    if not isinstance(meta, dict) or meta.get("format") != "topowire-predictor":
        raise bad("not a topowire predictor's metadata")
    features = meta.get("features")
    if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
        raise bad("'features' must be a non-empty list of names")
    if not isinstance(meta.get("target"), str):
        raise bad("'target' must be a column name")

    def number(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)

    ranges = meta.get("training_ranges", {})
    if not isinstance(ranges, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and len(v) == 2 and all(map(number, v)) and v[0] <= v[1]
            for k, v in ranges.items()):
        raise bad("'training_ranges' must map feature names to [min, max]")
    interval = meta.get("interval")
    if interval is not None and not (isinstance(interval, dict) and number(interval.get("half_width"))):
        raise bad("'interval' must hold a finite half_width")
    for key, kind in (("arch", dict), ("task", (str, dict)), ("run", dict)):
        if key in meta and not isinstance(meta[key], kind):
            raise bad(f"'{key}' has the wrong type")
    if "train_seed" in meta:
        checks.check("train_seed", meta["train_seed"])
    return meta


def load_predictor(path: str | Path) -> Predictor:
    """Load a predictor, refusing any type outside :data:`TRUSTED_TYPES`.

    Its metadata are validated against their schema and the archive's unpacked size
    against the memory limit before anything is built.

    Raises
    ------
    FileFormatError
        Missing files, an untrusted type, an archive that is not a predictor or is too
        large, or metadata that do not describe a predictor.
    """
    import skops.io as sio

    from topowire._io import check_nesting

    path = Path(path)
    meta_path = Path(str(path) + ".json")
    if not path.is_file():
        raise FileFormatError(f"predictor file {str(path)!r} does not exist")
    if not meta_path.is_file():
        raise FileFormatError(f"predictor metadata {str(meta_path)!r} does not exist")
    try:
        text = meta_path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{meta_path} is not valid UTF-8 (byte {exc.start})") from None
    check_nesting(text, str(meta_path))
    try:
        meta = _check_meta(json.loads(text), meta_path)
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{meta_path} is not valid JSON ({exc.msg})") from None
    try:
        _check_archive(path)
        types = _file_types(path)
        untrusted = sio.get_untrusted_types(file=path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # UnicodeDecodeError too
        if isinstance(exc, TopowireError):
            raise
        raise FileFormatError(f"{path} is not a skops file: {exc}") from None
    refused = sorted(t for t in types | set(untrusted) if t not in TRUSTED_TYPES)
    if refused:
        raise FileFormatError(f"{path} holds type(s) topowire does not trust: {', '.join(refused)}")
    try:
        model = sio.load(path, trusted=untrusted)
    except Exception as exc:  # skops raises many types on a member it will not read (pickled arrays, ...)
        raise FileFormatError(f"{path}: skops cannot load it: {type(exc).__name__}: {exc}") from None
    if type(model).__name__ != "Pipeline":
        raise FileFormatError(f"{path} holds a {type(model).__name__}, not a predictor pipeline")
    return Predictor(model, list(meta["features"]), meta["target"], meta)


def predict(predictor: Predictor, table: pd.DataFrame) -> pd.DataFrame:
    """Predictions for every row, with the predictor's interval, and the table's other
    columns carried through untouched.

    Returns
    -------
    DataFrame
        ``predicted_<target>``, ``<target>_low`` and ``<target>_high`` (the split-conformal
        interval recorded at fit, when there is one), ``outside_training`` (the features
        whose value lies outside the range the predictor was fitted on by more than
        :data:`OUTSIDE_MARGIN` of its width, comma-separated; empty inside it), then the
        table's other columns.

    Raises
    ------
    DataError
        A feature of the predictor missing from the table.
    """
    missing = [f for f in predictor.features if f not in table.columns]
    if missing:
        raise DataError(f"the table lacks the predictor's feature(s) {', '.join(missing)}")
    bad = [f for f in predictor.features if not pd.api.types.is_numeric_dtype(table[f])]
    if bad:
        raise DataError(f"column(s) {', '.join(bad)} are not numeric")
    target = predictor.target
    out = pd.DataFrame({f"predicted_{target}": predictor.model.predict(table[predictor.features])}, index=table.index)
    width = (predictor.meta.get("interval") or {}).get("half_width")
    if width is not None:
        out[f"{target}_low"] = out[f"predicted_{target}"] - width
        out[f"{target}_high"] = out[f"predicted_{target}"] + width
    ranges = predictor.meta.get("training_ranges")
    if ranges is not None:
        names = [f for f in predictor.features if f in ranges]
        x = table[names].to_numpy(dtype=float)
        lo, hi = (np.array([ranges[f][i] for f in names]) for i in (0, 1))
        margin = OUTSIDE_MARGIN * (hi - lo)
        outside = (x < lo - margin) | (x > hi + margin)  # NaN (imputed) is never outside
        out["outside_training"] = [",".join(f for f, o in zip(names, row) if o) for row in outside]
    rest = [c for c in table.columns if c not in predictor.features and c not in out.columns]
    return out.join(table[rest])


def extrapolation_warning(predicted: pd.DataFrame) -> str | None:
    """A warning in words when rows of :func:`predict`'s output lie outside the predictor's
    training range (None when every row lies inside, or the predictor records no range)."""
    if "outside_training" not in predicted.columns:
        return None
    flagged = predicted.loc[predicted["outside_training"] != "", "outside_training"]
    if flagged.empty:
        return None
    counts = flagged.str.split(",").explode().value_counts()
    most = ", ".join(f"{f} ({c})" for f, c in counts.head(4).items())
    return (f"{len(flagged)} of {len(predicted)} rows lie outside the range the predictor was fitted on "
            f"(by over {OUTSIDE_MARGIN:.0%} of its width; most often {most}): "
            "a forest predicts the edge of its training data there, and the interval was not measured there")


def held_out_scores(predicted: pd.DataFrame, target: str) -> dict[str, float] | None:
    """R², MAE, Spearman and interval coverage of predictions against a ``target`` column
    carried through :func:`predict` (None when the table has no such column)."""
    if target not in predicted.columns:
        return None
    y = predicted[target].to_numpy(dtype=float)
    scores = _scores(y, predicted[f"predicted_{target}"].to_numpy(dtype=float))
    if f"{target}_low" in predicted.columns:
        scores["coverage"] = float(((y >= predicted[f"{target}_low"]) & (y <= predicted[f"{target}_high"])).mean())
    return scores


def prediction_notes(predicted: pd.DataFrame, target: str) -> list[str]:
    """What to say about :func:`predict`'s output: a ``WARNING`` line when rows lie outside
    the training range, and the scores against a ``target`` column the table carried."""
    notes = [f"WARNING: {w}" for w in [extrapolation_warning(predicted)] if w is not None]
    scores = held_out_scores(predicted, target)
    if scores is not None:
        notes.append(f"against the table's {target}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    return notes
