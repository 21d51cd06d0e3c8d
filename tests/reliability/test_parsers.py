"""Class 3 of the third reliability round: parsers never recurse without bound or blow up;
nesting and expression size are bounded before parsing, and every parser error is one line."""

import pytest

from topowire.cli import main

from .conftest import one_error_line

RECIPE = '[population]\nname = "x"\n[[family]]\nkind = "ws"\ncount = 2\nn = 10\np = 0.1\nk = "{k}"\n'
DEEP = 100_000


@pytest.mark.parametrize("name, content, message", [
    ("deep.jsonl", '{"n": 3, "edges": ' + "[" * DEEP + "]" * DEEP + "}\n", "nests brackets 100001 deep"),
    ("deep-object.jsonl", '{"n": 3, "params": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + ', "edges": []}\n',
     "nests brackets 100001 deep"),
    ("deep.toml", "a = " + "[" * DEEP + "]" * DEEP + "\n", "nests brackets 100000 deep"),
    ("deep-table.toml", "a = " + "{b = " * DEEP + "1" + "}" * DEEP + "\n", "nests brackets 100000 deep"),
    ("chain.toml", RECIPE.format(k="-" * DEEP + "2"), "recipe expressions are at most 200"),
    ("sum.toml", RECIPE.format(k="+".join(["2"] * 10_000)), "recipe expressions are at most 200"),
    ("round.toml", RECIPE.format(k="round(4, -10**17)"), "round() takes at most 18 digits"),
    ("latin1.toml", None, "is not valid UTF-8"),
    ("huge-id.jsonl", '{"n": 3, "edges": [[0, 99999999999999999999999]]}\n', "node id 99999999999999999999999 is out of range"),
    ("huge-seed.jsonl", '{"n": 3, "edges": [[0, 1]], "seed": 99999999999999999999999}\n', "seed must be an integer"),
])
def test_parsers_bound_nesting_and_size_before_parsing(name, content, message, tmp_path, capsys):
    path = tmp_path / name
    if content is None:
        path.write_bytes(RECIPE.format(k="2").encode().replace(b'"x"', b'"caf\xe9"'))
    else:
        path.write_text(content)
    command = ["generate", str(path), "-o", str(tmp_path / "out.jsonl")] if name.endswith(".toml") else \
        ["features", str(path), "-o", str(tmp_path / "out.csv")]
    assert main(command) == 2
    assert message in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("header, message", [
    ("# topowire edgelist n=3 directed=false\n", "node id 99999999999999999999999 is out of range: expected 0 <= id < n = 3"),
    ("", "n = 100,000,000,000,000,000,000,000 exceeds the limit of 100,000 nodes"),
])
def test_convert_reads_huge_ids_as_one_line(header, message, tmp_path, capsys):
    (tmp_path / "g.edgelist").write_text(header + "0 1\n1 99999999999999999999999\n")
    assert main(["convert", str(tmp_path / "g.edgelist"), "-o", str(tmp_path / "p.jsonl")]) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "p.jsonl").exists()
