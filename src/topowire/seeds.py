"""The one seed discipline of topowire (DESIGN §11): every random draw comes from a
``numpy.random.SeedSequence`` of a root seed, never from global state.

The seed tree of a study with root seed ``s``:

- graphs: graph i of a population is drawn from child i of ``SeedSequence(s)``
  (:func:`spawn`), so a population is the same whatever else is drawn;
- models: the initialisation seed of (topology, replicate) under the training seed is
  :func:`init_seed`, independent of where the model lands (its pack, its worker);
- every other stream is a named child, :func:`derive` (``"unseen"``: the unseen population a
  study predicts; ``"importance"``: the permutations of the importances, per fold; ``"test
  data"``: a task's test split where it is drawn apart from its training split). The
  folds and the forest of a study take its root seed itself (``random_state``), as does a
  task's training data;
- single generators take a :data:`SeedLike` and record the int they used
  (:func:`resolve_seed`), so a graph can be rebuilt from its record.
"""

from __future__ import annotations

import zlib

import numpy as np

from topowire import checks

__all__ = ["SeedLike", "resolve_seed", "spawn", "init_seed", "model_seeds", "derive", "STREAMS"]

#: What a seeded function accepts: an int, a numpy Generator (one int is drawn from it) or
#: None (fresh OS entropy).
SeedLike = int | np.integer | np.random.Generator | None

#: The named streams of :func:`derive`.
STREAMS = ("unseen", "importance", "test data", "beyond-size", "power", "search")


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


def model_seeds(root: int, topology_ids, replicates: int = 1) -> list[tuple[str, int, int]]:
    """``(topology id, replicate, initialisation seed)`` of every model of a population under
    the training seed ``root`` (a repeated id once): replicate r of topology t starts from
    ``init_seed(root, t, r)``. Features of "the model that was trained" use replicate 0."""
    return [(t, r, init_seed(root, t, r)) for t in dict.fromkeys(topology_ids) for r in range(replicates)]


def derive(root: int, stream: str, *index: int) -> int:
    """The seed of the named ``stream`` (one of :data:`STREAMS`) under ``root``, and of its
    ``index``-th draw (a fold, ...): a child of ``SeedSequence(root)`` keyed by the stream's
    name, apart from the graphs' children and the models' seeds."""
    checks.choice("stream", stream, STREAMS)
    key = (zlib.crc32(stream.encode()) | 1 << 32, *(int(i) for i in index))
    return int(np.random.SeedSequence(checks.check("seed", root), spawn_key=key).generate_state(1, np.uint32)[0])
