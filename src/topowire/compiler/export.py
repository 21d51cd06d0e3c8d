"""Saving, loading and exporting compiled models. Nothing is pickled.

A saved model is one ``.safetensors`` file: the tensors, and in its header a JSON spec
(``format``, ``version``, the topowire version, the module kind, arch, wiring, seed and
optionally the source topology and the run that trained it) from which :func:`load` rebuilds the module before
loading the tensors, checking every name and shape.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from topowire import checks
from topowire._io import atomic_open, atomic_path
from topowire.compiler.arch import Arch
from topowire.compiler.cells import CELLS
from topowire.compiler.sequential2d import MaskedLinear, Sequential2D
from topowire.compiler.wiring import Wiring
from topowire.errors import FileFormatError, ParameterError, TopowireError
from topowire.topology.topology import Topology

__all__ = ["save", "load", "read_spec", "export_onnx", "export_torchscript", "example_input"]

FORMAT = "topowire-model"
VERSION = 1
_SPEC_KEY = "topowire"


def _spec(module: nn.Module, topology: Topology | None, run=None) -> dict[str, Any]:
    from topowire import __version__

    spec: dict[str, Any] = {"format": FORMAT, "version": VERSION, "topowire_version": __version__}
    if isinstance(getattr(module, "arch", None), Arch) and hasattr(module, "wiring"):  # a compiled model, any target
        spec.update(module="compiled", arch=module.arch.to_dict(), wiring=module.wiring.to_dict(),
                    seed=module.seed)
    elif isinstance(module, Sequential2D):
        blocks = {k: ("masked" if isinstance(m, MaskedLinear) else "linear") for k, m in module.grid.items()}
        spec.update(module="sequential2d", sizes=module.sizes, activations=module.activations,
                    iterations=module.iterations, bias=module.bias is not None, blocks=blocks)
    else:
        raise TypeError(f"save() takes a compiled topowire module, got {type(module).__name__}")
    if topology is not None:
        spec["topology"] = topology.to_dict()
    if run is not None:
        spec["run"] = run.to_dict()
    return spec


def save(module: nn.Module, path: str | Path, *, topology: Topology | None = None, run=None) -> None:
    """Write a compiled module (weights + JSON spec) to one safetensors file, atomically.

    Parameters
    ----------
    module : CompiledNet or Sequential2D
        The model (unpack a packed population's models first).
    path : path-like
        Destination, conventionally ``*.safetensors``.
    topology : Topology, optional
        The source graph, stored in the spec for provenance.
    run : RunSpec, optional
        The run that trained it (:class:`~topowire.train.spec.RunSpec`), stored in the spec.
    """
    from safetensors.torch import save_file

    spec = _spec(module, topology, run)
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_SPEC_KEY: json.dumps(spec)})


def read_spec(path: str | Path) -> dict[str, Any]:
    """The JSON spec of a saved model (validated format and version)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"model file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise FileFormatError(f"{path} is not a safetensors file: {exc}") from None
    if _SPEC_KEY not in meta:
        raise FileFormatError(f"{path} has no topowire spec in its header (not saved by topowire.save)")
    from topowire._io import check_nesting

    check_nesting(meta[_SPEC_KEY], f"{path}: the spec")
    try:
        spec = json.loads(meta[_SPEC_KEY])
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{path}: the spec in its header is not valid JSON ({exc.msg})") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise FileFormatError(f"{path}: spec format {spec.get('format') if isinstance(spec, dict) else spec!r} "
                              f"is not {FORMAT!r}")
    if spec.get("version") != VERSION:
        raise FileFormatError(
            f"{path}: model format version {spec.get('version')!r} is not supported "
            f"(this topowire reads version {VERSION}; saved by topowire {spec.get('topowire_version')})"
        )
    return spec


#: Files written before the layered form named its tensors as its pack does: ``cells.2.w_ih``
#: is ``w_ih.2`` and ``cells.2.mask_ih`` is ``mask_ih2``.
_LEGACY = re.compile(r"^cells\.(\d+)\.(\w+)$")


def _renamed(m: re.Match) -> str:
    li, name = m.groups()
    return f"{name}{li}" if name.startswith("mask") else f"{name}.{li}"


def _check_spec_against_tensors(spec: dict[str, Any], path: Path) -> None:
    """The spec's network size must be the one its tensors have (read from the header, before
    anything is built): its target names what does not match."""
    from safetensors import safe_open

    from topowire.compiler.targets import TARGETS

    if spec.get("module") != "compiled":
        return
    arch = spec.get("arch") if isinstance(spec.get("arch"), dict) else {}
    target = TARGETS.get(arch.get("kind"))
    try:
        n = int(spec["wiring"]["n_neurons"])
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (KeyError, TypeError, ValueError) as exc:
        raise FileFormatError(f"{path}: the spec cannot rebuild a model: {exc}") from None
    if target is None:
        raise FileFormatError(f"{path}: the spec names arch kind {arch.get('kind')!r}, which no registered target "
                              f"compiles (known: {', '.join(sorted(TARGETS))})")
    problem = target.check_saved(n, arch, shapes)
    if problem:
        raise FileFormatError(f"{path}: {problem}: a spec and tensors that do not match")


def _build(spec: dict[str, Any], path: Path) -> nn.Module:
    try:
        if spec.get("module") == "compiled":
            from topowire.compiler.compile import compile

            return compile(Wiring.from_dict(spec["wiring"]), Arch.from_dict(spec["arch"]),
                           seed=int(spec.get("seed", 0)))
        if spec.get("module") == "sequential2d":
            sizes = spec["sizes"]
            L = len(sizes) - 1
            grid: list[list[nn.Module | None]] = [[None] * (L + 1) for _ in range(L + 1)]
            for key, block in spec["blocks"].items():
                i, j = (int(x) for x in key.split("_"))
                grid[i][j] = (MaskedLinear(torch.zeros(sizes[i], sizes[j])) if block == "masked"
                              else nn.Linear(sizes[j], sizes[i], bias=False))
            return Sequential2D(grid, sizes, spec["activations"], spec["iterations"], bias=spec["bias"])
    except (KeyError, TypeError, ValueError, TopowireError) as exc:
        raise FileFormatError(f"{path}: the spec cannot rebuild a model: {exc}") from None
    raise FileFormatError(f"{path}: unknown module kind {spec.get('module')!r} in the spec")


def load(path: str | Path) -> nn.Module:
    """Rebuild a saved module from its spec and load its tensors (no pickle).

    Raises
    ------
    FileFormatError
        Missing or corrupt file, incompatible version, or tensors whose names or shapes
        differ from what the spec rebuilds (a tampered file).
    """
    from safetensors.torch import load_file

    path = Path(path)
    spec = read_spec(path)
    _check_spec_against_tensors(spec, path)
    module = _build(spec, path)
    tensors = load_file(str(path))
    expected = module.state_dict()
    tensors = {_LEGACY.sub(_renamed, k): v for k, v in tensors.items()}
    for name in set(expected) - set(tensors):  # pruning masks (all ones) of files saved before them
        if re.fullmatch(r"ih_mask|mask_hh\d*", name.rsplit(".", 1)[-1]):
            tensors[name] = torch.ones_like(expected[name])
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        raise FileFormatError(f"{path}: tensors do not match the spec (missing: {missing or 'none'}, "
                              f"unexpected: {extra or 'none'})")
    for name, t in tensors.items():
        if tuple(t.shape) != tuple(expected[name].shape):
            raise FileFormatError(
                f"{path}: tensor {name!r} has shape {list(t.shape)} in the file, but the spec gives "
                f"{list(expected[name].shape)}"
            )
        if t.dtype != expected[name].dtype:
            raise FileFormatError(f"{path}: tensor {name!r} has dtype {t.dtype}, expected {expected[name].dtype}")
    module.load_state_dict(tensors)
    return module


def example_input(module: nn.Module, *, batch: int = 1, seq_len: int = 20) -> torch.Tensor:
    """A zero input of the module's shape: [batch, d_in] or [batch, seq_len, d_in]."""
    checks.integer("batch", batch, 1)
    checks.integer("seq_len", seq_len, 1)
    if isinstance(module, Sequential2D):
        return torch.zeros(batch, module.sizes[0])
    arch = getattr(module, "arch", None)
    if not isinstance(arch, Arch):
        raise TypeError(f"cannot export a {type(module).__name__}")
    if not arch.recurrent:
        return torch.zeros(batch, arch.d_in)
    from topowire import limits

    width = arch.d_in + 4 * arch.gates * module.wiring.n_neurons  # input, gates and states
    limits.check_memory(4.0 * batch * seq_len * width, f"an export trace of batch {batch} x seq_len {seq_len:,}")
    return torch.zeros(batch, seq_len, arch.d_in)


class _Step(nn.Module):
    """One time step of a recurrent model on its effective (masked) weights, all layers in
    order: ``(x_t [B, d0], h [B, N], c [B, N]) -> (h', c')``. Traced: the cell is
    :data:`~topowire.compiler.cells.CELLS`'s, unrolled over the layers."""

    def __init__(self, kind: str, layers, residual: tuple[torch.Tensor, torch.Tensor] | None, gamma: float) -> None:
        super().__init__()
        self.kind, self.gamma, self.n_layers = kind, gamma, len(layers)
        self.gates = CELLS[kind].gates
        for li, (w_ih_t, b_ih, w_hh_t, b_hh) in enumerate(layers):
            for name, t in (("w_ih", w_ih_t), ("b_ih", b_ih), ("w_hh", w_hh_t), ("b_hh", b_hh)):
                self.register_buffer(f"{name}{li}", None if t is None else t.detach().clone())
        self.residual = residual is not None
        if residual is not None:
            self.register_buffer("res_diag", residual[0].detach().clone())
            self.register_buffer("res_pair", residual[1].detach().clone())

    def forward(self, xt: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        new_h, new_c, lo = [], [], 0
        residual = (self.res_diag, self.res_pair) if self.residual else None
        for li in range(self.n_layers):
            w_hh = getattr(self, f"w_hh{li}")
            width = w_hh.shape[0] if w_hh is not None else getattr(self, f"b_ih{li}").shape[0] // self.gates
            inp = xt if li == 0 else torch.cat(new_h, dim=1)
            h_l, c_l = h[:, lo:lo + width], c[:, lo:lo + width]
            gx = inp @ getattr(self, f"w_ih{li}") + getattr(self, f"b_ih{li}")
            gh = getattr(self, f"b_hh{li}") + (0 if w_hh is None else h_l @ w_hh)
            h_l, c_new = CELLS[self.kind].step(gx, gh, h_l, c_l, residual, self.gamma)
            new_h.append(h_l)
            new_c.append(c_l if c_new is None else c_new)
            lo += width
        return torch.cat(new_h, dim=1), torch.cat(new_c, dim=1)


class _Sequence(nn.Module):
    """``(x [B, T, d_in], lengths [B]) -> [B, d_out]``: the traced step looped over any T
    (scripted), each sequence read out at its last real step, as the module does."""

    def __init__(self, step: nn.Module, n: int, d0: int, readout: torch.Tensor, readout_bias: torch.Tensor) -> None:
        super().__init__()
        self.step, self.n, self.d0 = step, n, d0
        self.register_buffer("readout_t", readout.detach().t().contiguous())
        self.register_buffer("readout_bias", readout_bias.detach().clone())

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if x.size(2) > self.d0:
            x = x[:, :, : self.d0]
        elif x.size(2) < self.d0:
            x = torch.nn.functional.pad(x, [0, self.d0 - x.size(2)])
        h = x.new_zeros(x.size(0), self.n)
        c = x.new_zeros(x.size(0), self.n)
        for t in range(x.size(1)):
            h_new, c_new = self.step(x[:, t], h, c)
            alive = (lengths > t).unsqueeze(1)
            h = torch.where(alive, h_new, h)
            c = torch.where(alive, c_new, c)
        return h @ self.readout_t + self.readout_bias


def _sequence_program(module: nn.Module) -> torch.jit.ScriptModule:
    """A recurrent model as a TorchScript program with a dynamic batch and time axis, from
    its target's layers (:meth:`~topowire.compiler.targets.Target.export_layers`)."""
    layered = module.arch.target.export_layers(module)
    if layered is None:
        raise ParameterError(f"the {module.arch.kind} target exports no recurrent program")
    kind, layers, residual, gamma, readout, bias, d0 = layered
    step = _Step(kind, layers, residual, gamma).eval()
    n = sum(int(layer[1].shape[0]) // CELLS[kind].gates for layer in layers)
    with torch.no_grad():
        example = (torch.zeros(2, d0), torch.zeros(2, n), torch.zeros(2, n))
        traced = torch.jit.trace(step, example, check_trace=False)
        return torch.jit.script(_Sequence(traced, n, d0, readout, bias))


def _program(module: nn.Module, batch: int, seq_len: int):
    """What is exported: ``(program, example inputs, input names, dynamic axes)``."""
    module = module.eval()
    x = example_input(module, batch=batch, seq_len=seq_len)
    if x.dim() == 3:
        lengths = torch.full((batch,), seq_len, dtype=torch.int64)
        return (_sequence_program(module), (x, lengths), ["x", "lengths"],
                {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "y": {0: "batch"}})
    return module, (x,), ["x"], None


def export_torchscript(module: nn.Module, path: str | Path, *, batch: int = 1, seq_len: int = 20) -> None:
    """Save a TorchScript program of the module.

    A recurrent model becomes ``program(x [B, T, d_in], lengths [B]) -> [B, d_out]`` for any
    B and T, read at each sequence's last real step (as ``module(x, lengths)``). Exports of
    one model by two processes are byte-identical; within one process TorchScript numbers
    the classes of each new program (``___torch_mangle_N``), so a second export there
    differs in those names only.

    Parameters
    ----------
    module : nn.Module
        A compiled model (:func:`load` reads a saved one).
    path : str or Path
        The file to write.
    batch : int
        Batch size of the example input (fixed for a static model; a recurrent one takes any).
    seq_len : int
        Length of the example sequence (a recurrent model takes any length).
    """
    import io

    program, example, _, _ = _program(module, batch, seq_len)
    if not isinstance(program, torch.jit.ScriptModule):
        program = torch.jit.trace(program, example)
    # serialised in memory, then written by Python: torch's file writer names its archive
    # after the (temporary) file, so two exports would differ, and it aborts the process
    # on a full disk instead of raising
    buffer = io.BytesIO()
    torch.jit.save(program, buffer)
    with atomic_open(path, "wb") as fh:
        fh.write(buffer.getvalue())


def export_onnx(module: nn.Module, path: str | Path, *, batch: int = 1, seq_len: int = 20) -> None:
    """Export to ONNX: inputs ``x`` (and ``lengths`` for a recurrent model), output ``y``.

    A recurrent model's time loop becomes an ONNX ``Loop`` over a dynamic time axis, with a
    dynamic batch axis and a ``lengths`` input (through torch's TorchScript-based exporter:
    the torch.export-based one cannot yet export a loop over a dynamic axis). A static
    model is exported with the fixed ``batch``. Needs the ``onnx`` extra (onnx, onnxscript;
    onnxruntime to run the file). Parameters as :func:`export_torchscript`.
    """
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        raise ParameterError("ONNX export needs the onnx extra: pip install 'topowire[onnx]'") from None
    import contextlib
    import io
    import logging
    import warnings

    program, example, names, axes = _program(module, batch, seq_len)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with atomic_path(path) as tmp, contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecations inside torch's exporter
        warnings.simplefilter("ignore", DeprecationWarning)
        if axes is None:
            torch.onnx.export(program, example, str(tmp), dynamo=True, input_names=names, output_names=["y"],
                              external_data=False, verbose=False)
        else:
            torch.onnx.export(program, example, str(tmp), dynamo=False, input_names=names, output_names=["y"],
                              dynamic_axes=axes, verbose=False)


def save_models(topologies, arch, out: str | Path, *, seed: int = 0) -> int:
    """Compile every topology and save one model per file, with ``index.csv``, into a new folder.

    Models are compiled and written one at a time (one model in memory) into a temporary
    folder that replaces ``out`` only when every model is written, so a bad topology or a
    crash leaves nothing. ``out`` must not exist, be empty, or be a folder of models
    topowire wrote (it is then replaced). Returns the number of models.

    Parameters
    ----------
    topologies : iterable of Topology
        The graphs.
    arch : Arch
        The compile target.
    out : str or Path
        The folder to write.
    seed : int
        Initialisation seed of every model.
    """
    import pandas as pd

    from topowire import limits
    from topowire._io import atomic_dir, check_output_folder
    from topowire.compiler import compile

    out = Path(out)
    check_output_folder(out, kind="models")
    topologies = list(topologies)
    estimate = sum(arch.target.model_bytes(t.n, t.n_edges, arch) for t in topologies) / 2**20
    limits.check("output", int(estimate), f"the {len(topologies):,} models' files (estimated, MiB)")
    rows = []
    with atomic_dir(out, "models") as tmp:
        for i, t in enumerate(topologies):
            m = compile(t, arch, seed=seed)
            name = f"{i:05d}_{t.id}.safetensors"
            save(m, tmp / name, topology=t)
            rows.append({"index": i, "id": t.id, "family": t.family, "n": t.n, "edges": t.n_edges,
                         "off_path": m.wiring.n_off_path,
                         **{f"params_{k}": v for k, v in m.parameter_counts().items()}, "file": name})
        pd.DataFrame(rows).to_csv(tmp / "index.csv", index=False)
    return len(rows)
