"""The one seed discipline of topowire (DESIGN §11): every random draw comes from a
``numpy.random.SeedSequence`` of the run's root seed, never from global state.

- graphs: graph i of a population is drawn from child i of ``SeedSequence(seed)``
  (:func:`spawn`), so a population is the same whatever else is drawn;
- models: the initialisation seed of (topology, replicate) under a root seed is
  :func:`init_seed`, independent of where the model lands (its pack, its worker);
- single generators take a :data:`SeedLike` and record the int they used
  (:func:`resolve_seed`), so a graph can be rebuilt from its record.
"""

from __future__ import annotations

import numpy as np

from topowire import checks

__all__ = ["SeedLike", "resolve_seed", "spawn", "init_seed"]

#: What a seeded function accepts: an int, a numpy Generator (one int is drawn from it) or
#: None (fresh OS entropy).
SeedLike = int | np.integer | np.random.Generator | None


def resolve_seed(seed: SeedLike) -> int:
    """The non-negative int seed a generator will use.

    Parameters
    ----------
    seed : int, numpy.random.Generator or None
        An int is used as is; a Generator draws one; None draws from fresh OS entropy.
    """
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> 1)
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63 - 1))
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, a numpy Generator or None, got {type(seed).__name__}")
    return checks.integer("seed", seed, 0)


def spawn(seed: int, count: int) -> list[np.random.SeedSequence]:
    """``count`` independent child sequences of ``SeedSequence(seed)`` (graph i gets child i)."""
    return np.random.SeedSequence(checks.integer("seed", seed, 0)).spawn(count)


def init_seed(root: int, topology_id: str, replicate: int) -> int:
    """The initialisation seed of (topology, replicate) under a root seed.

    It depends on nothing else -- not the model's position in the population, its pack or
    the worker that trains it -- so results do not depend on how work is cut or spread.
    """
    key = (int(topology_id[:8], 16), int(topology_id[8:16], 16), replicate)
    return int(np.random.SeedSequence(root, spawn_key=key).generate_state(1, np.uint32)[0])
