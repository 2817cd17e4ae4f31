"""Score the diagnosis on freshly generated labelled corpora.

Generates, with seeds the detectors were never tuned on, a corpus of 30 s RTP
calls (N per pattern), the same for opaque messenger-style media, and a set of
long bursty-loss calls (Gilbert-Elliott p and r are only scored on 2000
packets or more), then prints `callscope evaluate`'s report for each.

    python benchmarks/evaluate_corpus.py            # 20 per pattern
    python benchmarks/evaluate_corpus.py -n 5 --seed 7 --keep /tmp/corpus
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from callscope.cli.evaluate import evaluation_text
from callscope.evaluate import evaluate
from callscope.synth.corpus import generate_corpus


def section(title: str, directory: Path) -> float:
    t0 = time.perf_counter()
    ev = evaluate([directory])
    dt = time.perf_counter() - t0
    print(f"\n=== {title} ({len(ev.cases)} captures, {dt:.1f} s to analyze) ===")
    print(evaluation_text(ev))
    wrong = [c for c in ev.cases if c.predicted != c.truth.label]
    for c in wrong:
        print(f"  misdiagnosed: {c.path.name}: {c.truth.label} -> {c.predicted} ({c.confidence:.2f})")
    return ev.macro_f1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20, help="captures per pattern (default 20)")
    ap.add_argument("--seed", type=int, default=909_090, help="corpus seed (default 909090)")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per call (default 30)")
    ap.add_argument("--keep", type=Path, help="write the corpora here instead of a temporary directory")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        t0 = time.perf_counter()
        generate_corpus(root / "rtp", args.n, seed=args.seed, duration=args.duration)
        generate_corpus(root / "opaque", args.n, seed=args.seed + 1, duration=args.duration, opaque=True)
        generate_corpus(root / "long", max(2, args.n // 2), seed=args.seed + 2, duration=90.0,
                        patterns=["bursty-loss", "random-loss", "policing"])
        print(f"generated in {time.perf_counter() - t0:.1f} s under {root}")
        rtp = section(f"RTP, {args.duration:g} s calls", root / "rtp")
        opq = section(f"opaque media, {args.duration:g} s calls", root / "opaque")
        section("long calls (90 s): Gilbert-Elliott parameters", root / "long")
        print(f"\nRTP macro-F1 {rtp:.2f}, opaque macro-F1 {opq:.2f}")


if __name__ == "__main__":
    main()
