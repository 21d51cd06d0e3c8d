"""Predictors on disk, without pickle: the model as a skops archive (loaded only if every
type it would construct is on topowire's own list) and a JSON file of metadata beside it
(features, outcome, model, provenance), validated against its schema before use."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from topowire import checks
from topowire._io import atomic_open, atomic_path
from topowire.errors import FileFormatError, TopowireError
from topowire.predict.estimator import TopologyPredictor
from topowire.predict.models import PREDICTORS

__all__ = ["TRUSTED_TYPES", "save_predictor", "load_predictor"]

TRUSTED_TYPES = [
    "sklearn.pipeline.Pipeline",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.linear_model._base.LinearRegression",
    "sklearn.dummy.DummyRegressor",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss._loss.CyHalfSquaredError",
    "numpy.random._generator.Generator",
    "numpy.uint64",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "topowire.predict.models.Columns",
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


def _versions() -> dict[str, str]:
    import sklearn
    import skops

    from topowire import __version__

    return {"topowire": __version__, "scikit-learn": sklearn.__version__, "skops": skops.__version__}


def save_predictor(predictor: TopologyPredictor, path: str | Path) -> None:
    """Write ``path`` (skops) and ``path + '.json'`` (features, outcome, metadata, versions)."""
    import skops.io as sio

    path = Path(path)
    meta = {"format": "topowire-predictor", "version": 1, "features": list(predictor.features),
            "outcome": predictor.outcome, "model": predictor.model, "seed": predictor.seed,
            "n_estimators": predictor.n_estimators, "versions": _versions(), **(predictor.meta or {}),
            "training_ranges": predictor.ranges_}
    with atomic_path(path) as tmp:
        tmp.write_bytes(_canonical_skops(sio.dumps(predictor.pipeline_)))
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
    if "outcome" not in meta and "target" in meta:  # earlier files named the predicted column "target"
        meta = {("outcome" if k == "target" else k): v for k, v in meta.items()}
    if not isinstance(meta.get("outcome"), str):
        raise bad("'outcome' must be a column name")
    if meta.get("model", "forest") not in PREDICTORS:
        raise bad(f"'model' must be one of {', '.join(PREDICTORS)}")

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
    for key, expected in (("arch", dict), ("task", (str, dict)), ("run", dict)):
        if key in meta and not isinstance(meta[key], expected):
            raise bad(f"'{key}' has the wrong type")
    if "train_seed" in meta:
        checks.check("train_seed", meta["train_seed"])
    return meta


def load_predictor(path: str | Path) -> TopologyPredictor:
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

    from topowire._io import read_text

    path = Path(path)
    meta_path = Path(str(path) + ".json")
    if not path.is_file():
        raise FileFormatError(f"predictor file {str(path)!r} does not exist")
    if not zipfile.is_zipfile(path):
        raise FileFormatError(f"{str(path)!r} is not a predictor (a .skops file that `topowire fit` writes)")
    text = read_text(meta_path, "predictor metadata")
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
    return _restore(model, meta)


def _restore(pipeline, meta: dict[str, Any]) -> TopologyPredictor:
    """The fitted predictor of a loaded pipeline and its metadata. A pipeline of release 0.1
    read every column it was given (it had no column step): it is given one."""
    from sklearn.pipeline import Pipeline

    from topowire.predict.models import Columns

    features = list(meta["features"])
    if "select" not in pipeline.named_steps:
        pipeline = Pipeline([("select", Columns(features)), *pipeline.steps])
    known = ("features", "outcome", "model", "seed", "n_estimators", "format", "version", "versions",
             "training_ranges")
    predictor = TopologyPredictor(features, meta["outcome"], meta.get("model", "forest"), meta.get("seed", 0),
                                  meta.get("n_estimators", 300), {k: v for k, v in meta.items() if k not in known})
    predictor.pipeline_, predictor.ranges_ = pipeline, meta.get("training_ranges", {})
    return predictor


