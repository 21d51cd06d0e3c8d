import pytest
import torch

from topowire.train.optim import StackedAdam, StackedSGD, _lr_groups, clip_per_model


def _pairs(seed=0):
    g = torch.Generator().manual_seed(seed)
    stacked = [torch.randn(4, 3, 5, generator=g).requires_grad_(), torch.randn(4, 7, generator=g).requires_grad_()]
    separate = [[p.detach()[i].clone().requires_grad_() for p in stacked] for i in range(4)]
    return stacked, separate


def _grads(stacked, separate, step):
    g = torch.Generator().manual_seed(100 + step)
    for p in stacked:
        p.grad = torch.randn(p.shape, generator=g)
    for i, params in enumerate(separate):
        for p, s in zip(params, stacked):
            p.grad = s.grad[i].clone()


def _assert_same_trajectory(opt, refs, stacked, separate, steps, atol):
    for step in range(steps):
        _grads(stacked, separate, step)
        opt.step()
        for r in refs:
            r.step()
    for i, params in enumerate(separate):
        for p, s in zip(params, stacked):
            torch.testing.assert_close(s.detach()[i], p.detach(), rtol=1e-6, atol=atol)


def test_stacked_adam_equals_torch_adam_per_model():
    stacked, separate = _pairs()
    refs = [torch.optim.Adam(ps, lr=1e-2) for ps in separate]
    _assert_same_trajectory(StackedAdam(stacked, lr=1e-2), refs, stacked, separate, 15, 1e-7)


def test_stacked_sgd_equals_torch_sgd_and_takes_a_per_model_lr():
    stacked, separate = _pairs(1)
    lr = torch.tensor([0.1, 0.01, 0.5, 0.0])
    refs = [torch.optim.SGD(ps, lr=float(lr[i]), momentum=0.9) for i, ps in enumerate(separate)]
    _assert_same_trajectory(StackedSGD(stacked, lr=lr, momentum=0.9), refs, stacked, separate, 10, 1e-6)


def test_clip_per_model_equals_clip_grad_norm_on_each_model():
    stacked, separate = _pairs(2)
    _grads(stacked, separate, 0)
    for p in stacked:
        p.grad[1] *= 50  # model 1 gets clipped, the others may not
    for i, params in enumerate(separate):
        for p, s in zip(params, stacked):
            p.grad = s.grad[i].clone()
    norms = clip_per_model(stacked, 3.0)
    for i, params in enumerate(separate):
        before = torch.nn.utils.clip_grad_norm_(params, 3.0)
        torch.testing.assert_close(norms[i], before)
        for p, s in zip(params, stacked):
            torch.testing.assert_close(s.grad[i], p.grad)


def test_stacked_sgd_with_nesterov_and_weight_decay_equals_torch_sgd():
    stacked, separate = _pairs(3)
    refs = [torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4) for ps in separate]
    opt = StackedSGD(stacked, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    _assert_same_trajectory(opt, refs, stacked, separate, 10, 1e-6)


def test_stacked_adam_with_weight_decay_equals_torch_adam_l2():
    stacked, separate = _pairs(4)
    refs = [torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-2) for ps in separate]
    _assert_same_trajectory(StackedAdam(stacked, lr=1e-2, weight_decay=1e-2), refs, stacked, separate, 15, 1e-7)


def test_the_distinct_learning_rates_are_grouped_by_model():
    assert _lr_groups(1e-3) == [(1e-3, None)]
    assert _lr_groups(torch.tensor([0.5, 0.5])) == [(0.5, None)]
    assert _lr_groups(torch.tensor([0.5, 0.25, 0.5, 0.0])) == [(0.0, [3]), (0.25, [1]), (0.5, [0, 2])]


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_the_fused_adam_step_equals_the_elementwise_one_and_torch_adam_with_a_per_model_lr(weight_decay):
    fused_params, separate = _pairs(5)
    elementwise_params, _ = _pairs(5)
    initial = fused_params[0].detach().clone()
    lr = torch.tensor([1e-2, 1e-3, 1e-2, 0.0])  # two models share a rate; one does not move
    refs = [torch.optim.Adam(ps, lr=float(lr[i]), weight_decay=weight_decay) for i, ps in enumerate(separate)]
    fused = StackedAdam(fused_params, lr=lr, weight_decay=weight_decay)
    elementwise = StackedAdam(elementwise_params, lr=lr, weight_decay=weight_decay)
    fused.step_elementwise = lambda: pytest.fail("the CPU step fell back to the elementwise ops")
    for step in range(15):
        _grads(elementwise_params, [], step)  # the same gradients as the fused side gets
        elementwise.step_elementwise()
    _assert_same_trajectory(fused, refs, fused_params, separate, 15, 1e-7)
    for a, b in zip(fused_params, elementwise_params):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert not torch.equal(fused_params[0], initial) and torch.equal(fused_params[0].detach()[3], initial[3])


def test_a_parameter_without_a_gradient_keeps_its_value_and_state_in_the_fused_step():
    stacked, _ = _pairs(6)
    opt = StackedAdam(stacked, lr=1e-2)
    before = stacked[1].detach().clone()
    stacked[0].grad = torch.ones_like(stacked[0])
    opt.step()
    assert torch.equal(stacked[1].detach(), before) and not opt.m[1].any() and not opt.v[1].any()
    assert opt.m[0].allclose(torch.full_like(opt.m[0], 0.1)) and opt.t == 1
