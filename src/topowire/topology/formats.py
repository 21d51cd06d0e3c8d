"""Import and export of single graphs: GraphML, GML, edge list and dense adjacency ``.npy``.

The format follows the file suffix: ``.graphml``, ``.gml``, ``.edgelist`` / ``.edges`` /
``.txt``, ``.npy``. Writes are atomic. Node labels on import follow
:meth:`Topology.from_networkx`: integer labels ``0 .. n-1`` are kept, others are numbered
in file order.

Edge list: one ``u v`` pair of integer node ids per line; ``#`` starts a comment. The
header comment written by topowire, ``# topowire edgelist n=<n> directed=<bool>``, keeps
isolated nodes and the direction; without it ``n`` is the largest id + 1.

Adjacency ``.npy``: a square 0/1 matrix, ``A[u, v] = 1`` for an edge ``u -> v``; the graph
is undirected when the matrix is symmetric. Loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from topowire import limits
from topowire._io import atomic_open, atomic_path
from topowire.errors import FileFormatError, ParameterError
from topowire.topology.topology import Topology

__all__ = ["read_graph", "write_graph", "GRAPH_FORMATS"]

GRAPH_FORMATS = {".graphml": "graphml", ".gml": "gml", ".edgelist": "edgelist",
                 ".edges": "edgelist", ".txt": "edgelist", ".npy": "npy"}
_HEADER = re.compile(r"#\s*topowire edgelist n=(\d+) directed=(true|false)\s*$")


def _format_of(path: Path) -> str:
    try:
        return GRAPH_FORMATS[path.suffix.lower()]
    except KeyError:
        raise FileFormatError(
            f"cannot tell the graph format of {str(path)!r} from its suffix {path.suffix!r}: "
            f"expected one of {', '.join(sorted(GRAPH_FORMATS))}"
        ) from None


def read_graph(path: str | Path, *, directed: bool | None = None) -> Topology:
    """Read one graph from a file.

    Parameters
    ----------
    path : path-like
        The file; its suffix names the format.
    directed : bool, optional
        For edge lists without a topowire header: whether the edges are directed
        (default False). Ignored by the other formats, which record it.

    Raises
    ------
    FileFormatError
        Missing, empty or corrupt file, or node ids that do not form a simple graph.
    """
    path = Path(path)
    fmt = _format_of(path)
    if not path.is_file():
        raise FileFormatError(f"graph file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise FileFormatError(f"graph file {str(path)!r} is empty")
    try:
        if fmt in ("graphml", "gml"):
            return _read_networkx(path, fmt)
        if fmt == "npy":
            return _read_npy(path)
        return _read_edgelist(path, directed)
    except ParameterError as exc:
        raise FileFormatError(f"{path}: {exc}") from None


def _read_networkx(path: Path, fmt: str) -> Topology:
    import networkx as nx

    reader = nx.read_graphml if fmt == "graphml" else nx.read_gml
    try:
        g = reader(path) if fmt == "graphml" else reader(path, label=None)
    except Exception as exc:  # parsers raise many types on corrupt input
        raise FileFormatError(f"{path} is not a valid {fmt.upper()} file: {exc}") from None
    if g.is_multigraph():
        g = (nx.DiGraph if g.is_directed() else nx.Graph)(g)
    if nx.number_of_selfloops(g):
        raise FileFormatError(f"{path}: graph has self-loops; topologies are simple graphs")
    if g.number_of_nodes() == 0:
        raise FileFormatError(f"{path}: graph has no nodes")
    return Topology.from_networkx(g, family="file", params={"source": path.name})


def _read_npy(path: Path) -> Topology:
    try:
        head = np.load(path, mmap_mode="r", allow_pickle=False)  # the header alone, before the data
        if head.ndim == 2:
            limits.check("nodes", head.shape[0], "n")
        limits.check_memory(float(head.nbytes) * 3, f"a dense adjacency of shape {head.shape}")
        a = np.array(head)
    except ParameterError:
        raise
    except Exception as exc:
        raise FileFormatError(f"{path} is not a valid .npy array: {exc}") from None
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise FileFormatError(f"{path}: adjacency must be a non-empty square matrix, got shape {a.shape}")
    if a.dtype.kind not in "biuf" or not np.all(np.isin(a, (0, 1))):
        raise FileFormatError(f"{path}: adjacency entries must be 0 or 1")
    if np.any(np.diag(a)):
        raise FileFormatError(f"{path}: adjacency has a non-zero diagonal (self-loops)")
    directed = not np.array_equal(a, a.T)
    u, v = np.nonzero(np.triu(a) if not directed else a)
    return Topology(a.shape[0], np.stack([u, v], axis=1), directed, family="file",
                    params={"source": path.name})


def _read_edgelist(path: Path, directed: bool | None) -> Topology:
    n_header = None
    pairs: list[tuple[int, int]] = []
    text = path.read_text(encoding="utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _HEADER.match(line.strip())
        if m:
            n_header, directed = int(m.group(1)), m.group(2) == "true"
            continue
        body = line.split("#", 1)[0].split()
        if not body:
            continue
        if len(body) < 2:
            raise FileFormatError(f"{path}:{lineno}: expected 'u v', got {line.strip()!r}")
        try:
            u, v = int(body[0]), int(body[1])
        except ValueError:
            raise FileFormatError(
                f"{path}:{lineno}: node ids must be integers, got {body[0]!r} {body[1]!r}"
            ) from None
        pairs.append((u, v))
    if n_header is None and not pairs:
        raise FileFormatError(f"graph file {str(path)!r} holds no edges")
    lo, hi = min((min(p) for p in pairs), default=0), max((max(p) for p in pairs), default=-1)
    n = limits.check("nodes", n_header if n_header is not None else hi + 1, "n")
    if lo < 0 or hi >= n:
        raise FileFormatError(f"{path}: node id {lo if lo < 0 else hi} is out of range: expected 0 <= id < n = {n}")
    edges = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return Topology(n, edges, bool(directed), family="file", params={"source": path.name})


def write_graph(topology: Topology, path: str | Path) -> None:
    """Write one graph; the suffix of ``path`` names the format. The write is atomic."""
    path = Path(path)
    fmt = _format_of(path)
    if fmt in ("graphml", "gml"):
        import networkx as nx

        g = topology.to_networkx()
        g.graph.update(id=topology.id, family=topology.family)
        with atomic_path(path) as tmp:
            (nx.write_graphml if fmt == "graphml" else nx.write_gml)(g, tmp)
    elif fmt == "npy":
        limits.check_memory(float(topology.n) ** 2, f"a dense adjacency of {topology.n:,} nodes")
        with atomic_open(path, "wb") as fh:
            np.save(fh, topology.adjacency(np.uint8), allow_pickle=False)
    else:
        with atomic_open(path) as fh:
            fh.write(f"# topowire edgelist n={topology.n} directed={str(topology.directed).lower()}\n")
            fh.writelines(f"{u} {v}\n" for u, v in topology.edges.tolist())
