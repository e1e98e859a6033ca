"""Read throughput of a zoo: every network's snapshot-20 weights, through each reader, side by side in one run.

Writes a synthetic zoo with the real writer (random weights; or takes ``--zoo``), warms the page cache, then
times, each in a fresh process so that peak memory is its own:

- a plain sequential read of the zoo's shard files (the ceiling: every byte once, no parsing);
- ``weightzoo``'s direct reader: ``open_zoo(...).flat(id, snapshot=20)`` for every network, and the same
  through ``Zoo.iter_arrays`` (storage order, one shard open at a time: what the ``datasets`` builder uses);
- ``load_dataset("weightzoo", snapshots=20, granularity="snapshot")``: the one-time prepare (reported apart),
  then reading the prepared dataset (numpy batches);
- the same with ``streaming=True`` (numpy batches), at the zoo size and at twice it, to show that its peak memory
  does not grow with the zoo.

Throughput is given as shard bytes per second (comparable with the plain read: every reader but the prepared
dataset must read whole network ranges, 20 snapshots, to get snapshot 20) and as snapshot-20 bytes per second.

    python benchmarks/read_throughput.py --networks 200             # nws_fixed: ~7.4 MB per network
    python benchmarks/read_throughput.py --zoo ~/.cache/weightzoo/zoos/nws_fixed
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHUNK = 8 * 2**20
METHODS = ("plain", "direct", "iter", "prepare", "prepared", "streaming", "streaming-noverify")
LABELS = {
    "plain": "plain sequential read of the shards",
    "direct": "weightzoo direct reader (open_zoo)",
    "iter": "  same, Zoo.iter_arrays (storage order)",
    "prepare": "load_dataset: prepare (one-time)",
    "prepared": "load_dataset: prepared, numpy",
    "streaming": "load_dataset: streaming, numpy",
    "streaming-noverify": "  same, verify=False (no sha256 checks)",
}


def write_zoo(path: Path, networks: int, preset: str, shard_mb: float, seed: int = 0) -> None:
    """A zoo of ``networks`` random-weight networks written with the real writer (``ZooWriter``)."""
    from builder.engine.space import get_preset, split_of
    from weightzoo.format.index import NetworkRecord
    from weightzoo.format.layout import METRICS, NUM_SNAPSHOTS
    from weightzoo.format.writer import ZooWriter

    space, rng = get_preset(preset), np.random.default_rng(seed)
    generation = {"preset": preset, "note": "benchmarks/read_throughput.py synthetic zoo"}
    with ZooWriter(
        path, name=f"bench-{preset}", zoo_seed=seed, generation=generation, max_shard_bytes=int(shard_mb * 2**20)
    ) as writer:
        for i in range(networks):
            hp = space.sample(seed, i)
            weights = {
                p.name: rng.standard_normal((NUM_SNAPSHOTS, *p.shape), dtype=np.float32) for p in hp.architecture.params
            }
            metrics = {m: list(rng.random(NUM_SNAPSHOTS)) for m in METRICS}
            record = NetworkRecord(i, split_of(i), "completed", seed, hp, 19, list(range(20)), metrics, metrics)
            writer.add(record, weights)


def _memory_mb(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident since start, or since :func:`_reset_peak`) in MB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


def _reset_peak() -> bool:
    """Reset VmHWM (Linux >= 4.0) so that the peak measures the reader, not the imports before it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _shards(zoo: str) -> list[str]:
    from weightzoo import open_zoo

    z = open_zoo(zoo)
    return [f"{z.root}/{s.path}" for s in z.manifest.shards]


def worker(method: str, zoo: str, cache: str) -> dict[str, float]:
    """Run one measurement in this process; return seconds (total and opening), bytes delivered and memory."""
    import datasets

    import weightzoo

    datasets.disable_progress_bars()
    datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False
    shards = _shards(zoo)
    kwargs = {"data_dir": zoo, "cache_dir": cache, "snapshots": 20, "granularity": "snapshot"}
    if method.endswith("-noverify"):
        method, kwargs["verify"] = method.removesuffix("-noverify"), False
    baseline, reset = _memory_mb("VmRSS"), _reset_peak()
    payload = 0
    start = opened = time.perf_counter()
    if method == "plain":
        buffer = bytearray(CHUNK)
        for path in shards:
            with open(path, "rb", buffering=0) as f:
                while n := f.readinto(buffer):
                    payload += n
    elif method == "direct":
        z = weightzoo.open_zoo(zoo)
        opened = time.perf_counter()
        for nid in z.ids:
            payload += z.flat(nid, snapshot=20).numel() * 4
    elif method == "iter":
        with weightzoo.open_zoo(zoo) as z:
            opened = time.perf_counter()
            for _, arrays in z.iter_arrays([20], check=False):
                payload += sum(a.nbytes for a in arrays.values())
    elif method == "prepare":
        ds = datasets.load_dataset("weightzoo", **kwargs)
        payload = sum(d.data.nbytes for d in ds.values())
    elif method in ("prepared", "streaming"):
        ds = datasets.load_dataset("weightzoo", **kwargs, streaming=method == "streaming")
        opened = time.perf_counter()
        for split in ds.values():
            for batch in split.with_format("numpy").iter(batch_size=16):
                payload += sum(np.asarray(w).nbytes for w in batch["weights"])
    else:
        raise SystemExit(f"unknown method {method!r}; expected one of {METHODS}")
    seconds = time.perf_counter() - start
    peak = _memory_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    shard_bytes = sum(os.path.getsize(p) for p in shards)
    return {
        "seconds": seconds,
        "open": opened - start,
        "payload": payload,
        "shard_bytes": shard_bytes,
        "baseline": baseline,
        "peak": peak,
    }


def run(method: str, zoo: Path, cache: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--worker", method, "--zoo", str(zoo), "--cache", str(cache)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{method} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--networks", type=int, default=200, help="networks in the synthetic zoo (default 200)")
    p.add_argument("--preset", default="nws_fixed", help="architecture space of the synthetic zoo")
    p.add_argument("--shard-mb", type=float, default=64, help="shard size cap of the synthetic zoo (MB)")
    p.add_argument("--zoo", help="an existing zoo to measure instead (streaming memory then runs at one size)")
    p.add_argument("--workdir", help="where to write zoos and caches (default: a temporary folder, removed)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--cache", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.zoo, args.cache)))
        return

    work = Path(args.workdir or tempfile.mkdtemp(prefix="wz-bench-"))
    try:
        zoos = [Path(args.zoo)] if args.zoo else [work / "zoo", work / "zoo-x2"]
        if not args.zoo:
            for path, n in zip(zoos, (args.networks, 2 * args.networks), strict=True):
                if not (path / "manifest.json").exists():
                    t = time.perf_counter()
                    write_zoo(path, n, args.preset, args.shard_mb)
                    print(f"wrote {n} networks to {path} in {time.perf_counter() - t:.1f} s", flush=True)
        zoo = zoos[0]
        cache = work / f"hf-cache-{time.time_ns()}"  # fresh: "prepare" really prepares, "prepared" reuses it
        run("plain", zoo, cache)  # warm the page cache: every reader below reads from memory
        results = {m: run(m, zoo, cache) for m in METHODS}
        plain = results["plain"]["seconds"]
        n_shards = len(_shards(str(zoo)))
        print(
            f"\nzoo {zoo}: {results['plain']['shard_bytes'] / 1e6:.1f} MB in {n_shards} shards; "
            f"snapshot-20 weights {results['direct']['payload'] / 1e6:.1f} MB; warm page cache"
        )
        print(
            f"{'reader':<40} {'seconds':>8} {'(open)':>7} {'shard MB/s':>11} {'snap20 MB/s':>12} {'x plain':>8} "
            f"{'peak RSS MB (+ over imports)':>29}"
        )
        snap20 = results["direct"]["payload"] / 1e6
        for m, r in results.items():
            ratio = "-" if m == "prepare" else f"{r['seconds'] / plain:.2f}"
            shard_rate = r["shard_bytes"] / 1e6 / r["seconds"]
            print(
                f"{LABELS[m]:<40} {r['seconds']:>8.3f} {r['open']:>7.3f} {shard_rate:>11.0f} "
                f"{snap20 / r['seconds']:>12.1f} {ratio:>8} {r['peak']:>15.0f} (+{r['peak'] - r['baseline']:.0f})"
            )
        direct = results["direct"]["seconds"] / plain
        verdict = "met" if direct <= 1.5 else "MISSED"
        print(f"\ngoal: direct reader within 1.5x of the plain read: {direct:.2f}x, {verdict}")
        if len(zoos) == 2:
            small, big = results["streaming"], run("streaming", zoos[1], cache)
            growth = (big["peak"] - big["baseline"]) - (small["peak"] - small["baseline"])
            print(
                f"streaming peak RSS over imports: +{small['peak'] - small['baseline']:.0f} MB with "
                f"{small['shard_bytes'] / 1e6:.0f} MB of shards, +{big['peak'] - big['baseline']:.0f} MB with "
                f"{big['shard_bytes'] / 1e6:.0f} MB ({big['shard_bytes'] / small['shard_bytes']:.1f}x the zoo): "
                f"growth {growth:+.0f} MB"
            )
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
