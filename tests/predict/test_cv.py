import numpy as np
import pandas as pd
import pytest
from sklearn.inspection import permutation_importance as sk_permutation_importance
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score

from topowire.predict.cv import permutation_importance


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    y = 2 * x["a"].to_numpy() + 0.5 * x["b"].to_numpy() + rng.normal(scale=0.1, size=40)
    model = LinearRegression().fit(x[["a", "b"]].assign(c=0.0), y)  # c carries no weight
    model.coef_[2] = 0.0
    return model, x, y


def test_stacked_shuffles_equal_one_predict_per_shuffle(fitted):
    model, x, y = fitted
    got = permutation_importance(model, x, y, n_repeats=4, seed=7)
    rng = np.random.default_rng(7)
    base = r2_score(y, model.predict(x))
    drops = np.zeros((4, 3))
    for r in range(4):
        for j in range(3):
            shuffled = x.copy()
            shuffled.iloc[:, j] = x.iloc[:, j].to_numpy()[rng.permutation(len(x))]
            drops[r, j] = base - r2_score(y, model.predict(shuffled))
    np.testing.assert_allclose(got, drops.mean(axis=0), rtol=1e-12, atol=1e-12)
    assert got[2] == 0.0  # a column the model ignores
    assert got[0] > got[1] > 0


def test_it_agrees_with_sklearns_permutation_importance_in_expectation(fitted):
    model, x, y = fitted
    ours = permutation_importance(model, x, y, n_repeats=400, seed=1)
    theirs = sk_permutation_importance(model, x, y, n_repeats=400, random_state=1, scoring="r2").importances_mean
    np.testing.assert_allclose(ours, theirs, atol=0.05 * ours.max())


def test_the_same_seed_gives_the_same_importances(fitted):
    model, x, y = fitted
    np.testing.assert_array_equal(permutation_importance(model, x, y, seed=3), permutation_importance(model, x, y, seed=3))
