"""The Reber grammar (Reber 1967; as in Hochreiter & Schmidhuber 1997) and its tasks.

Automaton (state --symbol--> state)::

    start --B--> 1
    1 --T--> 2    1 --P--> 3
    2 --S--> 2    2 --X--> 4
    3 --T--> 3    3 --V--> 5
    4 --X--> 3    4 --S--> 6
    5 --P--> 4    5 --V--> 6
    6 --E--> accept

The embedded grammar wraps a Reber string as ``B T <reber> T E`` or ``B P <reber> P E``:
the second symbol must be repeated before the last one (a long-range dependency).

Tasks (every generator is seeded; no global random state):

- ``reber``: grammatical vs ungrammatical strings, balanced. A negative is a grammatical
  string with one in-alphabet edit (substitute, insert, delete or swap two neighbours),
  kept only if the automaton rejects it -- no symbol outside the alphabet, which was a
  trivial cue in prior work. Deduplicated; train and test share no string.
- ``reber-next``: next-symbol prediction; the target at step t is the set of symbols the
  grammar allows after the first t + 1 symbols (multi-label). A string counts as correct
  when every step is.
- ``embedded-reber``: classification on the embedded grammar; half the negatives break
  only the long-range constraint (the repeated T/P).
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from topowire import checks
from topowire.errors import DataError, FileFormatError, ParameterError

__all__ = ["ALPHABET", "TRANSITIONS", "accepts", "accepts_embedded", "sample_reber", "sample_embedded",
           "next_symbol_sets", "make_reber", "make_embedded_reber", "make_reber_next",
           "read_thesis_csv", "StringSplit"]

ALPHABET = "BTPSXVE"
INDEX = {c: i for i, c in enumerate(ALPHABET)}
#: state -> {symbol: next state}; state 0 is the start, 7 accepts.
TRANSITIONS: dict[int, dict[str, int]] = {
    0: {"B": 1}, 1: {"T": 2, "P": 3}, 2: {"S": 2, "X": 4}, 3: {"T": 3, "V": 5},
    4: {"X": 3, "S": 6}, 5: {"P": 4, "V": 6}, 6: {"E": 7}, 7: {},
}
_OPTIONS = {state: tuple(sorted(moves)) for state, moves in TRANSITIONS.items()}  # a walk's choices, in order


def _run(s: str, start: int = 0) -> int | None:
    state = start
    for ch in s:
        state = TRANSITIONS[state].get(ch)
        if state is None:
            return None
    return state


def accepts(s: str) -> bool:
    """True iff ``s`` is a complete Reber string."""
    return _run(s) == 7


def accepts_embedded(s: str) -> bool:
    """True iff ``s`` is ``B T <reber> T E`` or ``B P <reber> P E``."""
    return (len(s) >= 9 and s[0] == "B" and s[1] in "TP" and s[-2] == s[1] and s[-1] == "E"
            and accepts(s[2:-2]))


def sample_reber(rng: np.random.Generator, min_len: int = 5, max_len: int = 20) -> str:
    """One grammatical string, a uniform random walk of the automaton, with length in
    [min_len, max_len] (walks outside are redrawn)."""
    return _walk(lambda: int(rng.integers(2)), min_len, max_len)


def sample_embedded(rng: np.random.Generator, min_len: int = 9, max_len: int = 24) -> str:
    """One embedded Reber string of length in [min_len, max_len]."""
    return _embedded(lambda: int(rng.integers(2)), min_len, max_len)


def _walk(coin: Callable[[], int], min_len: int, max_len: int) -> str:
    """:func:`sample_reber` with ``coin() -> 0 or 1`` for each two-way choice (every choice
    of the automaton is two-way)."""
    if min_len < 5 or max_len < min_len:
        raise ParameterError(f"need 5 <= min_len <= max_len, got min_len = {min_len}, max_len = {max_len}")
    while True:
        state, out = 0, []
        while state != 7 and len(out) <= max_len:
            options = _OPTIONS[state]
            ch = options[coin()] if len(options) > 1 else options[0]
            out.append(ch)
            state = TRANSITIONS[state][ch]
        if state == 7 and min_len <= len(out) <= max_len:
            return "".join(out)


def _embedded(coin: Callable[[], int], min_len: int, max_len: int) -> str:
    inner = _walk(coin, max(5, min_len - 4), max_len - 4)
    c = "TP"[coin()]
    return f"B{c}{inner}{c}E"


@contextlib.contextmanager
def _coins(rng: np.random.Generator, block: int = 4096) -> Iterator[Callable[[], int]]:
    """``rng.integers(2)`` as a function of no arguments: the same values in the same order,
    and ``rng`` left in the state those calls would leave it in, drawn ahead in blocks (a
    call per coin took 0.9 us, and the default ``reber`` task draws 2.5 million to find its
    2,200 distinct positives). numpy draws ``integers(2)`` as the top bit of the bit
    generator's next 32 bits, which PCG64 serves as the halves of its 64-bit outputs, low
    half first, keeping the high half for the next draw (tested against the calls); with
    any other bit generator, a call per coin."""
    gen = rng.bit_generator
    if type(gen) is not np.random.PCG64:
        yield lambda: int(rng.integers(2))
        return
    start = gen.state
    pending = [start["uinteger"] >> 31 & 1] if start["has_uint32"] else []  # a half drawn before
    blocks: list[np.ndarray] = []
    bits: list[int] = []
    taken = 0  # coins from the outputs drawn here

    def coin() -> int:
        nonlocal taken
        if pending:
            return pending.pop()
        if taken == len(bits):
            blocks.append(gen.random_raw(block))
            bits.extend((np.stack([blocks[-1] >> np.uint64(31), blocks[-1] >> np.uint64(63)], 1).ravel()
                         & np.uint64(1)).tolist())
        taken += 1
        return bits[taken - 1]

    try:
        yield coin
    finally:
        if not taken:  # the half drawn before taken, or nothing
            gen.state = dict(start, has_uint32=0) if start["has_uint32"] and not pending else start
        else:
            used = -(-taken // 2)
            gen.state = dict(start, has_uint32=0)
            gen.advance(used)
            last = int(blocks[(used - 1) // block][(used - 1) % block])
            gen.state = dict(gen.state, has_uint32=taken % 2, uinteger=last >> 32)


def next_symbol_sets(s: str) -> np.ndarray:
    """Multi-hot ``[len(s), 7]``: row t holds the symbols allowed after ``s[:t + 1]``.

    The last row (after E) is empty.
    """
    out = np.zeros((len(s), len(ALPHABET)), dtype=np.float32)
    state = 0
    for t, ch in enumerate(s):
        state = TRANSITIONS[state][ch]
        for nxt in TRANSITIONS[state]:
            out[t, INDEX[nxt]] = 1.0
    return out


def _edit(s: str, rng: np.random.Generator) -> str:
    edit = int(rng.integers(4))
    i = int(rng.integers(len(s)))
    c = ALPHABET[int(rng.integers(len(ALPHABET)))]
    if edit == 0:
        return s[:i] + c + s[i + 1:]       # substitute
    if edit == 1:
        return s[:i] + c + s[i:]           # insert
    if edit == 2:
        return s[:i] + s[i + 1:]           # delete
    j = min(i + 1, len(s) - 1)             # swap neighbours
    return s[:i] + s[j] + s[i] + s[j + 1:] if j != i else s


@dataclass(frozen=True)
class StringSplit:
    """Strings and labels of one task: train and test, disjoint."""

    train: list[str]
    train_y: np.ndarray
    test: list[str]
    test_y: np.ndarray


def _negatives(positives: list[str], rng: np.random.Generator, reject, forbidden: set[str],
               long_range: bool = False) -> list[str]:
    out: list[str] = []
    seen = set(forbidden)
    tries = 0
    while len(out) < len(positives):
        tries += 1
        if tries > 1000 * max(1, len(positives)):
            raise DataError("could not draw enough distinct negatives; widen the length bounds")
        base = positives[int(rng.integers(len(positives)))]
        if long_range and len(out) % 2 == 0:
            flip = "P" if base[1] == "T" else "T"
            cand = base[:-2] + flip + base[-1]
        else:
            cand = _edit(base, rng)
        if cand and not reject(cand) and cand not in seen:
            seen.add(cand)
            out.append(cand)
    return out


def _positives(n: int, draw, rng: np.random.Generator) -> list[str]:
    """``n`` distinct strings, ``draw(coin)`` after ``draw(coin)`` (:func:`_coins`)."""
    out: dict[str, None] = {}
    tries = 0
    with _coins(rng) as coin:
        while len(out) < n:
            tries += 1
            if tries > 200 * n + 1000:
                raise DataError(f"the grammar has fewer than {n} distinct strings within these length bounds")
            out[draw(coin)] = None
    return list(out)


def _classification(n_train: int, n_test: int, seed: int, draw, accept, long_range: bool) -> StringSplit:
    for name, v in (("n_train", n_train), ("n_test", n_test)):
        checks.integer(name, v, 2, even=True)
    rng = np.random.default_rng(seed)
    pos = _positives((n_train + n_test) // 2, draw, rng)
    order = rng.permutation(len(pos))
    pos_train = [pos[i] for i in order[: n_train // 2]]
    pos_test = [pos[i] for i in order[n_train // 2:]]
    neg_train = _negatives(pos_train, rng, accept, set(pos), long_range)  # both splits of one composition
    neg_test = _negatives(pos_test, rng, accept, set(pos) | set(neg_train), long_range)

    def mix(p, n):
        strings = p + n
        y = np.array([1] * len(p) + [0] * len(n), dtype=np.int64)
        perm = rng.permutation(len(strings))
        return [strings[i] for i in perm], y[perm]

    tr, ytr = mix(pos_train, neg_train)
    te, yte = mix(pos_test, neg_test)
    return StringSplit(tr, ytr, te, yte)


def make_reber(n_train: int = 1000, n_test: int = 200, *, seed: int = 0, min_len: int = 5,
               max_len: int = 20) -> StringSplit:
    """The ``reber`` classification task (see the module docstring)."""
    return _classification(n_train, n_test, seed, lambda coin: _walk(coin, min_len, max_len), accepts, False)


def make_embedded_reber(n_train: int = 1000, n_test: int = 200, *, seed: int = 0, min_len: int = 9,
                        max_len: int = 24) -> StringSplit:
    """The ``embedded-reber`` classification task (see the module docstring)."""
    return _classification(n_train, n_test, seed, lambda coin: _embedded(coin, min_len, max_len),
                           accepts_embedded, True)


def make_reber_next(n_train: int = 1000, n_test: int = 200, *, seed: int = 0, min_len: int = 5,
                    max_len: int = 20) -> StringSplit:
    """The ``reber-next`` task: distinct grammatical strings (labels unused: targets come
    from :func:`next_symbol_sets`)."""
    rng = np.random.default_rng(seed)
    pos = _positives(n_train + n_test, lambda coin: _walk(coin, min_len, max_len), rng)
    return StringSplit(pos[:n_train], np.ones(n_train, np.int64), pos[n_train:], np.ones(n_test, np.int64))


def read_thesis_csv(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read Reber data in the thesis format: CSV rows ``string,label`` (a header is allowed).

    Raises
    ------
    FileFormatError
        Missing or empty file, a row without two fields, a symbol outside BTPSXVE, or a
        label other than 0/1.
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"data file {str(path)!r} does not exist")
    strings, labels = [], []
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise FileFormatError(f"{path}:{lineno}: expected 'string,label', got {row!r}")
            s, lab = row[0].strip(), row[1].strip()
            if lineno == 1 and lab not in ("0", "1") and not set(s) <= set(ALPHABET):
                continue  # a header row such as "string,label"
            bad = set(s) - set(ALPHABET)
            if not s or bad:
                raise FileFormatError(f"{path}:{lineno}: string {s!r} has symbols outside {ALPHABET}: {sorted(bad)}")
            if lab not in ("0", "1"):
                raise FileFormatError(f"{path}:{lineno}: label must be 0 or 1, got {lab!r}")
            strings.append(s)
            labels.append(int(lab))
    if not strings:
        raise FileFormatError(f"data file {str(path)!r} holds no rows")
    return strings, np.array(labels, dtype=np.int64)
