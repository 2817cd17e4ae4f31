"""Throughput of ``callscope batch``: captures scored per second, locally and on Dask.

Usage::

    python benchmarks/batch_benchmark.py [--per-pattern 17] [--duration 10] [--dir /tmp]

Writes a labelled corpus of ``--per-pattern`` simulated calls of each of the
twelve patterns (``callscope.synth.generate_corpus``; 17 x 12 = 204 captures
of 10 s by default), then scores all of it with :func:`callscope.batch.run`
three ways and prints captures/s for each:

- ``--jobs 1``: one capture after the other in this process;
- ``--jobs 2``: a local ``ProcessPoolExecutor`` of two workers (its start-up
  is inside the timing);
- Dask: a ``distributed.LocalCluster`` of two single-threaded worker
  processes (started before the timing, as a cluster would already be
  running; connecting the client is inside it).

Each mode first scores the corpus once untimed so that every process has
imported numpy/scipy and the OS has the files cached; then the best of
``--repeat`` timed runs is reported. The corpus is deleted at the end
(``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from callscope import batch


def timed(label: str, n: int, score: Callable[[], list[batch.CaptureResult]], repeat: int) -> float:
    """Best-of-``repeat`` captures/s of ``score`` (after one warm-up run); prints one line."""
    results = score()
    errors = sum(r.error is not None for r in results)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        results = score()
        best = min(best, time.perf_counter() - start)
        assert len(results) == n
    rate = n / best
    print(f"{label:<28} {n} captures in {best:6.2f} s  = {rate:7.1f} captures/s  ({errors} errors)",
          flush=True)
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-pattern", type=int, default=17, help="captures per pattern (x 12 patterns)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per simulated call")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per mode (best is kept)")
    parser.add_argument("--dir", default=None, help="where to write the corpus (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the corpus")
    args = parser.parse_args()

    from callscope.synth.corpus import generate_corpus

    root = Path(tempfile.mkdtemp(prefix="callscope-batch-", dir=args.dir))
    try:
        start = time.perf_counter()
        generate_corpus(root, args.per_pattern, seed=7, duration=args.duration)
        paths = batch.find_captures([root])
        size_mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"corpus: {len(paths)} captures of {args.duration:g} s, {size_mb:.1f} MB, "
              f"written in {time.perf_counter() - start:.1f} s ({root})", flush=True)
        n = len(paths)
        rates = {
            "jobs 1": timed("--jobs 1 (in process)", n, lambda: list(batch.run(paths, jobs=1)), args.repeat),
            "jobs 2": timed("--jobs 2 (process pool)", n, lambda: list(batch.run(paths, jobs=2)), args.repeat),
        }
        from distributed import LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:
            address = cluster.scheduler_address
            rates["dask 2"] = timed("--dask (LocalCluster, 2 workers)", n,
                                    lambda: list(batch.run(paths, dask_address=address)), args.repeat)
        print("speed-up over --jobs 1: " + ", ".join(
            f"{k} x{v / rates['jobs 1']:.2f}" for k, v in rates.items() if k != "jobs 1"))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
