"""Compile targets as plug-ins: one class per target family, looked up in one registry.

A :class:`Target` knows everything kind-specific about the networks a wiring compiles
into: its options (a frozen dataclass, each field's domain in its metadata or
:data:`topowire.checks.DOMAINS`), its
natural wiring, its gate count, whether it runs over time, the tasks it accepts, its
tensors (the initial draw, their layout in a pack), its parameter counts, its forward pass
over a leading model axis P (and, where it has a faster way, a training step's losses
computed with their backward: :meth:`Target.losses`) and the program it exports.
:func:`~topowire.compiler.compile`, :func:`~topowire.compiler.pack`, the trainer,
``save``/``load``/export and the command line ask the registry; nothing outside this package
branches on a kind.

Adding a target is one class: subclass :class:`Target`, set ``kinds``, implement
:meth:`Target.initial_tensors`, :attr:`Target.layout` and :meth:`Target.forward` (the
generic :class:`~topowire.compiler.modules.CompiledNet` and
:class:`~topowire.compiler.pack.PackedPopulation` then build, pack, unpack, train, save and
load it), and call :func:`register_target` at the end of its module: a module of this
package is found with no other edit, and an entry point of the group ``topowire.targets``
from another package (:mod:`topowire.plugins`); the protocol and the registry live in
:mod:`.base`. A target with modules of its own overrides
:meth:`Target.build` and :meth:`Target.pack` (the layered form does).
"""

from __future__ import annotations

from topowire.compiler.targets.base import (
    TARGETS,
    NoOptions,
    Target,
    get_target,
    kinds_help,
    option_fields,
    register_target,
)
from topowire.plugins import discover

__all__ = ["Target", "NoOptions", "TARGETS", "register_target", "get_target", "option_fields", "kinds_help"]

# every target registers itself: the built-ins in the order of --arch, then any other module
# dropped into this package, then the entry points of "topowire.targets" (topowire.plugins)
discover(__name__, __path__, ("iterative", "recurrent", "layered", "relational"), "topowire.targets")
