"""The compiler: wirings, targets (as plug-ins), masked networks, packed populations, export."""

from topowire.compiler.arch import Arch
from topowire.compiler.modules import CompiledNet
from topowire.compiler.pack import PackedPopulation
from topowire.compiler.sequential2d import MaskedLinear, Sequential2D
from topowire.compiler.targets import TARGETS, Target, register_target
from topowire.compiler.targets.iterative import IterativeNet
from topowire.compiler.targets.layered import LayeredRecurrentNet, PackedLayered
from topowire.compiler.targets.recurrent import MaskedRecurrentNet
from topowire.compiler.wiring import ORIENTATIONS, Wiring, wire

__all__ = ["Arch", "TARGETS", "Target", "register_target", "ORIENTATIONS", "Wiring", "wire", "compile", "pack",
           "unpack", "CompiledNet", "IterativeNet", "MaskedRecurrentNet", "LayeredRecurrentNet", "PackedPopulation",
           "PackedLayered", "MaskedLinear", "Sequential2D"]

# last: importing the submodules compile and pack binds their names here; these are the functions
from topowire.compiler.compile import compile, pack, unpack  # noqa: E402
