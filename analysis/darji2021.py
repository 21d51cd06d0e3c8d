"""Reproduce the random-structure study of arXiv 2407.20601 (Darji) on the Reber grammar.

Graphs: ``graphs/darji2021.toml`` (BA m = n//10, WS k = n//5 with p = 1, ER at the WS
density; n in [10, 50]). Cells: rnn-tanh, rnn-relu, lstm, gru in the layered form (one
cell per longest-path layer of the u<v orientation, dense intra-layer recurrence), in
two modes:

- ``thesis``: the network's input width is the number of sources (``Arch.thesis``);
- ``corrected``: a fixed-width trainable input projection onto the sources (and the
  per-gate input masks tiled as whole blocks).

Training: by default the thesis's settings (Adam 1e-3, batch 128, clipping 5, 15 epochs);
``--lr``, ``--batch``, ``--n-train`` change them. The models of one (mode, cell) are
trained together as a :class:`~topowire.compiler.targets.layered.PackedLayered` (each exactly as
if alone); finished blocks are kept in ``results.partial.csv`` so a killed run resumes. Then a
random forest predicts test accuracy from graph features, scored honestly (repeated
5-fold and leave-one-family-out CV, beside the mean and size-only baselines) and by the
thesis's protocol (one 80/20 split) for comparison. The thesis reports RF R² of 0.43
(tanh), 0.62 (ReLU), 0.58 (LSTM) and 0.88 (GRU) with ``source_nodes`` dominant.

    python analysis/darji2021.py --smoke                    # seconds (CI)
    python analysis/darji2021.py                             # the thesis's settings, all 300 graphs
    python analysis/darji2021.py --per-family 30 --epochs 8 --n-train 3200 --lr 1e-2 --batch 64
                                                             # the committed run (about 1 h on 2 cores)

Writes ``analysis/results/darji2021/`` (results.csv, scores.csv, importances.csv, summary.md).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from topowire.compiler import Arch, wire
from topowire.compiler.targets.layered import PackedLayered
from topowire.data import make_task
from topowire.errors import DataError
from topowire.features import feature_table
from topowire.predict import cross_validate
from topowire.topology import load_recipe, sample_population
from topowire.train import TrainConfig, train_pack

ROOT = Path(__file__).parents[1]
OUT = Path(__file__).parent / "results" / "darji2021"
CELLS = ("rnn-tanh", "rnn-relu", "lstm", "gru")
THESIS_R2 = {"rnn-tanh": 0.43, "rnn-relu": 0.62, "lstm": 0.58, "gru": 0.88}


def thesis_split_r2(table: pd.DataFrame, features: list[str], seed: int) -> float:
    """The thesis's protocol: one random 80/20 split, R² on the 20%."""
    from sklearn.metrics import r2_score

    from topowire.predict import make_model

    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(table))
    cut = int(0.8 * len(table))
    tr, te = table.iloc[idx[:cut]], table.iloc[idx[cut:]]
    model = make_model("forest", features, seed).fit(tr[features], tr["test_acc"])
    return float(r2_score(te["test_acc"], model.predict(te[features])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--per-family", type=int, help="graphs per family (default: the recipe's 100)")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--pack", type=int, default=100, help="models trained together (PackedLayered)")
    ap.add_argument("--modes", default="thesis,corrected", help="comma-separated subset of thesis,corrected")
    ap.add_argument("--cells", default=",".join(CELLS), help="comma-separated subset of the four cells")
    ap.add_argument("--seed", type=int, default=2021)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    per_family, epochs, n_train, n_test = args.per_family, args.epochs, args.n_train, 200
    if args.smoke:
        per_family, epochs, n_train, n_test = 2, 1, 32, 32
    pop = list(sample_population(load_recipe(ROOT / "graphs" / "darji2021.toml"), args.seed))
    if per_family:
        pop = [t for fam in ("ba", "ws", "er") for t in [t for t in pop if t.family == fam][:per_family]]
    task = make_task("reber", seed=args.seed, n_train=n_train, n_test=n_test)
    features = feature_table(pop, n_jobs=-1)
    features = features[~features.index.duplicated()]
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    partial = args.out / "results.partial.csv"  # one block per (mode, cell): a killed run resumes
    done = pd.read_csv(partial) if partial.exists() and not args.smoke else pd.DataFrame()
    all_rows = done.to_dict("records")  # every finished block, kept in the partial file
    rows = [r for r in all_rows if r["mode"] in args.modes.split(",") and r["cell"] in args.cells.split(",")]
    modes = [m for m in ("thesis", "corrected") if m in args.modes.split(",")]
    cells = [c for c in CELLS if c in args.cells.split(",")]
    if not modes or not cells:
        raise SystemExit(f"error: no mode of {args.modes!r} or no cell of {args.cells!r} is known")
    for mode in modes:
        for cell in cells:
            if len(done) and ((done["mode"] == mode) & (done["cell"] == cell)).any():
                continue
            arch = Arch.thesis(cell, d_in=7, d_out=2)
            if mode == "corrected":
                arch = arch.replace(input_width="fixed")
            block = []
            for start in range(0, len(pop), args.pack):
                part = pop[start:start + args.pack]
                wirings = [wire(t, arch.orientation, arch.inputs, arch.outputs) for t in part]
                seeds = [args.seed + start + i for i in range(len(part))]
                packed = PackedLayered(wirings, arch, seeds)  # == compile(t, arch, seed) per model
                config = TrainConfig(epochs=epochs, batch_size=args.batch, lr=args.lr, clip=5.0, seed=args.seed)
                results = train_pack(packed, task, config)
                for t, w, s, res, counts in zip(part, wirings, seeds, results, packed.parameter_counts()):
                    block.append({"mode": mode, "cell": cell, "topology_id": t.id, "family": t.family,
                                  "params": counts["total"], "sources": int((w.layer == 0).sum()),
                                  "test_acc": res["test_acc"], "status": res["status"]})
            rows.extend(block)
            all_rows.extend(block)
            if not args.smoke:
                pd.DataFrame(all_rows).to_csv(partial, index=False)
            print(f"{mode:9s} {cell:8s}: mean test accuracy {np.mean([r['test_acc'] for r in block]):.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    results = pd.DataFrame(rows)
    results.to_csv(args.out / "results.csv", index=False)
    if len(modes) == 2 and len(cells) == len(CELLS):
        partial.unlink(missing_ok=True)
    names = list(features.columns) + ["params"]
    score_rows, imp_rows = [], []
    for (mode, cell), part in results.groupby(["mode", "cell"], sort=False):
        table = part.join(features, on="topology_id")
        try:
            cv = cross_validate(table, "test_acc", names, seed=0, n_estimators=20 if args.smoke else 300,
                                n_repeats=1 if args.smoke else 3)
        except DataError as exc:  # e.g. every model at chance: reported, never scored
            score_rows.append({"mode": mode, "cell": cell, "scheme": "not scored", "model": str(exc)})
            continue
        t = cv.table()
        for r in t.itertuples(index=False):
            score_rows.append({"mode": mode, "cell": cell, **r._asdict()})
        score_rows.append({"mode": mode, "cell": cell, "scheme": "single 80/20 split (thesis)", "model": "forest",
                           "r2": thesis_split_r2(table, names, 0)})
        top = cv.importances.head(5)
        imp_rows.extend({"mode": mode, "cell": cell, "rank": k + 1, "feature": f, "importance": v}
                        for k, (f, v) in enumerate(zip(top["feature"], top["importance"])))
    scores = pd.DataFrame(score_rows)
    imps = pd.DataFrame(imp_rows, columns=["mode", "cell", "rank", "feature", "importance"])
    scores.to_csv(args.out / "scores.csv", index=False)
    imps.to_csv(args.out / "importances.csv", index=False)
    lines = [f"# Darji (arXiv 2407.20601) reproduction{' (smoke)' if args.smoke else ''}\n",
             f"{len(pop)} graphs ({', '.join(f'{k}: {v}' for k, v in pd.Series([t.family for t in pop]).value_counts().items())}), "
             f"Adam {args.lr:g}, batch {args.batch}, {epochs} epochs, Reber {n_train}/{n_test}, "
             f"{platform.machine()} CPU, {time.perf_counter() - t0:.0f} s.\n",
             "| mode | cell | mean acc | RF R² 5-fold | mean R² 5-fold | size-forest R² 5-fold | RF R² leave-family-out | RF R² one 80/20 split | thesis R² | top feature |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (mode, cell), part in results.groupby(["mode", "cell"], sort=False):
        s = scores[(scores["mode"] == mode) & (scores["cell"] == cell)]

        def r2(scheme, model):
            v = s[(s["scheme"] == scheme) & (s["model"] == model)]["r2"]
            return f"{float(v.iloc[0]):.2f}" if len(v) else "-"

        degenerate = s[s["scheme"] == "not scored"]
        if len(degenerate):
            lines.append(f"| {mode} | {cell} | {part['test_acc'].mean():.3f} | not scored: "
                         f"{degenerate['model'].iloc[0]} |||||| {THESIS_R2[cell]:.2f} | - |")
            continue
        top = imps[(imps["mode"] == mode) & (imps["cell"] == cell)]["feature"].iloc[0]
        lines.append(f"| {mode} | {cell} | {part['test_acc'].mean():.3f} | {r2('kfold', 'forest')} | {r2('kfold', 'mean')} | "
                     f"{r2('kfold', 'forest-size')} | {r2('leave-one-family-out', 'forest')} | "
                     f"{r2('single 80/20 split (thesis)', 'forest')} | {THESIS_R2[cell]:.2f} | {top} |")
    text = "\n".join(lines) + "\n"
    (args.out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
