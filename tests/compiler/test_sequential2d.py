import pytest
import torch
from torch import nn

from topowire.compiler.sequential2d import MaskedLinear, Sequential2D
from topowire.errors import ParameterError


def test_mlp_equals_nn_sequential_with_copied_weights():
    sizes = [12, 9, 7, 3]
    s2d = Sequential2D.mlp(sizes, seed=1)
    ref = nn.Sequential(nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 7), nn.ReLU(), nn.Linear(7, 3))
    with torch.no_grad():
        for k, lin in enumerate([ref[0], ref[2], ref[4]], start=1):
            lin.weight.copy_(s2d.block(k, k - 1).weight)
            lin.bias.copy_(s2d.bias[k - 1])
    x = torch.randn(16, 12, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s2d(x), ref(x), rtol=1e-6, atol=1e-6)
    assert s2d.n_trainable() == sum(p.numel() for p in ref.parameters())


def test_randomized_has_exactly_the_mlp_trainable_count():
    sizes = [50, 20, 10, 5]
    mlp, rnd = Sequential2D.mlp(sizes), Sequential2D.randomized(sizes, seed=3)
    assert rnd.n_trainable() == mlp.n_trainable() == 50 * 20 + 20 * 10 + 10 * 5 + 35
    # the weights really are elsewhere: blocks off the sub-diagonal exist
    assert any(rnd.block(i, j) is not None for i in range(1, 4) for j in range(4) if j != i - 1)
    # masked entries stay untrainable
    x = torch.randn(4, 50)
    rnd(x).sum().backward()
    for blk in rnd.grid.values():
        assert torch.all(blk.weight.grad[blk.mask == 0] == 0)
        assert torch.all(blk.weight.detach()[blk.mask == 0] == 0)


def test_randomized_is_seeded():
    a, b, c = (Sequential2D.randomized([20, 10, 4], seed=s) for s in (1, 1, 2))
    x = torch.randn(3, 20)
    assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))


def test_grid_semantics_jacobi_and_none_blocks():
    # a 3-block grid with a skip block 0 -> 2 and no 1 -> 2 block: X2 reads the input directly
    skip = nn.Linear(4, 2, bias=False)
    grid = [[None, None, None], [nn.Linear(4, 3, bias=False), None, None], [skip, None, None]]
    net = Sequential2D(grid, [4, 3, 2], ["identity", "identity"], iterations=1, bias=False)
    x = torch.randn(5, 4)
    torch.testing.assert_close(net(x), skip(x))


def test_masked_linear():
    m = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    lin = MaskedLinear(m, torch.ones(3, 2))
    torch.testing.assert_close(lin(torch.tensor([[2.0, 3.0]])), torch.tensor([[2.0, 3.0, 5.0]]))
    assert lin.n_weights() == 4


@pytest.mark.parametrize("call, match", [
    (lambda: Sequential2D.mlp([3]), "at least two widths"),
    (lambda: Sequential2D.mlp([3, 0]), r"sizes\[i\] must be an integer >= 1"),
    (lambda: Sequential2D([[nn.Linear(2, 2)], ], [2], [], 1), "grid"),
    (lambda: Sequential2D([[None, nn.Linear(2, 2)], [None, None]], [2, 2], ["relu"], 1), "input row"),
    (lambda: Sequential2D([[None, None], [nn.Linear(3, 2), None]], [2, 2], ["relu"], 1), "maps 3 -> 2"),
    (lambda: Sequential2D([[None, None], [nn.Linear(2, 2), None]], [2, 2], ["relu"], 0), "iterations"),
])
def test_bad_grids(call, match):
    with pytest.raises(ParameterError, match=match):
        call()
