"""The compiler: wirings, masked networks, packed populations, export."""

from topowire.compiler.arch import TARGETS, Arch
from topowire.compiler.compile import compile
from topowire.compiler.modules import CompiledNet, IterativeNet, MaskedRecurrentNet
from topowire.compiler.sequential2d import MaskedLinear, Sequential2D
from topowire.compiler.wiring import ORIENTATIONS, Wiring, wire

__all__ = ["Arch", "TARGETS", "ORIENTATIONS", "Wiring", "wire", "compile", "CompiledNet",
           "IterativeNet", "MaskedRecurrentNet", "MaskedLinear", "Sequential2D"]
