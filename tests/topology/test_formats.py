import numpy as np
import pytest

from topowire.errors import FileFormatError
from topowire.topology import er_graph, mlp_graph, read_graph, write_graph


@pytest.mark.parametrize("suffix", [".graphml", ".gml", ".edgelist", ".npy"])
@pytest.mark.parametrize("directed", [False, True])
def test_round_trip(tmp_path, suffix, directed):
    t = er_graph(25, 0.15, directed=directed, seed=4)
    # an isolated last node checks that n survives the trip
    t = type(t)(26, t.edges, directed)
    write_graph(t, tmp_path / f"g{suffix}")
    back = read_graph(tmp_path / f"g{suffix}")
    assert back.id == t.id


def test_mlp_round_trip_keeps_direction(tmp_path):
    t = mlp_graph([2, 3, 1])
    write_graph(t, tmp_path / "m.graphml")
    assert read_graph(tmp_path / "m.graphml").id == t.id


def test_plain_edge_list_without_header(tmp_path):
    (tmp_path / "e.txt").write_text("# a comment\n0 1\n1 2  # trailing\n\n2 3\n")
    t = read_graph(tmp_path / "e.txt")
    assert t.n == 4 and t.edges.tolist() == [[0, 1], [1, 2], [2, 3]] and not t.directed
    assert read_graph(tmp_path / "e.txt", directed=True).directed


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("g.graphml", b"<graphml><graph><node id='a'", "not a valid GRAPHML file"),
        ("g.gml", b"graph [ node [ id 0 ", "not a valid GML file"),
        ("g.edgelist", b"0 1\nx y\n", ":2: node ids must be integers"),
        ("g.edgelist", b"0\n", ":1: expected 'u v'"),
        ("g.edgelist", b"0 0\n", "self-loop at node 0"),
        ("g.edgelist", b"# only a comment\n", "holds no edges"),
        ("g.npy", b"not numpy", "not a valid .npy array"),
        ("g.graphml", b"", "is empty"),
        ("g.xyz", b"0 1", "cannot tell the graph format"),
    ],
)
def test_corrupt_graph_files(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(FileFormatError, match=match):
        read_graph(tmp_path / name)


def test_bad_adjacency_matrices(tmp_path):
    for arr, match in [(np.ones((2, 3)), "square"), (np.array([[0, 2], [2, 0]]), "0 or 1"),
                       (np.eye(3), "non-zero diagonal")]:
        np.save(tmp_path / "a.npy", arr)
        with pytest.raises(FileFormatError, match=match):
            read_graph(tmp_path / "a.npy")


def test_missing_file(tmp_path):
    with pytest.raises(FileFormatError, match="does not exist"):
        read_graph(tmp_path / "nope.gml")


def test_write_is_atomic(tmp_path, monkeypatch):
    import networkx as nx

    target = tmp_path / "g.graphml"
    target.write_text("old")

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(nx, "write_graphml", boom)
    with pytest.raises(RuntimeError):
        write_graph(er_graph(5, 0.5, seed=0), target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["g.graphml"]
