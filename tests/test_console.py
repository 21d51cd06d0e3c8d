"""Console tables keep their names whole in a pipe or a log."""

import pandas as pd

from topowire.console import print_frame, print_summary


def test_a_table_printed_to_a_pipe_keeps_every_name_whole(capsys):
    frame = pd.DataFrame({"model": ["linear-size", "quadratic-cl"], "r2": [0.2679, 0.5649], "mae": [0.0753, 0.0528],
                          "spearman": [0.4984, 0.6973], "r2_fold_sd": [0.1536, 0.1744],
                          "spearman_fold_sd": [0.1607, 0.1377], "r2_of_ceiling": [0.3215, 0.6778]},
                         index=pd.Index(["leave-one-family-out", "leave-one-family-out"], name="scheme"))
    print_frame(frame, "scores")
    out = capsys.readouterr().out
    for name in ("leave-one-family-out", "linear-size", "quadratic-cl", "spearman_fold_sd", "r2_of_ceiling"):
        assert name in out, name
    assert "…" not in out


def test_a_summary_printed_to_a_pipe_keeps_each_line_whole(capsys):
    line = "an effect of 0.5 x the seed sd (0.0739) along avg_path_length, planted on this study's own seed noise"
    print_summary({"power": line}, "study")
    assert capsys.readouterr().out.splitlines() == ["study", f"power: {line}"]


def test_progress_in_a_log_counts_whole_models_and_says_when_a_pack_is_partway(capsys):
    from topowire.console import progress

    with progress() as update:
        update("training", 0, 10)
        update("training", 2.5, 10)
        update("training", 4, 10)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines] == ["training: 0/10", "training: 2/10", "training: 4/10"]
    assert lines[1].endswith("/s, a pack partway)") and not lines[2].endswith("partway)")
