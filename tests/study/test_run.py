"""`topowire run`, `fit`, `predict` and `report` end to end on a tiny study."""

import dataclasses
import re
from pathlib import Path

import pandas as pd
import pytest

from topowire.cli import main
from topowire.compiler.export import load
from topowire.study import StudyConfig, default_recipe, run_study
from topowire.topology import parse_recipe, read_population
from topowire.train import TrainConfig

TINY = parse_recipe({"population": {"name": "tiny", "seed": 0}, "family": [
    {"kind": "er", "count": 4, "n": [10, 14], "p": [0.2, 0.4]},
    {"kind": "ws", "count": 4, "n": [10, 14], "k": 4, "p": [0.0, 1.0]},
    {"kind": "ba", "count": 4, "n": [10, 14], "m": [1, 3]}]})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    config = StudyConfig(train=TrainConfig(epochs=2, batch_size=64, lr=1e-2, replicates=2), n_train=200, n_test=100,
                         n_estimators=30)
    summary = run_study(TINY, out, config, log=lambda m: None)
    return out, summary


def test_run_writes_every_output(study):
    out, summary = study
    for name in ("population.jsonl", "features.csv", "runs.db", "results.csv", "scores.csv", "importances.csv",
                 "predictor.skops", "predictor.skops.json", "unseen_population.jsonl", "predictions.csv",
                 "best_model.safetensors", "report/index.html"):
        assert (out / name).is_file(), name
    assert len(pd.read_csv(out / "results.csv")) == 24
    assert len(pd.read_csv(out / "predictions.csv")) == 12
    assert "outside_training" in pd.read_csv(out / "predictions.csv").columns
    from topowire.seeds import derive

    assert summary["predictions"].startswith(f"12 topologies of a new draw (seed {derive(0, 'unseen')}) in predictions.csv")
    model = load(out / "best_model.safetensors")
    assert model.arch.kind == "rnn-tanh" and summary["best topology"].split()[0] == model.wiring.topology_id
    label = "R² (5-fold CV; not findings: this design cannot detect a wiring effect)"
    assert "forest" in summary[label] and summary["models"] == "24 (12 topologies x 2 replicates)"
    assert summary["run"] == ("rnn-tanh (both/all/all) on reber (200 train / 100 test), 2 epochs, batch 64, lr 0.01, "
                              "2 replicates, cpu")
    # the headline leads the summary: this tiny study's topologies differ no more than its seeds, and it says so
    assert list(summary)[:5] == ["CANNOT DETECT", "noise ceiling", "scores", "power", "90% interval"]
    assert "spread no more than seed noise alone would make them" in summary["CANNOT DETECT"]
    assert summary["power"].startswith("this design would detect an effect of 2 x the seed sd")
    assert summary["power"].endswith("the topologies here differ by less than that")


def test_csv_floats_carry_at_most_six_significant_digits(study):
    out, _ = study
    number = re.compile(r"^-?(\d+)(?:\.(\d+))?(?:e[-+]\d+)?$")
    floats = 0
    for path in out.glob("*.csv"):
        for line in path.read_text().splitlines()[1:]:
            for cell in line.split(","):
                m = number.match(cell)
                if m and m.group(2):
                    floats += 1
                    assert len((m.group(1) + m.group(2)).lstrip("0")) <= 6, (path.name, cell)
    assert floats > 100  # the check saw the tables' floats


def test_report_images_exist(study):
    out, _ = study
    page = (out / "report" / "index.html").read_text()
    images = re.findall(r"<img src='([^']+)'", page)
    assert len(images) >= 6
    for src in images:
        assert (out / "report" / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src
    assert "leave-one-family-out" in page and "Noise ceiling" in page
    assert "rnn-tanh (both/all/all) on reber (200 train / 100 test), 2 epochs, batch 64" in page
    # the headline leads the page, its "cannot detect" line on top, the power beside it
    assert page.index("CANNOT DETECT") < page.index("noise ceiling") < page.index("How well do graph features")
    assert "spread no more than seed noise alone would make them" in page and "planted on this study" in page


def test_rerun_resumes_without_training(study, tmp_path):
    out, _ = study
    import sqlite3

    before = sqlite3.connect(out / "runs.db").execute("SELECT count(*) FROM results").fetchone()[0]
    calls = []
    config = StudyConfig(train=TrainConfig(epochs=2, batch_size=64, lr=1e-2, replicates=2), n_train=200, n_test=100,
                         n_estimators=30)
    logs = []
    run_study(TINY, out, config, log=logs.append, progress=lambda stage, d, t: calls.append((stage, d)))
    assert "training" not in {stage for stage, _ in calls}  # no bar for what is not trained
    assert sqlite3.connect(out / "runs.db").execute("SELECT count(*) FROM results").fetchone()[0] == before
    assert "nothing left to train: all 24 models of run " in "\n".join(logs)


def test_a_resumed_study_with_nothing_to_do_keeps_its_fit(study, monkeypatch):
    """Nothing trained and nothing changed: the fit, predictions, report and export are kept
    (nothing is cross-validated again); a change to what the fit reads fits again."""
    import topowire.study.run as pipeline

    out, summary = study
    config = StudyConfig(train=TrainConfig(epochs=2, batch_size=64, lr=1e-2, replicates=2), n_train=200, n_test=100,
                         n_estimators=30)
    fitted = []
    fit_study = pipeline.fit_study
    monkeypatch.setattr(pipeline, "fit_study", lambda *a, **k: fitted.append(1) or fit_study(*a, **k))
    logs = []
    again = run_study(TINY, out, config, log=logs.append)
    assert fitted == [] and "nothing changed since the last run" in "\n".join(logs)
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in summary.items() if k != "seconds"}
    (out / "scores.csv").write_text("edited\n")  # an output touched: fitted again, and the file restored
    run_study(TINY, out, config, log=logs.append)
    assert fitted == [1] and (out / "scores.csv").read_text() != "edited\n"
    run_study(TINY, out, dataclasses.replace(config, n_estimators=31), log=logs.append)  # another forest
    assert fitted == [1, 1]


def test_cli_fit_predict_report(study, tmp_path, capsys):
    out, _ = study
    pred = tmp_path / "p.skops"
    assert main(["fit", "--db", str(out / "runs.db"), "--trees", "20", "-o", str(pred)]) == 0
    assert "forest" in capsys.readouterr().out
    preds = tmp_path / "pred.csv"
    assert main(["predict", str(pred), str(out / "unseen_population.jsonl"), "-o", str(preds)]) == 0
    assert len(pd.read_csv(preds)) == 12
    assert main(["report", "--db", str(out / "runs.db"), "--trees", "20", "-o", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "index.html").is_file()
    # fit from any table
    table = pd.read_csv(out / "features.csv").assign(score=lambda d: d["density"] * 2)
    table["family"] = "x"
    table.to_csv(tmp_path / "t.csv", index=False)
    assert main(["fit", "--table", str(tmp_path / "t.csv"), "--outcome", "score", "--columns", "density,n_nodes",
                 "--trees", "20", "-o", str(tmp_path / "t.skops")]) == 0


def test_cli_fit_with_dynamics_features(study, tmp_path, capsys):
    out, _ = study
    pred = tmp_path / "d.skops"
    assert main(["fit", "--db", str(out / "runs.db"), "--dynamics", "--trees", "20", "-o", str(pred)]) == 0
    text = capsys.readouterr().out
    assert "dynamics features add" in text or "dynamics features: no gain can be measured" in text
    meta = __import__("json").loads((tmp_path / "d.skops.json").read_text())
    assert {"forest", "forest-graph"} <= {row["model"] for row in meta["scores"]}
    assert {"dyn_max_lyapunov", "dyn_spectral_radius", "dyn_spectral_norm"} <= set(meta["features"])
    # predicting new topologies computes their dynamics at init: still no training
    preds = tmp_path / "pred.csv"
    assert main(["predict", str(pred), str(out / "unseen_population.jsonl"), "-o", str(preds)]) == 0
    assert len(pd.read_csv(preds)) == 12
    assert main(["fit", "--table", str(out / "features.csv"), "--outcome", "density", "--dynamics",
                 "-o", str(tmp_path / "x.skops")]) == 2


def test_what_dynamics_features_add_is_a_number_only_where_a_forest_beats_the_mean():
    from topowire.study.fit import _dynamics_notes

    table = pd.DataFrame({"scheme": ["kfold"] * 2 + ["leave-one-family-out"] * 2,
                          "model": ["forest", "forest-graph"] * 2, "r2": [0.42, 0.40, -0.3, -0.5]})
    assert _dynamics_notes(table.set_index(["scheme", "model"])) == [
        "dynamics features add +0.020 R² over graph features alone (kfold)",
        "dynamics features: no gain can be measured (leave-one-family-out): neither forest beats the mean "
        "(R² -0.30 with them, -0.50 without)"]


@pytest.mark.parametrize("argv, message", [
    (["predict", "{pred}", "{mismatch}", "-o", "{out}"], "lacks the predictor's feature(s)"),
    (["predict", "{junk}", "{pop}", "-o", "{out}"], "is not a predictor (a .skops file"),
    (["fit", "--table", "{mismatch}", "--outcome", "nope", "-o", "{out}"], "outcome column 'nope'"),
    (["fit", "-o", "{out}"], "either --db"),
])
def test_fit_predict_bad_input(study, argv, message, tmp_path, capsys):
    out, _ = study
    files = {"pred": tmp_path / "p.skops", "mismatch": tmp_path / "m.csv", "junk": tmp_path / "j.skops",
             "pop": out / "unseen_population.jsonl", "out": tmp_path / "o.csv"}
    main(["fit", "--db", str(out / "runs.db"), "--trees", "10", "-o", str(files["pred"])])
    pd.DataFrame({"id": ["a"], "density": [0.1], "colour": [1.0]}).to_csv(files["mismatch"], index=False)
    files["junk"].write_bytes(b"junk")
    (tmp_path / "j.skops.json").write_text((tmp_path / "p.skops.json").read_text())  # valid metadata, junk model
    capsys.readouterr()
    code = main([a.format(**files) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not files["out"].exists()


def test_embedded_recipe_is_graphs_quick():
    root = Path(__file__).parents[2]
    from topowire.topology import load_recipe

    assert default_recipe() == load_recipe(root / "graphs" / "quick.toml")


def test_the_beyond_size_study_is_graph2nns_design_in_small(tmp_path, capsys):
    from topowire.study import load_study, study_preset
    from topowire.topology import load_recipe

    recipe, config = study_preset("beyond-size")
    assert recipe == load_recipe(Path(__file__).parents[2] / "graphs" / "beyond_size.toml")
    assert config.arch.kind == "relational" and config.task == "digits" and config.train.replicates == 3
    out = tmp_path / "bs"
    code = main(["run", "--study", "beyond-size", "--epochs", "1", "--replicates", "2", "--trees", "10",
                 "--width", "128", "-o", str(out)])
    text = " ".join(capsys.readouterr().out.split())
    assert code == 0 and "62 (31 topologies x 2 replicates)" in text
    assert "held fixed by design: flops vary by" in text and "power" in text
    study = load_study(out / "runs.db")
    assert study.arch.kind == "relational" and study.spec.train.epochs == 1 and study.spec.task.name == "digits"
    assert {t.n for t in study.topologies.values()} == {16}


def test_run_study_on_the_layered_form(tmp_path):
    """Every target goes through the same packing and training: the layered form end to end."""
    from topowire.compiler import Arch

    config = StudyConfig(arch=Arch("layered"), train=TrainConfig(epochs=1, batch_size=64), n_train=100, n_test=50,
                         n_estimators=10, export_onnx=False)
    summary = run_study(TINY, tmp_path / "s", config, log=lambda m: None)
    assert summary["models"].startswith("12 ") and summary["run"].startswith("layered ")
    # one epoch leaves every model at chance: the study says so, scores nothing and exports no "best" model
    assert list(summary)[0] == "WARNING" and "is constant (0.5" in summary["WARNING"]
    assert summary["exported"].startswith("nothing: every topology's mean test accuracy is within 0.02 of chance (0.5")
    assert not (tmp_path / "s" / "best_model.safetensors").exists()
    # report and fit keep the same guards: the run is refused, not reported
    for command in (["fit", "--db", tmp_path / "s" / "runs.db", "-o", tmp_path / "p.skops"],
                    ["report", "--db", tmp_path / "s" / "runs.db", "-o", tmp_path / "report"]):
        assert main([str(a) for a in command]) == 2
    assert not (tmp_path / "report").exists() and not (tmp_path / "p.skops").exists()
    import numpy as np

    from topowire.errors import DataError
    from topowire.study import load_study, report_study

    study = load_study(tmp_path / "s" / "runs.db")  # at chance but not constant: refused all the same
    study.results["test_acc"] = 0.5 + np.random.default_rng(0).uniform(-0.01, 0.01, len(study.results))
    with pytest.raises(DataError, match="within 0.02 of chance"):
        report_study(study, tmp_path / "report")
    assert len(pd.read_csv(tmp_path / "s" / "results.csv")) == 12
    assert not (tmp_path / "s" / "predictor.skops").exists() and not (tmp_path / "s" / "scores.csv").exists()


def test_a_study_draws_the_population_its_recipe_draws(tmp_path):
    """Unless told otherwise, run_study samples with the recipe's own seed, as `generate` does."""
    from topowire.topology import sample_population, write_population

    recipe = dataclasses.replace(TINY, seed=5)
    config = StudyConfig(train=TrainConfig(epochs=1, batch_size=64), n_train=100, n_test=50, n_estimators=10,
                         export_onnx=False)
    run_study(recipe, tmp_path / "s", config, log=lambda m: None)
    write_population(sample_population(recipe), tmp_path / "generated.jsonl")
    assert (tmp_path / "s" / "population.jsonl").read_bytes() == (tmp_path / "generated.jsonl").read_bytes()
    assert read_population(tmp_path / "s" / "population.jsonl").seed == 5


def test_a_study_where_no_model_trains_ok_says_so_and_exports_nothing(tmp_path, capsys):
    """Every model diverges (a loss bound no model can meet): a warning in words, no crash."""
    config = StudyConfig(train=TrainConfig(epochs=1, batch_size=64, diverge_loss=1e-6), n_train=100, n_test=50,
                         n_estimators=10, export_onnx=False)
    summary = run_study(TINY, tmp_path / "s", config, log=lambda m: None)
    assert summary["WARNING"].startswith("12 models in run ")
    assert ": 0 ok, 12 diverged, 0 failed; no model trained ok: " in summary["WARNING"]
    assert "there is nothing to fit; no predictor was fitted" in summary["WARNING"]
    assert summary["exported"] == "nothing: no model trained ok"
    assert not (tmp_path / "s" / "best_model.safetensors").exists() and not (tmp_path / "s" / "predictor.skops").exists()
    assert main(["fit", "--db", str(tmp_path / "s" / "runs.db"), "-o", str(tmp_path / "p.skops")]) == 2
    assert "0 ok, 12 diverged, 0 failed; no model trained ok: there is nothing to fit" in capsys.readouterr().err
    assert not (tmp_path / "p.skops").exists()


def test_the_study_features_table_is_a_valid_predict_input(study, tmp_path):
    out, _ = study
    assert main(["predict", str(out / "predictor.skops"), str(out / "features.csv"), "-o", str(tmp_path / "p.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(pd.read_csv(out / "features.csv"))


def test_a_graph_feature_table_without_params_points_to_the_population(study, tmp_path, capsys):
    """`topowire features` writes graph features only; the predictor also needs params."""
    out, _ = study
    graph_only = tmp_path / "graph.csv"
    pd.read_csv(out / "features.csv").drop(columns=["params"]).to_csv(graph_only, index=False)
    assert main(["predict", str(out / "predictor.skops"), str(graph_only), "-o", str(tmp_path / "p.csv")]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: the table lacks the predictor's feature(s) params (params: features of the compiled networks; "
        "predict from the population's .jsonl instead, which computes them with the predictor's arch)")
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("bad, message", [
    ({"n_estimators": 0}, "n_estimators must be an integer >= 1"), ({"task": "rebr"}, "unknown task 'rebr'"),
    ({"n_train": 0}, "n_train must be an integer >= 1"), ({"seed": -1}, "seed must be an integer with 0 <= seed")])
def test_a_bad_study_config_is_refused_before_any_work(bad, message):
    from topowire.errors import ParameterError

    with pytest.raises(ParameterError, match=message):
        StudyConfig(**bad)


def test_run_with_zero_trees_writes_nothing(tmp_path, capsys):
    assert main(["run", "--trees", "0", "-o", str(tmp_path / "study")]) == 2
    assert capsys.readouterr().err.strip() == ("error: Invalid value for '--trees': n_estimators must be an integer "
                                               ">= 1, got n_estimators = 0")
    assert not (tmp_path / "study").exists()


def test_a_run_is_rebuilt_with_the_task_sizes_it_was_trained_with(tmp_path, monkeypatch):
    """The run's record keeps the task's sizes: the dynamics features and the predictions of
    new topologies draw the same data the run was trained on (release 0.1 drew the defaults)."""
    from topowire.compiler import Arch
    from topowire.data import make_task
    from topowire.study import fit_study, load_study, predict_population
    from topowire.topology import Population, er_graph
    from topowire.train import train_population

    pop = [er_graph(8 + i, 0.15 + 0.05 * i, seed=i) for i in range(8)]
    task = make_task("reber", seed=0, n_train=400, n_test=48)
    train_population(pop, Arch("rnn-tanh"), task, TrainConfig(epochs=4, lr=0.05, replicates=2),
                     store=tmp_path / "r.db")
    calls = []
    real = make_task
    monkeypatch.setattr("topowire.data.tasks.base.make_task", lambda name, **kw: calls.append(kw) or real(name, **kw))
    _, predictor = fit_study(load_study(tmp_path / "r.db"), dynamics=True, n_estimators=10)
    predict_population(predictor, Population(tuple(er_graph(12, 0.3, seed=s) for s in range(20, 23))))
    assert len(calls) == 2 and all((c["n_train"], c["n_test"], c["seed"]) == (400, 48, 0) for c in calls)


def test_a_study_trains_each_model_once(tmp_path, monkeypatch):
    from topowire.train import trainer

    trained = []
    real = trainer.train_pack
    monkeypatch.setattr(trainer, "train_pack", lambda packed, *a, **k: trained.append(len(packed)) or real(packed, *a, **k))
    config = StudyConfig(train=TrainConfig(epochs=2, batch_size=64, replicates=2), n_train=200, n_test=100,
                         n_estimators=10, export_onnx=False)
    summary = run_study(TINY, tmp_path / "s", config, log=lambda m: None)
    assert sum(trained) == 24 and summary["models"].startswith("24 ")  # 12 topologies x 2 replicates
    assert (tmp_path / "s" / "best_model.safetensors").is_file()
    trained.clear()
    run_study(TINY, tmp_path / "s", config, log=lambda m: None)  # resumed: nothing left to train
    assert trained == []


def test_a_run_is_described_by_what_it_holds_fixed_and_its_protocol():
    from topowire.compiler import Arch
    from topowire.data import make_task
    from topowire.study import describe_run
    from topowire.train.spec import RunSpec

    digits = make_task("digits", n_train=100, n_test=50)
    config = TrainConfig(optimizer="sgd", lr=0.1, nesterov=True, schedule="cosine", weight_decay=5e-4,
                         data_order="replicate", device="cpu")
    text = describe_run(RunSpec.of(Arch("relational", width=128), digits, config))
    assert "match flops; FLOPs of the dense MLP of width 128 within 1%, stem fixed at that width)" in text
    assert text.endswith("lr 0.1, optimizer sgd, nesterov True, weight decay 0.0005, schedule cosine, "
                         "data order replicate, 1 replicates, cpu")
    text = describe_run(RunSpec.of(Arch("relational", width=128, match="params"), digits, TrainConfig(device="cpu")))
    assert "parameters of the dense MLP of width 128 within 1%, stem included)" in text
    assert text.endswith("lr 0.01, 1 replicates, cpu")


def test_run_on_a_recipe_that_cannot_be_drawn_leaves_no_folder(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text('[[family]]\nkind = "er"\ncount = 3\nn = 10\np = 2.0\n')
    assert main(["run", str(tmp_path / "bad.toml"), "-o", str(tmp_path / "study")]) == 2
    assert "p must be a finite number with 0 <= p <= 1, got p = 2.0" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]
