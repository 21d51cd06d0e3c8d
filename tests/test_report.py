"""The study report's drawings: titled in words, nodes coloured by degree with a legend."""

from topowire.report import draw_topology, drawing_title, topology_figure
from topowire.topology import er_graph, mlp_graph, ws_graph


def test_drawings_are_titled_in_words_with_parameters_to_two_digits():
    ws = ws_graph(12, 4, 0.31234, seed=0)
    assert drawing_title(ws) == f"Watts–Strogatz small-world graph (k = 4, p = 0.31)\n12 nodes, 24 edges, id {ws.id}"
    er = er_graph(10, 0.05, seed=1)
    assert drawing_title(er) == f"Erdős–Rényi G(n, p) (p = 0.05)\n10 nodes, {er.n_edges} edges, id {er.id}"
    assert drawing_title(mlp_graph([3, 4, 2])).startswith("The directed graph of a dense layered MLP (sizes = [3, 4, 2])")


def test_a_drawing_has_its_title_and_a_degree_colour_legend(tmp_path):
    graph = ws_graph(12, 4, 0.3, seed=0)
    fig = topology_figure(graph)
    drawing, legend = fig.axes
    assert drawing.get_title() == drawing_title(graph)
    assert legend.get_ylabel() == "node colour: degree"
    ticks = [t for t in legend.get_yticks() if legend.get_ylim()[0] <= t <= legend.get_ylim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)  # degrees are whole numbers
    draw_topology(graph, tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
