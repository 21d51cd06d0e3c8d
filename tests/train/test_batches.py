"""The batches of an epoch: plain and bucketed by length."""

import numpy as np
import pytest
import torch

from topowire.data import make_task
from topowire.train.batches import epoch_batches


@pytest.fixture(scope="module")
def lengths():
    return make_task("reber", n_train=1000, n_test=10, seed=0).len_train


def test_plain_batches_cut_the_seeded_permutation(lengths):
    batches = epoch_batches(1000, 128, (0, 3), lengths)
    want = np.random.default_rng([0, 3]).permutation(1000)
    assert [len(b) for b in batches] == [128] * 7 + [104]
    np.testing.assert_array_equal(torch.cat(batches).numpy(), want)


@pytest.mark.parametrize("n, batch, pool", [(1000, 128, 50), (1000, 32, 3), (7, 3, 1), (1, 5, 50)])
def test_bucketed_batches_hold_every_example_once(n, batch, pool, lengths):
    batches = epoch_batches(n, batch, (0, 1), lengths[:n], bucket=True, pool=pool)
    assert sorted(torch.cat(batches).tolist()) == list(range(n))
    assert sum(len(b) < batch for b in batches) <= -(-n // (pool * batch))  # a short batch per pool at most
    again = epoch_batches(n, batch, (0, 1), lengths[:n], bucket=True, pool=pool)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))  # seeded
    other = epoch_batches(n, batch, (0, 2), lengths[:n], bucket=True, pool=pool)
    assert n < 10 or any(not torch.equal(a, b) for a, b in zip(batches, other))


def test_bucketing_cuts_the_padded_steps(lengths):
    def padded(batches):
        return sum(len(b) * int(lengths[b].max()) for b in batches)

    plain = padded(epoch_batches(1000, 32, (0, 0), lengths))
    bucketed = padded(epoch_batches(1000, 32, (0, 0), lengths, bucket=True))
    real = int(lengths.sum())
    assert bucketed < plain and (bucketed - real) < 0.2 * (plain - real)


def test_without_lengths_bucket_is_the_plain_order():
    a = epoch_batches(50, 8, (4,), None, bucket=True)
    b = epoch_batches(50, 8, (4,), None)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
