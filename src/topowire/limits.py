"""Size limits: what one input may make topowire allocate or compute before it refuses.

A tiny file or one flag can ask for a graph of a billion nodes or a recipe of 10^11
graphs. Every such size is checked against a limit here *before* anything is allocated,
and refused with one line naming the value, the limit and the variable that raises it.

==================  =======================  ==========================================
limit               environment variable     default
==================  =======================  ==========================================
nodes               ``TOPOWIRE_MAX_NODES``   100,000 nodes in one graph
graphs              ``TOPOWIRE_MAX_GRAPHS``  1,000,000 graphs in one recipe
memory              ``TOPOWIRE_MAX_MEMORY_MB``  1,024 MiB for one allocation estimated
                                             up front (an ER graph's candidate pairs,
                                             a model rebuilt from a file, an export)
examples            ``TOPOWIRE_MAX_EXAMPLES``   1,000,000 examples in one data set split
models              ``TOPOWIRE_MAX_MODELS``     1,000,000 models in one run
trees               ``TOPOWIRE_MAX_TREES``      100,000 trees in one forest
total_nodes         ``TOPOWIRE_MAX_TOTAL_NODES``  100,000,000 nodes in one population
total_edges         ``TOPOWIRE_MAX_TOTAL_EDGES``  100,000,000 edges in one population
                                             (estimated from the parameters before
                                             each graph is drawn)
output              ``TOPOWIRE_MAX_OUTPUT_MB``  10,240 MiB of models one command writes
                                             (estimated before the first is written)
==================  =======================  ==========================================
"""

from __future__ import annotations

import os

from topowire.errors import ParameterError

__all__ = ["LIMITS", "LimitError", "limit", "check", "check_memory"]

#: name -> (environment variable, default, what it counts)
LIMITS = {
    "nodes": ("TOPOWIRE_MAX_NODES", 100_000, "nodes in one graph"),
    "graphs": ("TOPOWIRE_MAX_GRAPHS", 1_000_000, "graphs in one recipe"),
    "memory": ("TOPOWIRE_MAX_MEMORY_MB", 1024, "MiB for one allocation"),
    "examples": ("TOPOWIRE_MAX_EXAMPLES", 1_000_000, "examples in one data set split"),
    "models": ("TOPOWIRE_MAX_MODELS", 1_000_000, "models in one run (topologies x replicates)"),
    "trees": ("TOPOWIRE_MAX_TREES", 100_000, "trees in one forest"),
    "total_nodes": ("TOPOWIRE_MAX_TOTAL_NODES", 100_000_000, "nodes in one population"),
    "total_edges": ("TOPOWIRE_MAX_TOTAL_EDGES", 100_000_000, "edges in one population"),
    "output": ("TOPOWIRE_MAX_OUTPUT_MB", 10_240, "MiB of files one command writes"),
}


class LimitError(ParameterError):
    """A size over its limit."""


def limit(name: str) -> int:
    """The current value of a limit (its environment variable, or the default)."""
    env, default, _ = LIMITS[name]
    raw = os.environ.get(env)
    if raw is None:
        return default
    if not (raw.strip().isascii() and raw.strip().isdigit()) or not 1 <= int(raw) <= 2**62:
        raise ParameterError(f"{env} must be a positive integer, got {env} = {raw!r}")
    return int(raw)


def check(name: str, value: int, what: str) -> int:
    """``value`` if within the limit ``name``, else LimitError naming both and the variable."""
    env, _, counts = LIMITS[name]
    cap = limit(name)
    if value > cap:
        raise LimitError(f"{what} = {value:,} exceeds the limit of {cap:,} {counts}; "
                         f"raise it with {env}={value}" if name != "memory" else
                         f"{what} would take {value:,} MiB, over the limit of {cap:,} {counts}; "
                         f"raise it with {env}={value}")
    return value


def check_memory(n_bytes: float, what: str) -> None:
    """Refuse an allocation estimated at ``n_bytes`` over the memory limit."""
    mib = n_bytes / 2**20
    check("memory", int(mib) if mib < 2**62 else 2**62, what)
