"""Populations: ordered collections of topologies with the recipe and seed that made them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from topowire import checks
from topowire._io import atomic_open, check_nesting
from topowire.errors import FileFormatError, ParameterError
from topowire.seeds import spawn
from topowire.topology.recipe import Recipe, parse_recipe, sample_family_graph
from topowire.topology.topology import Topology

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["Population", "sample_population", "read_population", "read_or_draw", "write_population"]

FORMAT = "topowire-population"
VERSION = 1


@dataclass(frozen=True)
class Population:
    """An ordered, immutable collection of :class:`Topology`.

    Parameters
    ----------
    topologies : tuple of Topology
        The graphs, in sampling order.
    recipe : Recipe, optional
        The recipe that drew them (None for hand-made populations).
    seed : int, optional
        The seed the recipe was sampled with.
    """

    topologies: tuple[Topology, ...]
    recipe: Recipe | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "topologies", tuple(self.topologies))
        for t in self.topologies:
            if not isinstance(t, Topology):
                raise TypeError(f"a Population holds Topology objects, got {type(t).__name__}")

    def __len__(self) -> int:
        return len(self.topologies)

    def __iter__(self) -> Iterator[Topology]:
        return iter(self.topologies)

    def __getitem__(self, key: int | str) -> Topology:
        """The topology at a position, or with a given id (the first one if repeated)."""
        if isinstance(key, str):
            for t in self.topologies:
                if t.id == key:
                    return t
            raise KeyError(f"no topology with id {key!r} in the population")
        return self.topologies[key]

    def by_id(self, id_: str) -> Topology:
        """The topology with this id, or ParameterError (for ids a user typed)."""
        try:
            return self[str(id_)]
        except KeyError:
            raise ParameterError(f"no topology with id {id_!r} in the population") from None

    @property
    def ids(self) -> list[str]:
        """Topology ids in order (repeated where the population holds duplicates)."""
        return [t.id for t in self.topologies]

    def duplicates(self) -> dict[str, int]:
        """Ids that occur more than once, with their counts."""
        return {k: c for k, c in Counter(self.ids).items() if c > 1}

    def summary(self) -> pd.DataFrame:
        """One row per family: graphs, n range, mean edges and density, duplicates."""
        import pandas as pd

        rows = []
        by_family: dict[str, list[Topology]] = {}
        for t in self.topologies:
            by_family.setdefault(t.family, []).append(t)
        dup = Counter(self.ids)
        for fam, ts in by_family.items():
            n = np.array([t.n for t in ts])
            e = np.array([t.n_edges for t in ts])
            d = np.array([t.density for t in ts])
            rows.append({
                "family": fam, "graphs": len(ts), "n_min": int(n.min()), "n_max": int(n.max()),
                "edges_mean": float(e.mean()), "density_mean": float(d.mean()),
                "duplicates": sum(1 for t in ts if dup[t.id] > 1),
            })
        return pd.DataFrame(rows).set_index("family") if rows else pd.DataFrame()

    def listing(self) -> pd.DataFrame:
        """One row per topology, by id: family, nodes, edges and its generator's parameters."""
        import pandas as pd

        def params(t: Topology) -> str:
            return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())

        return pd.DataFrame([{"id": t.id, "family": t.family, "nodes": t.n, "edges": t.n_edges, "params": params(t)}
                             for t in self.topologies]).set_index("id")


def sample_population(recipe: Recipe, seed: int | None = None) -> Population:
    """Draw a population from a recipe.

    Every graph gets its own child of ``numpy.random.SeedSequence(seed)``, which draws its
    parameters and then its graph seed; the same recipe and seed give the same
    population, byte for byte once written.

    Parameters
    ----------
    recipe : Recipe
        What to draw.
    seed : int, optional
        Overrides ``recipe.seed``.
    """
    seed = recipe.seed if seed is None else seed
    children = iter(spawn(checks.integer("seed", seed, 0), recipe.count))
    topologies, totals = [], [0, 0]
    for i, spec in enumerate(recipe.families, 1):
        drawn = [sample_family_graph(spec, i, next(children), totals) for _ in range(spec.count)]
        topologies += _stratified(drawn, spec.stratify) if spec.stratify else drawn
    return Population(tuple(topologies), recipe=recipe, seed=int(seed))


def _stratified(candidates: list[Topology], stratify) -> list[Topology]:
    """One candidate per occupied cell of the family's grid (the first drawn)."""
    from topowire.topology.plane import STRATA, clustering_and_path_length, one_per_bin

    values = clustering_and_path_length(candidates)[:, [STRATA.index(name) for name, _ in stratify]]
    return [candidates[i] for i in one_per_bin(values, [bins for _, bins in stratify])]


def read_or_draw(path: str | Path) -> Population:
    """A population file (:func:`read_population`), or the draw of a recipe (``.toml``) with
    its own seed."""
    from topowire.topology.recipe import load_recipe

    return sample_population(load_recipe(path)) if Path(path).suffix == ".toml" else read_population(path)


# -- JSONL -----------------------------------------------------------------------------
def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def write_population(population: Population, path: str | Path) -> None:
    """Write a population as JSONL: a header line, then one topology per line.

    The header is ``{"format": "topowire-population", "version": 1, "recipe": ...,
    "seed": ..., "count": ...}``; ``count`` lets a reader notice a file cut short. The
    write is atomic.
    """
    header = {"format": FORMAT, "version": VERSION, "seed": population.seed, "count": len(population.topologies),
              "recipe": population.recipe.to_dict() if population.recipe else None}
    with atomic_open(path) as fh:
        fh.write(_dumps(header) + "\n")
        for t in population.topologies:
            fh.write(_dumps(t.to_dict()) + "\n")


def read_population(path: str | Path) -> Population:
    """Read a population: a JSONL file (the header line is optional), one graph file
    (``.graphml``, ``.gml``, ``.edgelist``, ``.edges``, ``.txt``, ``.npy``: a population of
    one), or a folder of graph files (every file with one of those suffixes, by name).

    Raises
    ------
    FileFormatError
        Missing or empty file, bytes that are not UTF-8, a line that is not JSON, an
        unsupported header, a topology record with bad content (the line number is
        named), or fewer or more records than the header's ``count``; a graph file that
        :func:`~topowire.topology.read_graph` refuses; a folder without graph files.
    """
    from topowire.topology.formats import GRAPH_FORMATS, read_graph

    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in GRAPH_FORMATS)
        if not files:
            raise FileFormatError(f"folder {str(path)!r} holds no graph files (expected "
                                  f"{', '.join(GRAPH_FORMATS)})")
        return Population(tuple(read_graph(p) for p in files))
    if path.suffix.lower() in GRAPH_FORMATS:
        return Population((read_graph(path),))
    if not path.is_file():
        raise FileFormatError(f"population file {str(path)!r} does not exist")
    topologies: list[Topology] = []
    recipe: Recipe | None = None
    seed: int | None = None
    count: int | None = None
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FileFormatError(f"{path}:{lineno}: not valid UTF-8 (byte {exc.start} of the line)") from None
            if not line.strip():
                continue
            check_nesting(line, f"{path}:{lineno}")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FileFormatError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise FileFormatError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            if "format" in record:
                if lineno != 1 or topologies:
                    raise FileFormatError(f"{path}:{lineno}: header line must come first")
                recipe, seed = _read_header(path, record)
                count = record.get("count")
                continue
            try:
                topologies.append(Topology.from_dict(record))
            except ParameterError as exc:
                raise FileFormatError(f"{path}:{lineno}: {exc}") from None
    if not topologies:
        raise FileFormatError(f"population file {str(path)!r} holds no topologies")
    if count is not None and count != len(topologies):
        raise FileFormatError(f"{path}: the header announces {count} topologies but the file holds "
                              f"{len(topologies)} (cut short or appended to?)")
    return Population(tuple(topologies), recipe=recipe, seed=seed)


def _read_header(path: Path, record: dict[str, Any]) -> tuple[Recipe | None, int | None]:
    if record.get("format") != FORMAT:
        raise FileFormatError(f"{path}:1: format {record.get('format')!r} is not {FORMAT!r}")
    if record.get("version") != VERSION:
        raise FileFormatError(
            f"{path}:1: population format version {record.get('version')!r} is not supported "
            f"(this topowire reads version {VERSION})"
        )
    try:
        recipe = parse_recipe(record["recipe"]) if record.get("recipe") else None
    except ParameterError as exc:
        raise FileFormatError(f"{path}:1: bad recipe in header: {exc}") from None
    return recipe, record.get("seed")


def from_topologies(topologies: Iterable[Topology]) -> Population:
    """A population of hand-made topologies (no recipe)."""
    return Population(tuple(topologies))


def convert_graphs(inputs: Sequence[str | Path], output: str | Path, *, id_: str | None = None,
                   directed: bool | None = None) -> str:
    """Graph files into a population, or one topology of a population into a graph file.

    Returns what was written.

    Parameters
    ----------
    inputs : list of str or Path
        Graph files (.graphml, .gml, .edgelist, .npy), or one population .jsonl.
    output : str or Path
        A population .jsonl, or a .graphml/.gml/.edgelist/.npy graph file.
    id_ : str, optional
        With a population input: the topology to write (unset: the first).
    directed : bool, optional
        Direction of header-less edge lists.
    """
    from topowire.topology.formats import read_graph, write_graph

    if Path(output).suffix.lower() == ".jsonl":
        pop = Population(tuple(read_graph(p, directed=directed) for p in inputs))
        write_population(pop, output)
        return f"{len(pop)} topologies"
    if len(inputs) != 1 or Path(inputs[0]).suffix.lower() != ".jsonl":
        raise ParameterError("to write a single graph file, give exactly one population .jsonl input")
    pop = read_population(inputs[0])
    topo = pop.by_id(id_) if id_ is not None else pop[0]
    write_graph(topo, output)
    return f"topology {topo.id}"
