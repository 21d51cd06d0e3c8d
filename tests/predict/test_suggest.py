"""Which topologies to train next: on a planted table whose best region is known, suggest
finds the top 1% in a third of the trainings random sampling needs; batches hold no
duplicates; the first batch covers the features; bad inputs are refused."""

import numpy as np
import pandas as pd
import pytest

from topowire.errors import DataError, ParameterError
from topowire.predict.suggest import replay, suggest, trainings_to_reach

FEATURES = ["density", "avg_clustering"]


def planted(n=1000, seed=0, width=0.15):
    """n topologies on two features; accuracy a smooth bump at (0.72, 0.30) plus seed noise, 2 replicates."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.uniform(size=n), rng.uniform(size=n)
    f = np.exp(-((x1 - 0.72) ** 2 + (x2 - 0.3) ** 2) / (2 * width**2))
    return pd.DataFrame([{"topology_id": f"t{i}", "density": x1[i], "avg_clustering": x2[i], "replicate": r,
                          "acc": 0.6 + 0.3 * f[i] + 0.01 * rng.normal()} for i in range(n) for r in range(2)])


TABLE = planted()
POOL = TABLE.drop_duplicates("topology_id")[["topology_id", *FEATURES]]


def test_suggest_reaches_the_top_percent_in_a_third_of_randoms_trainings():
    searched = [trainings_to_reach(replay(TABLE, "acc", FEATURES, 60, 10, seed=s, n_estimators=50), TABLE, "acc", 0.01)
                for s in range(5)]
    drawn = [trainings_to_reach(replay(TABLE, "acc", FEATURES, 1000, 10, strategy="random", seed=s), TABLE, "acc",
                                0.01) for s in range(21)]
    assert None not in searched
    assert np.median(searched) <= np.median(drawn) / 3, (searched, np.median(drawn))
    again = trainings_to_reach(replay(TABLE, "acc", FEATURES, 60, 10, seed=0, n_estimators=50), TABLE, "acc", 0.01)
    assert again == searched[0]  # deterministic


def test_a_batch_holds_no_duplicate_and_nothing_trained():
    trained = TABLE[TABLE["topology_id"].isin([f"t{i}" for i in range(30)])]
    pool = pd.concat([POOL, POOL.iloc[:50]])  # the pool repeats candidates, and holds the trained ones
    out = suggest(trained, pool, "acc", FEATURES, 40, seed=1, n_estimators=50)
    ids = list(out.chosen["topology_id"])
    assert len(ids) == len(set(ids)) == 40 and not set(ids) & set(trained["topology_id"])
    assert list(out.chosen["pick"]) == list(range(1, 41))
    assert (out.chosen["lower"] < out.chosen["predicted"]).all() and (out.chosen["predicted"] < out.chosen["upper"]).all()
    same = suggest(trained, pool, "acc", FEATURES, 40, seed=1, n_estimators=50)
    pd.testing.assert_frame_equal(same.chosen, out.chosen)


def test_a_batch_is_not_k_near_duplicates_of_the_best_spot():
    from topowire.predict.suggest import penalised_batch

    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 1e-3, (50, 2)), rng.uniform(-3, 3, (50, 2))])  # a tight cluster, and the rest
    score = np.r_[np.full(50, 1.0) + rng.uniform(0, 1e-3, 50), np.full(50, 0.9)]
    assert set(np.argsort(-score)[:5]) < set(range(50))  # by score alone: five near-duplicates
    picks = penalised_batch(score, x, 5)
    assert sum(p < 50 for p in picks) == 1 and picks[0] < 50  # the best spot once, then elsewhere


def test_with_nothing_trained_the_first_batch_covers_the_features():
    out = suggest(TABLE.iloc[:0], POOL, "acc", FEATURES, 8, seed=3)
    x = out.chosen[FEATURES].to_numpy()
    assert out.best is None and out.chosen["predicted"].isna().all() and "cover" in out.notes[0]
    assert (np.ptp(x, axis=0) >= 0.85).all()  # the range of both features
    quadrants = {(a > 0.5, b > 0.5) for a, b in x}
    assert len(quadrants) == 4


@pytest.mark.parametrize("change, error, match", [
    (lambda r, c: (r, c, [], 4), ParameterError, "no feature column in common"),
    (lambda r, c: (r, c.drop(columns=["density"]), FEATURES, 4), DataError, "candidates table lacks .*density"),
    (lambda r, c: (r, c.iloc[:20], FEATURES, 21), ParameterError, r"k must be an integer with 1 <= k <= 10 .*10 untrained"),
    (lambda r, c: (r.assign(acc=0.5), c, FEATURES, 4), DataError, "is constant"),
])
def test_bad_input_is_refused(change, error, match):
    trained = TABLE[TABLE["topology_id"].isin([f"t{i}" for i in range(10)])]
    results, candidates, features, k = change(trained, POOL)
    with pytest.raises(error, match=match):
        suggest(results, candidates, "acc", features, k)


def test_a_target_at_chance_is_refused():
    trained = TABLE[TABLE["topology_id"].isin([f"t{i}" for i in range(10)])].assign(acc=lambda t: 0.1 + t["acc"] / 100)
    with pytest.raises(DataError, match="within 0.02 of chance"):
        suggest(trained, POOL, "acc", FEATURES, 4, chance=0.1)
