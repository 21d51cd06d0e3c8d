"""What a study is: its config (:class:`StudyConfig`), the embedded studies
(:data:`STUDIES`), the files it writes, and the run it describes (:func:`describe_run`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

from topowire import checks
from topowire.compiler import Arch
from topowire.data import Task, make_task
from topowire.topology import Recipe, parse_recipe
from topowire.train import TrainConfig
from topowire.train.config import PROTOCOL_DEFAULTS
from topowire.train.spec import RunSpec

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

def validate(recipe: Recipe, config: StudyConfig) -> tuple[Task, RunSpec]:
    """The task and the run, or ParameterError -- before anything is written."""
    from topowire.train.config import check_device

    task = make_task(config.task, seed=config.train.seed, n_train=config.n_train, n_test=config.n_test)
    return task, RunSpec.of(config.arch, task, config.train.replace(device=check_device(config.train.device)))

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

def stage_progress(progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    """``progress`` for one stage: ``(done, total)`` reported as ``(stage, done, total)``."""
    return None if progress is None else lambda done, total: progress(stage, done, total)
