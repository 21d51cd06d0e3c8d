"""The block product computes the dense masked relational layer (values and both gradients)
for packs of different graphs and widths, rectangular first layers, small and ragged batches
and nodes without channels; it never reads a weight outside the blocks, is bitwise
deterministic on any number of threads, and runs only where the crossover says it pays."""

import numpy as np
import pytest
import torch

from topowire.compiler import Arch, kernels, pack, wire
from topowire.compiler.blocks import CROSSOVER, LANES, block_plan, block_product, blocks_pay
from topowire.compiler.targets.relational import _mask, channel_counts, layer_plans, neighbours
from topowire.topology import generate
from topowire.topology.generators import wsflex_graph

pytestmark = pytest.mark.skipif(kernels.library() is None, reason="no C compiler: the kernels do not build")


def _layer(wirings, rows: list[int], cols: list[int]):
    """Plans, the padded block mask and random weights of P layers of rows x cols channels."""
    nb = [neighbours(w) for w in wirings]
    outs = [channel_counts(r, w.n_neurons) for w, r in zip(wirings, rows)]
    ins = [channel_counts(c, w.n_neurons) for w, c in zip(wirings, cols)]
    r, c = max(rows), max(cols)
    plans = block_plan(nb, outs, ins, r, c), block_plan(nb, ins, outs, c, r)
    mask = torch.zeros(len(wirings), r, c)
    for p, (w, rp, cp) in enumerate(zip(wirings, rows, cols)):
        mask[p, :rp, :cp] = _mask(w, rp, cp)
    return plans, mask


def _both(plans, mask, batch: int, seed: int = 0):
    """(output, input gradient, weight gradient) of the block product and of the dense masked one."""
    gen = torch.Generator().manual_seed(seed)
    p, r, c = mask.shape
    w = torch.randn(p, r, c, generator=gen) * mask
    w = (w + 100.0 * (1 - mask)).requires_grad_(True)  # outside the blocks: never read by the block product
    h = torch.randn(p, batch, c, generator=gen).requires_grad_(True)
    g = torch.randn(p, batch, r, generator=gen)
    out = []
    for fn in (lambda: block_product(h, w, *plans), lambda: torch.bmm(h, (w * mask).transpose(1, 2))):
        h.grad = w.grad = None
        y = fn()
        (y * g).sum().backward()
        out.append((y.detach(), h.grad.clone(), w.grad.clone()))
    return out


GRAPHS = [wsflex_graph(16, 3.0, 0.0, seed=1), wsflex_graph(16, 5.0, 0.5, seed=2), generate("er", n=12, p=0.3, seed=3)]


@pytest.mark.parametrize("batch", [1, 5, 8, 13, 64])
def test_a_pack_of_different_graphs_and_widths_equals_the_dense_masked_layer(batch):
    wirings = [wire(g, "both", "all", "all") for g in GRAPHS]
    plans, mask = _layer(wirings, [40, 75, 33], [40, 75, 33])
    (y, dh, dw), (y0, dh0, dw0) = _both(plans, mask, batch)
    torch.testing.assert_close(y, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dh, dh0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dw, dw0, rtol=1e-5, atol=1e-5)
    assert (dw[mask == 0] == 0).all() and (y[0, :, 40:] == 0).all() and (y[2, :, 33:] == 0).all()


def test_a_rectangular_first_layer_and_nodes_without_channels_equal_the_dense_masked_layer():
    wirings = [wire(g, "both", "all", "all") for g in GRAPHS]
    # 10 output channels over 16 nodes: six nodes have none; the inputs are the stem's 48
    plans, mask = _layer(wirings, [10, 90, 21], [48, 48, 48])
    (y, dh, dw), (y0, dh0, dw0) = _both(plans, mask, 9)
    for a, b in ((y, y0), (dh, dh0), (dw, dw0)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_the_block_product_is_bitwise_deterministic_on_any_number_of_threads():
    wirings = [wire(g, "both", "all", "all") for g in GRAPHS]
    plans, mask = _layer(wirings, [40, 75, 33], [40, 75, 33])
    threads = torch.get_num_threads()
    try:
        runs = []
        for n in (1, 1, 3, 7):  # the nodes split over threads: each output row is one thread's
            torch.set_num_threads(n)
            runs.append(_both(plans, mask, 16, seed=4)[0])
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for run in runs[1:] for a, b in zip(runs[0], run))


def test_a_plan_merges_consecutive_nodes_and_its_share_is_the_executed_work():
    ring = wire(generate("ring", n=8, k=2), "both", "all", "all")  # node u reads u - 1, u, u + 1
    counts = channel_counts(24, 8)
    plan = block_plan([neighbours(ring)], [counts], [counts], 24, 24)
    segs = plan.segs.tolist()
    assert plan.nodes[:3].tolist() == [[0, 0, 3], [0, 3, 3], [0, 6, 3]]
    assert segs[:3] == [[0, 6], [21, 3], [0, 9]]  # node 0 reads nodes 0, 1 and (wrapping) 7; node 1 reads 0-2
    assert plan.k_max == 9 and plan.c_max == 3
    # 3 channels per node run as a vector of LANES: the mask's density 3/8 times LANES / 3
    assert plan.share == pytest.approx(float(_mask(ring, 24).mean()) * LANES / 3) and plan.share == 2.0


def test_blocks_run_only_where_they_pay_and_the_kernels_are_on():
    ring = wire(generate("ring", n=64, k=4), "both", "all", "all")
    complete = wire(generate("complete", n=64), "both", "all", "all")
    sparse, _ = _layer([ring], [1024], [1024])  # 16 channels a node: the share is the density, 5 / 64
    dense, _ = _layer([complete], [1024], [1024])
    h = torch.zeros(1, 4, 128)
    assert sparse[0].share == 5 / 64 and dense[0].share == 1.0 and 5 / 64 <= CROSSOVER < 1.0
    assert blocks_pay(sparse[0], h) and not blocks_pay(dense[0], h)
    assert not blocks_pay(sparse[0], h.double())
    with kernels.use_kernels(False):
        assert not blocks_pay(sparse[0], h)


@pytest.mark.parametrize("match", ["flops", "params"])
def test_a_relational_pack_trains_on_the_blocks_as_on_the_dense_masked_layers(match):
    arch = Arch("relational", d_in=12, d_out=5, width=96, depth=2, match=match)
    graphs = [wsflex_graph(16, k, 0.3, seed=i) for i, k in enumerate([2.0, 3.5, 5.0])]
    x = torch.randn(24, 12, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 5, (24,), generator=torch.Generator().manual_seed(1))
    results = []
    for on in (True, False):
        with kernels.use_kernels(on):
            net = pack(graphs, arch, seeds=[0, 1, 2])
            assert blocks_pay(layer_plans(net, match == "flops")[0], x) == on
            opt = torch.optim.SGD(net.parameters(), lr=0.1)
            for _ in range(3):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(net(x).reshape(-1, 5), y.repeat(3))
                loss.backward()
                opt.step()
            results.append((net(x).detach(), net.weight0.detach().clone(), net.weight1.detach().clone()))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_sparse_relational_model_exports_its_dense_masked_program(tmp_path):
    from topowire.compiler import compile
    from topowire.compiler.export import export_onnx, export_torchscript

    arch = Arch("relational", d_in=12, d_out=5, width=96, depth=2)
    net = compile(generate("ring", n=32, k=2), arch, seed=0).eval()
    x = torch.randn(4, 12, generator=torch.Generator().manual_seed(0))
    assert blocks_pay(layer_plans(net, True)[0], x)  # the model itself runs on the blocks
    export_torchscript(net, tmp_path / "r.pt", batch=4)
    program = torch.jit.load(str(tmp_path / "r.pt"))
    assert "bmm" in str(program.graph)
    torch.testing.assert_close(program(x), net(x), rtol=1e-5, atol=1e-5)
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    export_onnx(net, tmp_path / "r.onnx", batch=4)
    session = ort.InferenceSession(str(tmp_path / "r.onnx"))
    np.testing.assert_allclose(session.run(None, {"x": x.numpy()})[0], net(x).detach().numpy(), rtol=1e-4, atol=1e-5)
