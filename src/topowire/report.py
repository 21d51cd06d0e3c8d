"""Figures: drawings of topologies (the HTML report builds on these)."""

from __future__ import annotations

from pathlib import Path

from topowire._io import atomic_path
from topowire.topology.topology import Topology

__all__ = ["draw_topology"]


def draw_topology(topology: Topology, path: str | Path, *, seed: int = 0) -> None:
    """Draw one graph to a PNG: a seeded spring layout, nodes coloured by degree.

    Parameters
    ----------
    topology : Topology
        The graph.
    path : path-like
        PNG file to write (atomically).
    seed : int, default 0
        Layout seed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    g = topology.to_networkx()
    pos = nx.spring_layout(g, seed=seed)
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    try:
        deg = [d for _, d in g.degree()]
        nx.draw_networkx_edges(g, pos, ax=ax, alpha=0.3, arrows=topology.directed,
                               arrowsize=6 if topology.directed else 10)
        nx.draw_networkx_nodes(g, pos, ax=ax, node_size=40, node_color=deg, cmap="viridis")
        ax.set_title(f"{topology.family} {dict(topology.params)}\n"
                     f"n={topology.n} edges={topology.n_edges} id={topology.id}", fontsize=9)
        ax.axis("off")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
