"""Studies: the library calls behind ``topowire fit``, ``predict``, ``report``, ``run``,
``suggest`` and ``search``, one module per stage.

A study is a trained run joined with its topologies' features. Each command is one call
here -- :func:`load_study` (``load``), :func:`fit_study` and :func:`fit_table` (``fit``),
:func:`predict_population` (``predict``), :func:`report_study` (``report``),
:func:`trained_model` (``export``), :func:`suggest_population` and :func:`search_study`
(``search``) -- and :func:`run_study` (``run``, the main job) chains the same calls:
sample -> features -> pack and train (resumable) -> cross-validated predictors ->
predictions for an unseen population -> report -> the best model exported, and keeps its
summary (``summary``). :mod:`~topowire.study.config` holds what a study is.
"""

from topowire.study.config import (
           STUDIES,
           STUDY_FILES,
           StudyConfig,
           default_recipe,
           describe_run,
           study_preset,
           validate,
)
from topowire.study.export import trained_model
from topowire.study.fit import fit_study, fit_table, select_features
from topowire.study.load import Study, load_study, model_features, study_table
from topowire.study.predict import predict_population
from topowire.study.report import report_study
from topowire.study.run import run_study

__all__ = ["StudyConfig", "Study", "STUDIES", "STUDY_FILES", "default_recipe", "study_preset", "describe_run",
           "validate", "load_study", "model_features", "study_table", "fit_study", "fit_table", "select_features",
           "predict_population", "report_study", "run_study", "trained_model"]
