"""Performance predictors: how well will a topology train, from its features alone?

:func:`cross_validate` (:mod:`~topowire.predict.cv`) scores a predictor -- a random forest,
or histogram gradient boosting (``model="hgb"``) -- beside baselines: the mean, a linear
model and a forest on size (effective parameters; nodes and edges only in a table without
them), the graph features on what size leaves (:mod:`~topowire.predict.beyond`, with the
design's power), a quadratic in clustering and path length, and a forest on the single
feature chosen inside each training fold, with repeated K-fold and leave-one-family-out
cross-validation through sklearn's ``cross_validate``. Every model is an sklearn Pipeline
(:mod:`~topowire.predict.models`) fitted inside the fold, so nothing is fitted outside one.
When topologies were trained with several seeds, rows are averaged per topology and the
*noise ceiling* (:mod:`~topowire.predict.ceiling`) bounds what any predictor can reach. A
outcome nothing can be learnt from is refused (:func:`check_outcome`);
:func:`~topowire.predict.headline.headline` says in words what the scores allow, and the
out-of-fold residuals give a split-conformal interval.

:class:`TopologyPredictor` (:mod:`~topowire.predict.estimator`) is the fitted predictor, an
sklearn regressor over a feature table; :func:`predict` adds intervals and flags rows
outside its training range. Predictors are saved with skops
(:mod:`~topowire.predict.persist`) and loaded only if every type the file would construct is
on topowire's own explicit list, with a JSON file of metadata beside them. Nothing is pickled.
"""

from topowire.predict.beyond import BeyondSize, design_power, detectable, size_columns, size_design
from topowire.predict.ceiling import conformal_half_width, interval_coverage, noise_ceiling
from topowire.predict.cv import CVResult, cross_validate
from topowire.predict.estimator import (
    OUTSIDE_MARGIN,
    Predictor,
    TopologyPredictor,
    extrapolation_warning,
    fit_predictor,
    held_out_scores,
    predict,
    prediction_notes,
)
from topowire.predict.models import MODELS, PREDICTORS, make_model
from topowire.predict.persist import TRUSTED_TYPES, load_predictor, save_predictor
from topowire.predict.table import check_outcome, check_table

__all__ = ["size_columns", "size_design", "design_power", "detectable", "BeyondSize", "MODELS", "PREDICTORS",
           "make_model", "noise_ceiling", "check_table", "check_outcome", "cross_validate", "CVResult",
           "fit_predictor", "TopologyPredictor", "Predictor", "save_predictor", "load_predictor", "predict",
           "TRUSTED_TYPES", "conformal_half_width", "interval_coverage", "held_out_scores",
           "extrapolation_warning", "prediction_notes", "OUTSIDE_MARGIN"]
