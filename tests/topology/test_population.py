import json
from pathlib import Path

import pytest

from topowire.errors import FileFormatError
from topowire.topology import (
    Population,
    Topology,
    complete_graph,
    load_recipe,
    read_population,
    sample_population,
    write_population,
)

QUICK = Path(__file__).parents[2] / "graphs" / "quick.toml"


def test_same_seed_gives_byte_identical_files(tmp_path):
    recipe = load_recipe(QUICK)
    write_population(sample_population(recipe, 0), tmp_path / "a.jsonl")
    write_population(sample_population(recipe, 0), tmp_path / "b.jsonl")
    write_population(sample_population(recipe, 1), tmp_path / "c.jsonl")
    a, b, c = ((tmp_path / f"{x}.jsonl").read_bytes() for x in "abc")
    assert a == b
    assert a != c


def test_round_trip(tmp_path):
    pop = sample_population(load_recipe(QUICK), 5)
    write_population(pop, tmp_path / "p.jsonl")
    back = read_population(tmp_path / "p.jsonl")
    assert back.topologies == pop.topologies
    assert back.recipe == pop.recipe and back.seed == 5
    assert back[pop.ids[3]] == pop[3]


def test_header_and_one_topology_per_line(tmp_path):
    pop = sample_population(load_recipe(QUICK), 0)
    write_population(pop, tmp_path / "p.jsonl")
    lines = (tmp_path / "p.jsonl").read_text().splitlines()
    assert len(lines) == len(pop) + 1
    head = json.loads(lines[0])
    assert head["format"] == "topowire-population" and head["version"] == 1 and head["seed"] == 0
    rec = json.loads(lines[1])
    assert set(rec) == {"id", "family", "params", "seed", "n", "directed", "edges"}


def test_headerless_files_are_read(tmp_path):
    t = complete_graph(4)
    (tmp_path / "p.jsonl").write_text(json.dumps({"n": 4, "edges": t.edges.tolist()}) + "\n")
    back = read_population(tmp_path / "p.jsonl")
    assert back[0].id == t.id and back.recipe is None


def test_duplicates_are_reported():
    pop = Population((complete_graph(4), complete_graph(4), complete_graph(5)))
    assert pop.duplicates() == {complete_graph(4).id: 2}
    assert pop.summary().loc["complete", "duplicates"] == 2


@pytest.mark.parametrize(
    "content, match",
    [
        ("", "holds no topologies"),
        ('{"n": 3, "edges": [[0, 1]]\n', ":1: not valid JSON"),
        ('[1, 2]\n', "expected a JSON object"),
        ('{"n": 3, "edges": [[0, 5]]}\n', ":1: node id 5 is out of range: expected 0 <= id < n = 3"),
        ('{"n": 3, "edges": [[0, 1.5]]}\n', ":1: node id must be an integer, got node id = 1.5"),
        ('{"n": 3, "edges": [[0, "1"]]}\n', "node id must be an integer, got node id = '1'"),
        ('{"n": 3}\n', "lacks edges"),
        ('{"n": 3, "edges": [], "colour": 1}\n', "unknown key"),
        ('{"format": "topowire-population", "version": 99}\n', "version 99 is not supported"),
        ('{"n": 3, "edges": [[0, 1]], "id": "0000000000000000"}\n', "does not match"),
    ],
)
def test_corrupt_population_files(tmp_path, content, match):
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    with pytest.raises(FileFormatError, match=match):
        read_population(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileFormatError, match="does not exist"):
        read_population(tmp_path / "none.jsonl")


def test_population_holds_topologies_only():
    with pytest.raises(TypeError):
        Population(("x",))
    assert isinstance(Population((Topology(2, [[0, 1]]),))[0], Topology)
