"""The export stage: a trained model rebuilt from the weights its store kept, and the
study's best model exported."""

from __future__ import annotations

from pathlib import Path

from topowire.data import Task
from topowire.data.tasks import TASKS
from topowire.errors import DataError
from topowire.study.config import StudyConfig
from topowire.study.load import Study
from topowire.topology import Topology
from topowire.train.spec import RunSpec


def export_best(study: Study, out: Path, config: StudyConfig, task: Task, log) -> dict[str, str]:
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
