import hashlib
import re

import numpy as np
import pytest

from topowire.data.reber import (
    ALPHABET,
    _coins,
    accepts,
    accepts_embedded,
    make_embedded_reber,
    make_reber,
    make_reber_next,
    next_symbol_sets,
    read_thesis_csv,
    sample_reber,
)
from topowire.errors import FileFormatError, ParameterError

# An independent description of the language, derived by hand from the state diagram:
# A3 = (T*VPX)* T*V(PS|V), A4 = X A3 | S, and a string is B (T S* X A4 | P A3) E.
_A3 = r"(?:T*VPX)*T*V(?:PS|V)"
REBER = re.compile(rf"^B(?:TS*X(?:X{_A3}|S)|P{_A3})E$")
EMBEDDED = re.compile(rf"^B(?:T(B(?:TS*X(?:X{_A3}|S)|P{_A3})E)T|P(B(?:TS*X(?:X{_A3}|S)|P{_A3})E)P)E$")


def test_automaton_agrees_with_the_regular_expression():
    rng = np.random.default_rng(0)
    for _ in range(3000):  # random strings over the alphabet, biased to look Reber-like
        s = "B" + "".join(rng.choice(list("TPSXV"), size=int(rng.integers(2, 12)))) + "E"
        assert accepts(s) == bool(REBER.match(s)), s
    for s in ["BTXSE", "BPVVE", "BTSSXXTVVE", "BPTVPXVPSE"]:
        assert accepts(s) and REBER.match(s)


def test_every_positive_accepted_every_negative_rejected():
    split = make_reber(600, 200, seed=1)
    for strings, y in ((split.train, split.train_y), (split.test, split.test_y)):
        assert y.mean() == 0.5
        for s, label in zip(strings, y):
            assert set(s) <= set(ALPHABET)
            assert bool(REBER.match(s)) == bool(label), s
    assert len(set(split.train)) == len(split.train) and len(set(split.test)) == len(split.test)
    assert not set(split.train) & set(split.test)


@pytest.mark.parametrize("which", ["train", "test"])
def test_embedded_negatives_include_long_range_violations(which):
    split = make_embedded_reber(300, 300, seed=2)
    strings, labels = (split.train, split.train_y) if which == "train" else (split.test, split.test_y)
    for s, label in zip(strings, labels):
        assert bool(EMBEDDED.match(s)) == bool(label) == accepts_embedded(s), s
    negatives = [s for s, y in zip(strings, labels) if not y]
    long_range = [s for s in negatives if accepts(s[2:-2]) and s[1] in "TP" and s[-2] in "TP" and s[1] != s[-2]]
    assert len(negatives) // 3 <= len(long_range) <= 2 * len(negatives) // 3  # the same mix in both splits
    assert not set(split.train) & set(split.test)


def test_pinned_samples():
    assert make_reber(10, 4, seed=0).train[:4] == ["BTSXXTTVVE", "BTXXVPVE", "BTSXXVEE", "BTSXXVVE"]
    assert sample_reber(np.random.default_rng(3)) == "BTSSSSXXVPSE"


@pytest.mark.parametrize("before", [0, 1, 2])
@pytest.mark.parametrize("count", [0, 1, 2, 7, 8193 * 2 + 1])
def test_coins_drawn_ahead_are_the_calls_values_and_leave_the_generator_as_they_would(before, count):
    # numpy keeps the high half of a 64-bit output for the next integers(2): `before` calls
    # leave one pending or not; 16,387 coins cross two blocks of outputs drawn ahead
    ahead, calls = np.random.default_rng(11), np.random.default_rng(11)
    for rng in (ahead, calls):
        [rng.integers(2) for _ in range(before)]
    with _coins(ahead) as coin:
        got = [coin() for _ in range(count)]
    assert got == [int(calls.integers(2)) for _ in range(count)]
    assert ahead.bit_generator.state == calls.bit_generator.state
    assert ahead.integers(1000, size=5).tolist() == calls.integers(1000, size=5).tolist()
    assert ahead.integers(2) == calls.integers(2)


def test_coins_of_another_bit_generator_are_drawn_call_by_call():
    ahead, calls = (np.random.Generator(np.random.MT19937(4)) for _ in range(2))
    with _coins(ahead) as coin:
        got = [coin() for _ in range(9)]
    assert got == [int(calls.integers(2)) for _ in range(9)] and ahead.random() == calls.random()


def test_the_tasks_strings_are_those_drawn_call_by_call():
    # pinned from the code that drew a call per coin (sha256 of the strings and labels):
    # drawing the coins ahead changed no task
    def digest(split):
        m = hashlib.sha256()
        for strings in (split.train, split.test):
            m.update("|".join(strings).encode())
        m.update(split.train_y.tobytes() + split.test_y.tobytes())
        return m.hexdigest()[:16]

    assert digest(make_reber(4000, 400, seed=0)) == "361d2df43b78084b"
    assert digest(make_reber(4000, 400, seed=3)) == "f1940a1945b60041"
    assert digest(make_embedded_reber(4000, 400, seed=0)) == "286c11d975903d55"
    assert digest(make_reber_next(1000, 200, seed=3)) == "dc7993d79404da5c"


def test_next_symbol_sets():
    np.testing.assert_array_equal(next_symbol_sets("BTXSE"), [
        [0, 1, 1, 0, 0, 0, 0],   # after B: T or P
        [0, 0, 0, 1, 1, 0, 0],   # after BT: S or X
        [0, 0, 0, 1, 1, 0, 0],   # after BTX: X or S
        [0, 0, 0, 0, 0, 0, 1],   # after BTXS: E
        [0, 0, 0, 0, 0, 0, 0],   # after E: nothing
    ])
    nxt = make_reber_next(50, 10, seed=0)
    assert all(accepts(s) for s in nxt.train + nxt.test) and not set(nxt.train) & set(nxt.test)


def test_length_bounds_and_bad_parameters():
    rng = np.random.default_rng(0)
    assert all(8 <= len(sample_reber(rng, 8, 10)) <= 10 for _ in range(100))
    with pytest.raises(ParameterError, match="min_len"):
        sample_reber(rng, 3, 10)
    with pytest.raises(ParameterError, match="n_train must be an even integer"):
        make_reber(7, 4)


def test_thesis_csv(tmp_path):
    (tmp_path / "d.csv").write_text("string,label\nBTXSE,1\nBTXE,0\n\n")
    strings, y = read_thesis_csv(tmp_path / "d.csv")
    assert strings == ["BTXSE", "BTXE"] and y.tolist() == [1, 0]
    for content, match in [("BTQSE,1\n", "outside BTPSXVE"), ("BTXSE,2\n", "label must be 0 or 1"),
                           ("BTXSE\n", "expected 'string,label'"), ("", "holds no rows")]:
        (tmp_path / "b.csv").write_text(content)
        with pytest.raises(FileFormatError, match=match):
            read_thesis_csv(tmp_path / "b.csv")
