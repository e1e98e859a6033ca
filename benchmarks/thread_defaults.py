"""CPU thread defaults under contention: one network trained with 1 thread and with one thread per core, on an
idle machine and while other processes keep every core busy, side by side in one run.

Each measurement trains the same demo network (embedded digits, ``--epochs`` epochs) in a fresh process, in turn,
so the figures share whatever else the machine is doing; the busy case starts one CPU-burning process per core.
The ratios say what ``--threads`` default degrades gracefully on a shared machine (what ``builder.generate`` uses).

    python benchmarks/thread_defaults.py --epochs 2 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

WORKER = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
from builder.engine.sources import load_images
from builder.engine.space import get_preset
from builder.engine.train import TrainConfig, train_network
hp = get_preset("demo").sample(0, 0)
images = load_images("digits")
t = time.perf_counter()
train_network(hp, images, zoo_seed=0, network_id=0, config=TrainConfig(max_epochs=int(sys.argv[2])))
print(time.perf_counter() - t)
"""


def _burn() -> None:  # pragma: no cover - a CPU hog
    while True:
        pass


def _train(threads: int, epochs: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(threads), str(epochs)], capture_output=True, text=True, env=env, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    cores = os.cpu_count() or 1
    settings = sorted({1, cores})
    results: dict[tuple[str, int], list[float]] = {}
    for load in ("idle", "busy"):
        hogs = []
        if load == "busy":
            hogs = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(cores)]
            for h in hogs:
                h.start()
            time.sleep(1)
        try:
            for _ in range(args.repeats):
                for threads in settings:  # interleaved: both settings see the same machine
                    results.setdefault((load, threads), []).append(_train(threads, args.epochs))
        finally:
            for h in hogs:
                h.terminate()
    print(f"{cores} cores, demo network, {args.epochs} epochs, median of {args.repeats}")
    print(f"{'machine':<8} {'threads':>7} {'seconds':>8} {'x 1 thread':>10}")
    for (load, threads), times in results.items():
        base = statistics.median(results[(load, 1)])
        print(f"{load:<8} {threads:>7} {statistics.median(times):>8.1f} {statistics.median(times) / base:>10.2f}")
    print(json.dumps({f"{k[0]}-{k[1]}": v for k, v in results.items()}))


if __name__ == "__main__":
    main()
