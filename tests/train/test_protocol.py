"""graph2nn's training protocol as options of every run: SGD with Nesterov momentum, a cosine
schedule and L2 weight decay equal torch's optimizers per model; standardisation and
augmentation of image tasks; each replicate its own data stream; the defaults unchanged."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from topowire.compiler import Arch, compile, pack
from topowire.data import make_task
from topowire.data.transforms import augment, standardized
from topowire.errors import ParameterError
from topowire.topology import ws_graph
from topowire.topology.generators import wsflex_graph
from topowire.train import TrainConfig, run_id, train_pack, train_population
from topowire.train.trainer import pack_jobs

ARCH = Arch("relational", width=32, depth=2, match="none")
GRAPHS = [wsflex_graph(8, k, 0.3, seed=i) for i, k in enumerate([2.5, 4.0, 7.0])]


@pytest.fixture(scope="module")
def digits():
    return make_task("digits", n_train=96, n_test=48, seed=0)


def test_sgd_nesterov_cosine_and_weight_decay_packed_equal_torch_per_model(digits):
    config = TrainConfig(epochs=3, batch_size=32, lr=0.1, optimizer="sgd", momentum=0.9, nesterov=True,
                         weight_decay=5e-4, schedule="cosine", clip=None, seed=3)
    arch = ARCH.replace(d_in=digits.d_in, d_out=digits.d_out)
    seeds = [11, 12, 13]
    packed = pack(GRAPHS, arch, seeds)
    train_pack(packed, digits, config)
    for p, (g, s) in enumerate(zip(GRAPHS, seeds)):
        net = compile(g, arch, seed=s)
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3)
        n = len(digits.y_train)
        for epoch in range(3):
            order = torch.from_numpy(np.random.default_rng([3, epoch]).permutation(n))
            for start in range(0, n, 32):
                idx = order[start:start + 32]
                loss = F.cross_entropy(net(digits.x_train[idx]), digits.y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
        mine = packed.unpack(p)
        for name, t in net.named_parameters():
            torch.testing.assert_close(getattr(mine, name), t, rtol=1e-4, atol=1e-5, msg=f"model {p}, {name}")


def test_the_cosine_schedule_ends_at_zero_and_is_torchs():
    config = TrainConfig(epochs=4, lr=0.2, schedule="cosine")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    for epoch in range(4):
        assert config.lr * config.lr_factor(epoch) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
        opt.step()
        sched.step()
    assert config.lr * config.lr_factor(4) == pytest.approx(0.0, abs=1e-15)


def _crops(x, image, q):
    """Every crop of the zero-padded image and of its mirror image."""
    c, h, w = image
    padded = F.pad(x.reshape(c, h, w), (q, q, q, q))
    out = []
    for img in (padded, padded.flip(-1)):
        for dy in range(2 * q + 1):
            for dx in range(2 * q + 1):
                out.append(img[:, dy:dy + h, dx:dx + w].reshape(-1))
    return torch.stack(out)


def test_augmentation_is_a_seeded_crop_of_the_padded_image_or_of_its_mirror(digits):
    x = digits.x_train[:24]
    a, again, other = augment(x, digits.image, (0, 1, 2)), augment(x, digits.image, (0, 1, 2)), \
        augment(x, digits.image, (0, 1, 3))
    assert torch.equal(a, again) and not torch.equal(a, other)
    assert digits.image == (1, 8, 8)
    for i in range(len(x)):
        assert (_crops(x[i], digits.image, 1) == a[i]).all(1).any(), f"example {i} is no crop"
    assert not torch.equal(a, x)  # something moved


def test_an_augmented_model_trains_alone_as_in_its_pack(digits):
    config = TrainConfig(epochs=2, batch_size=32, augment=True, standardize=True, seed=1)
    arch = ARCH.replace(d_in=digits.d_in, d_out=digits.d_out)
    packed = pack(GRAPHS, arch, [0, 1, 2])
    together = train_pack(packed, digits, config)
    alone = pack(GRAPHS[1:2], arch, [1])
    res = train_pack(alone, digits, config)
    assert res[0]["test_loss"] == pytest.approx(together[1]["test_loss"], rel=1e-5)
    for name, t in alone.unpack(0).named_parameters():
        torch.testing.assert_close(getattr(packed.unpack(1), name), t, rtol=1e-4, atol=1e-5)
    plain = train_pack(pack(GRAPHS[1:2], arch, [1]), digits, config.replace(augment=False))
    assert plain[0]["train_loss"] != pytest.approx(res[0]["train_loss"], rel=1e-6)


def test_standardisation_uses_the_training_set_statistics(digits):
    s = standardized(digits)
    assert float(s.x_train.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(s.x_train.std()) == pytest.approx(1.0, abs=1e-3)
    mean, std = float(digits.x_train.double().mean()), float(digits.x_train.double().std())
    torch.testing.assert_close(s.x_test, (digits.x_test - mean) / std, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("option", ["standardize", "augment"])
def test_image_options_are_refused_on_a_sequence_task(option):
    reber = make_task("reber", n_train=32, n_test=16)
    with pytest.raises(ParameterError, match=f"^{option} applies to image tasks.*not 'reber'$"):
        train_population([ws_graph(6, 2, 0.1, seed=0)], Arch("gru"), reber, TrainConfig(epochs=1, **{option: True}))


def test_nesterov_needs_sgd_with_momentum():
    with pytest.raises(ParameterError, match="nesterov needs optimizer sgd with momentum > 0"):
        TrainConfig(nesterov=True)
    with pytest.raises(ParameterError, match="nesterov needs"):
        TrainConfig(optimizer="sgd", momentum=0.0, nesterov=True)


def test_each_replicate_its_own_data_stream_packs_by_replicate(digits):
    shared = TrainConfig(epochs=1, batch_size=32, replicates=2, seed=4)
    own = shared.replace(data_order="replicate")
    topologies = [ws_graph(8, 2, 0.2, seed=i) for i in range(3)]
    assert [sorted({s.replicate for s in job.specs}) for job in pack_jobs(topologies, ARCH, digits, own)] == [[0], [1]]
    assert len(pack_jobs(topologies, ARCH, digits, shared)) == 1
    assert own.data_stream(0) != own.data_stream(1) and shared.data_stream(0) == shared.data_stream(1)
    seen = {}

    def batches(config, replicate):
        from topowire.train import trainer

        first = []
        original = trainer.task_batch

        def spy(task, split, idx, device):
            if split == "train":
                first.append(idx.clone())
            return original(task, split, idx, device)

        trainer.task_batch = spy
        try:
            train_pack(pack(GRAPHS[:1], ARCH.replace(d_in=64, d_out=10), [0]), digits, config,
                       stream=config.data_stream(replicate))
        finally:
            trainer.task_batch = original
        return torch.cat(first)

    for name, config in (("shared", shared), ("own", own)):
        seen[name] = [batches(config, r) for r in (0, 1)]
    assert torch.equal(*seen["shared"])
    assert not torch.equal(*seen["own"])
    assert sorted(seen["own"][0].tolist()) == sorted(seen["own"][1].tolist()) == list(range(96))
    assert run_id(ARCH, digits, own) != run_id(ARCH, digits, shared)


def test_the_default_protocol_gives_the_results_and_run_ids_of_before_it_existed():
    """Pinned from the release before the protocol options (same seeds, same machine class)."""
    torch.set_num_threads(1)
    task = make_task("reber", n_train=96, n_test=32, seed=0)
    config = TrainConfig(epochs=2, batch_size=32, replicates=2, seed=5)
    res = train_population([ws_graph(8, 2, 0.3, seed=i) for i in range(2)], Arch("gru"), task, config)
    assert run_id(Arch("gru"), task, config) == "aa268f69ac86c2ba"
    np.testing.assert_allclose(res["train_loss"], [0.6938120722770691, 0.6948494911193848, 0.6937307715415955,
                                                   0.6957414746284485], rtol=1e-5)
    np.testing.assert_allclose(res["test_loss"], [0.6907602548599243, 0.6917641162872314, 0.6932706832885742,
                                                  0.692371129989624], rtol=1e-5)
