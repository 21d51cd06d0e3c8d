"""The Ray executor against the local one, side by side in one run.

A population of GRUs (ER, n in [16, 32]) trains for a few epochs of Reber, in packs of
``--chunk`` models, with: the local executor (this process, torch's default threads); Ray
with 1 worker of 1 thread; Ray with 2 workers of 1 thread; Ray with 1 worker of 2 threads
-- each on a fresh local Ray cluster of ``--cpus`` CPUs (started once; its start-up time is
printed apart and not counted). Prints models*epochs/s of each and its ratio to local.

    python bench/bench_ray.py [--models 48] [--chunk 8] [--epochs 2] [--cpus 2]
"""

from __future__ import annotations

import argparse
import platform
import time

import ray
import torch

from topowire.compiler import Arch
from topowire.data import make_task
from topowire.topology import parse_recipe, sample_population
from topowire.train import TrainConfig, train_population
from topowire.train.executors import RayExecutor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=48)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    pop = list(sample_population(parse_recipe({"family": [
        {"kind": "er", "count": args.models, "n": [16, 32], "p": "4 / n"}]}), 0))
    task = make_task("reber", n_train=1000, n_test=200, seed=0)
    config = TrainConfig(epochs=args.epochs, chunk_size=args.chunk)
    work = args.models * args.epochs
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads here; {args.models} GRUs x {args.epochs} epochs of 1,000 strings, packs of {args.chunk}")
    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    print(f"ray cluster start: {time.perf_counter() - t0:.1f} s (not counted)")
    runs = {"local": "local", "ray 1 worker x 1 thread": RayExecutor(workers=1, threads=1),
            "ray 2 workers x 1 thread": RayExecutor(workers=2, threads=1),
            "ray 1 worker x 2 threads": RayExecutor(workers=1, threads=2)}
    train_population(pop[:args.chunk], Arch("gru"), task, config.replace(epochs=1),
                     executor=RayExecutor(workers=args.cpus))  # warm the workers' imports
    local = None
    for name, executor in runs.items():
        t0 = time.perf_counter()
        train_population(pop, Arch("gru"), task, config, executor=executor)
        seconds = time.perf_counter() - t0
        local = local or seconds
        print(f"{name:26s} {seconds:7.1f} s  {work / seconds:7.2f} models*epochs/s  {local / seconds:5.2f}x local")
    ray.shutdown()


if __name__ == "__main__":
    main()
