"""Architecture configs: a compile target (``kind``), the fields every target shares, and
the target's own options."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from topowire import checks
from topowire.compiler.wiring import BACKENDS, ORIENTATIONS, OUTPUT_ROLES
from topowire.errors import ParameterError

__all__ = ["Arch", "SHARED"]


def _kinds():
    """The registered targets' kinds (plug-ins included)."""
    from topowire.compiler.targets import TARGETS

    return TARGETS


checks.declare("kind", checks.Domain("choice", choices=_kinds))
checks.declare("orientation", checks.Domain("choice", choices=ORIENTATIONS, none=True))
checks.declare("outputs", checks.Domain("choice", choices=OUTPUT_ROLES, none=True))
checks.declare("backend", checks.Domain("choice", choices=BACKENDS))

#: The fields every target has (the rest of an arch are its target's options).
SHARED = ("kind", "d_in", "d_out", "orientation", "inputs", "outputs", "backend")

#: Every option of the targets of release 0.1 with its default: a run id hashes an arch with
#: all of them, so the ids of stores written then stay the ids of the same runs now.
_RELEASE_0_1 = {"activation": "relu", "iterations": None, "cell": "gru", "recurrence": "dense",
                "input_width": "fixed", "residual": "homogeneous", "r": 0.9, "phi": 0.0, "gamma": 0.1,
                "r_spread": 0.0}


@dataclasses.dataclass(frozen=True, init=False)
class Arch:
    """A frozen architecture config (round-trips through JSON; its hash names runs).

    ``Arch(kind, **fields)``: the fields every target shares below, and the options of the
    target ``kind`` names (:mod:`topowire.compiler.targets`), given by name as well --
    ``Arch("wcrnn", r=0.9)``, ``Arch("iterative", activation="tanh")``. They are read as
    attributes (``arch.r``) and live in ``arch.options``.

    Parameters
    ----------
    kind : str
        The compile target: a kind of a registered target (plug-ins included; see
        :data:`~topowire.compiler.TARGETS`, whose ``doc`` say what each compiles into)
    d_in : int
        Width of the data (never depends on the graph).
    d_out : int
        Readout width (classes).
    orientation : {"dag", "random-dag", "both", "as-is"}, optional
        How edges become connections (see :func:`topowire.compiler.wire`). Unset: the
        target's natural wiring.
    inputs : {"all", "sources"} or int, optional
        Neurons that read the data: ``all``, ``sources`` (no incoming edge) or an int K (the
        K of highest degree). Unset: the target's natural wiring.
    outputs : {"all", "sinks"}, optional
        Neurons read out: ``all`` or ``sinks`` (no outgoing edge). Unset: the target's natural
        wiring.
    backend : {"dense", "sparse", "torch_sparse", "auto"}
        How graph weights are stored and multiplied (see :mod:`topowire.compiler.backends`).
    """

    kind: str
    d_in: int
    d_out: int
    orientation: str
    inputs: str | int
    outputs: str
    backend: str
    options: Any

    def __init__(self, kind: str = "gru", d_in: int = 7, d_out: int = 2, orientation: str | None = None,
                 inputs: str | int | None = None, outputs: str | None = None, backend: str = "dense",
                 options: Any = None, **fields: Any) -> None:
        from topowire.compiler.targets import get_target

        target = get_target(checks.check("kind", kind))
        cls = target.options(kind)
        if options is None:
            names = {f.name for f in dataclasses.fields(cls)}
            stray = sorted(set(fields) - names)
            if stray:
                raise ParameterError(f"kind {kind!r} has no option {', '.join(map(repr, stray))} (its options: "
                                     f"{', '.join(sorted(names)) or 'none'})")
            options = cls(**fields)
        elif fields or not isinstance(options, cls):
            raise ParameterError(f"kind {kind!r} takes its options as a {cls.__name__} or as fields, not both")
        natural = dict(zip(("orientation", "inputs", "outputs"), target.natural_wiring))
        if isinstance(inputs, str) and inputs.isascii() and inputs.isdigit():  # "3" from a file
            inputs = int(inputs)
        values = {"kind": kind, "d_in": d_in, "d_out": d_out, "orientation": orientation, "inputs": inputs,
                  "outputs": outputs, "backend": backend}
        for name in SHARED:
            value = values[name] if values[name] is not None else natural.get(name)
            object.__setattr__(self, name, checks.check(name, value))
        object.__setattr__(self, "options", options)
        target.check_arch(self)

    def __getattr__(self, name: str) -> Any:  # the target's options, as attributes
        if name.startswith("__") or name == "options":
            raise AttributeError(name)
        try:
            return getattr(self.options, name)
        except AttributeError:
            raise AttributeError(f"an arch of kind {self.kind!r} has no field {name!r}") from None

    def __reduce__(self):  # pickled as its fields (Ray ships archs to its workers)
        return (_rebuild, (self.to_dict(),))

    @property
    def target(self):
        """The :class:`~topowire.compiler.targets.Target` this arch compiles with."""
        from topowire.compiler.targets import get_target

        return get_target(self.kind)

    @classmethod
    def thesis(cls, cell: str = "gru", **changes: Any) -> Arch:
        """The preset of arXiv 2407.20601: layered, dense intra-layer recurrence, input width
        = number of sources, u<v orientation, sources in and sinks out."""
        base = dict(kind="layered", cell=cell, recurrence="dense", input_width="sources",
                    orientation="dag", inputs="sources", outputs="sinks")
        return cls(**{**base, **changes})

    @property
    def gates(self) -> int:
        """Gate blocks stacked in the recurrent weights (1 for the iterative map)."""
        return self.target.gates(self)

    @property
    def recurrent(self) -> bool:
        """Runs over time steps (a sequence model), not a static input."""
        return self.target.over_time

    @property
    def masked_cell(self) -> bool:
        """One masked recurrent weight over all neurons (``rnn-*``, ``lstm``, ``gru``, ``wcrnn``):
        one ``W_hh`` whose mask is the wiring (not the iterative map or the layered form)."""
        return self.target.masked_recurrence

    def to_dict(self) -> dict[str, Any]:
        """The shared fields and the target's options, flat."""
        return {**{name: getattr(self, name) for name in SHARED}, **dataclasses.asdict(self.options)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Arch:
        """An arch from :meth:`to_dict` (or from a file of release 0.1, which held every
        target's options: those of other targets are ignored)."""
        from topowire.compiler.targets import TARGETS, get_target

        if not isinstance(d, dict):
            raise ParameterError(f"an arch is a table of fields, got {type(d).__name__}")
        kind = d.get("kind", "gru")
        own = {f.name for f in dataclasses.fields(get_target(checks.check("kind", kind)).options(kind))}
        known = set(SHARED) | set(_RELEASE_0_1) | {f.name for t in set(TARGETS.values()) for k in t.kinds
                                                  for f in dataclasses.fields(t.options(k))}
        unknown = set(d) - known
        if unknown:
            raise ParameterError(f"unknown arch key(s) {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in d.items() if k in SHARED or k in own})

    def replace(self, **changes: Any) -> Arch:
        """A copy with ``changes``; a new ``kind`` keeps only the options that kind has."""
        return Arch.from_dict({**self.to_dict(), **changes})

    def run_key(self) -> dict[str, Any]:
        """What a run id hashes: the fields, completed by release 0.1's defaults for the
        targets of that release (see :data:`_RELEASE_0_1`)."""
        d = self.to_dict()
        return {**_RELEASE_0_1, **d} if set(d) - set(SHARED) <= set(_RELEASE_0_1) else d

    @property
    def hash(self) -> str:
        """Short content hash of the config."""
        return hashlib.sha256(json.dumps(self.run_key(), sort_keys=True).encode()).hexdigest()[:12]


def _rebuild(d: dict[str, Any]) -> Arch:
    return Arch.from_dict(d)
