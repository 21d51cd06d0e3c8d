import torch

from topowire.train.optim import StackedAdam, StackedSGD, clip_per_model


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
