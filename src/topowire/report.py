"""Figures and the HTML report of a study: one page that shows the whole study."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from topowire._io import atomic_dir, atomic_path
from topowire.topology.topology import Topology

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from topowire.predict import CVResult

__all__ = ["check_drawable", "draw_topology", "drawing_title", "topology_figure", "write_report"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_drawable(topology: Topology) -> None:
    """Refuse, before any work, a drawing whose layout would exceed the memory limit."""
    from topowire import limits

    # the spring layout holds n x n x 2 displacements (float64) and their norms
    limits.check_memory(24.0 * topology.n * topology.n, f"a drawing of a graph of {topology.n:,} nodes")


def draw_topology(topology: Topology, path: str | Path, *, seed: int = 0) -> None:
    """Draw one graph to a PNG (see :func:`topology_figure`).

    Parameters
    ----------
    topology : Topology
        The graph.
    path : path-like
        PNG file to write (atomically).
    seed : int, default 0
        Layout seed.
    """
    check_drawable(topology)
    fig = topology_figure(topology, seed=seed)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", bbox_inches="tight")
    finally:
        _plt().close(fig)


def topology_figure(topology: Topology, *, seed: int = 0):
    """One graph as a matplotlib figure: a seeded spring layout, nodes coloured by degree
    with its colour bar, titled in words (:func:`drawing_title`)."""
    import networkx as nx
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    g = topology.to_networkx()
    pos = nx.spring_layout(g, seed=seed)
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    deg = [d for _, d in g.degree()]
    nx.draw_networkx_edges(g, pos, ax=ax, alpha=0.3, arrows=topology.directed, arrowsize=6 if topology.directed else 10)
    nodes = nx.draw_networkx_nodes(g, pos, ax=ax, node_size=40, node_color=deg, cmap="viridis")
    legend = fig.colorbar(nodes, ax=ax, shrink=0.6,
                          label="node colour: degree" + (" (in + out)" if topology.directed else ""))
    legend.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(drawing_title(topology), fontsize=9)
    ax.axis("off")
    return fig


def drawing_title(topology: Topology) -> str:
    """A drawing's title in words: the family's name (its generator's own), its parameters
    to 2 significant digits, the node and edge counts and the id."""
    from topowire.topology.generators import FAMILIES

    generator = FAMILIES.get(topology.family)
    name = generator.__doc__.strip().split("\n")[0].split(":")[0].rstrip(".") if generator else topology.family
    params = ", ".join(f"{k} = {v:.2g}" if isinstance(v, float) else f"{k} = {v}" for k, v in topology.params.items()
                       if k != "n" and v is not False)  # the node count follows; unset flags say nothing
    return f"{name}{f' ({params})' if params else ''}\n{topology.n} nodes, {topology.n_edges} edges, id {topology.id}"


def _save(fig, path: Path) -> str:
    fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path.name


def _scatter_by_family(frame: pd.DataFrame, x: str, y: str, path: Path, title: str, xlog: bool = False) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for fam, part in frame.groupby("family"):
        ax.scatter(part[x], part[y], s=14, alpha=0.7, label=fam)
    if xlog:
        ax.set_xscale("log")
    ax.set(xlabel=x, ylabel=y, title=title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_report(out: str | Path, results: pd.DataFrame, features: pd.DataFrame, cv: CVResult, *,
                 topologies: dict[str, Topology] | None = None, outcome: str = "test_acc",
                 title: str = "topowire study", summary: dict[str, str] | None = None) -> Path:
    """Write ``out/index.html`` and its PNG figures (the folder is replaced atomically).

    Parameters
    ----------
    out : path-like
        Report folder.
    results : DataFrame
        One row per trained model (``Store.results``).
    features : DataFrame
        Features indexed by topology id.
    cv : CVResult
        Cross-validation of the predictors.
    topologies : dict, optional
        Topologies by id, to draw one per family.
    """
    import numpy as np

    plt = _plt()
    out = Path(out)
    with atomic_dir(out, "report") as tmp:
        figs: list[tuple[str, str]] = []
        ok = results[results["status"] == "ok"].copy()
        ok = ok.join(features[["density"]] if "density" in features else None, on="topology_id") \
            if "density" in features else ok

        oof = cv.oof[cv.oof["scheme"] == "kfold"].groupby("row").agg(
            measured=("measured", "first"), predicted=("predicted", "mean"), family=("family", "first"))
        fig, ax = plt.subplots(figsize=(5, 5))
        for fam, part in oof.groupby("family"):
            ax.scatter(part["measured"], part["predicted"], s=14, alpha=0.7, label=fam or "all")
        lo, hi = float(oof[["measured", "predicted"]].min().min()), float(oof[["measured", "predicted"]].max().max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(xlabel=f"measured {outcome}", ylabel=f"predicted {outcome} (cross-validated)",
               title="random forest, out-of-fold predictions")
        ax.legend(fontsize=8)
        figs.append(("Predicted vs measured", _save(fig, tmp / "predicted_vs_measured.png")))

        imp = cv.importances.head(15).iloc[::-1]
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(imp) + 1.2))
        ax.barh(imp["feature"], imp["importance"], xerr=imp["std"], color="tab:blue")
        ax.set(xlabel="drop in R² when permuted (held-out folds)", title="permutation importances")
        figs.append(("Permutation importances", _save(fig, tmp / "importances.png")))

        if "density" in ok:
            figs.append((f"{outcome} vs density", _scatter_by_family(ok, "density", outcome, tmp / "acc_vs_density.png",
                                                                    f"{outcome} vs density")))
        figs.append((f"{outcome} vs parameters", _scatter_by_family(ok, "params", outcome, tmp / "acc_vs_params.png",
                                                                   f"{outcome} vs effective parameters", xlog=True)))

        fig, ax = plt.subplots(figsize=(5.5, 4))
        for fam, part in ok.groupby("family"):
            curves = np.array([c["test_acc"] for c in part["curves"]], dtype=float)
            epochs = np.arange(1, curves.shape[1] + 1)
            q1, med, q3 = np.nanpercentile(curves, [25, 50, 75], axis=0)
            ax.plot(epochs, med, label=fam)
            ax.fill_between(epochs, q1, q3, alpha=0.2)
        ax.set(xlabel="epoch", ylabel="test accuracy", title="learning curves: median and IQR per family")
        ax.legend(fontsize=8)
        figs.append(("Learning curves", _save(fig, tmp / "learning_curves.png")))

        drawings = []
        for fam, part in (results.groupby("family") if topologies else []):
            topo = topologies.get(part["topology_id"].iloc[0])
            if topo is not None:
                name = f"graph_{fam}.png"
                draw_topology(topo, tmp / name)
                drawings.append((fam, name))

        table = cv.table()
        page = _page(title, summary or {}, figs, drawings, table, cv)
        (tmp / "index.html").write_text(page, encoding="utf-8")
    return out / "index.html"


def _page(title, summary, figs, drawings, table, cv) -> str:
    esc = html.escape
    summary = {**cv.headline(), **summary}  # the headline first, a warning on top
    rows = "".join(f"<tr><th>{esc(k)}</th><td style='text-align:left'>"
                   + (f"<b style='color:#b00'>{esc(str(v))}</b>" if k in ("WARNING", "CANNOT DETECT") else esc(str(v)))
                   + "</td></tr>" for k, v in summary.items())
    notes = "".join(f"<li>{esc(n)}</li>" for n in cv.notes)
    ceiling = (f"<p>Noise ceiling (share of the per-topology mean's variance that lies between topologies, "
               f"from {cv.ceiling['replicates']:.0f} replicates): <b>{cv.ceiling['ceiling']:.3f}</b></p>"
               if cv.ceiling else "<p>One seed per topology: no noise ceiling was estimated.</p>")
    fig_html = "".join(f"<figure><img src='{esc(src)}' alt='{esc(cap)}'><figcaption>{esc(cap)}</figcaption></figure>"
                       for cap, src in figs)
    draw_html = "".join(f"<figure><img src='{esc(src)}' alt='{esc(fam)}' width='300'><figcaption>{esc(fam)}"
                        f"</figcaption></figure>" for fam, src in drawings)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}}
figure{{display:inline-block;margin:.5em;vertical-align:top}} img{{max-width:560px}}
table{{border-collapse:collapse;margin:1em 0}} td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}
th{{background:#f4f4f4}}</style></head><body>
<h1>{esc(title)}</h1>
<table>{rows}</table>
<h2>How well do graph features predict training?</h2>
<p>Cross-validated scores ({cv.n_rows} topologies): the random forest on all features beside the
baselines (the mean, size alone, and the best single feature chosen inside each training fold).
r2, mae, spearman: pooled out-of-fold predictions, mean of 3 repeats of 5-fold CV; *_fold_sd:
the spread over folds.</p>
{table.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")}
{ceiling}
<ul>{notes}</ul>
{fig_html}
<h2>One topology per family</h2>
{draw_html}
</body></html>
"""
