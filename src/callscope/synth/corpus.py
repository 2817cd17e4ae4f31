"""A labelled corpus: ``n`` simulated captures of every pattern, each with its truth sidecar."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from callscope.errors import CallscopeError
from callscope.synth.call import simulate
from callscope.synth.codecs import CODECS
from callscope.synth.output import write_capture
from callscope.synth.scenarios import SCENARIOS

MANIFEST = "corpus.json"


def generate_corpus(
    out_dir: str | os.PathLike[str],
    n_per_pattern: int,
    seed: int = 0,
    duration: float = 30.0,
    opaque: bool = False,
    *,
    patterns: Sequence[str] | None = None,
    codecs: Sequence[str] | None = None,
    max_background_loss: float = 0.003,
) -> list[Path]:
    """Write ``n_per_pattern`` captures of each pattern under ``out_dir``.

    Files are ``PATTERN-NNN.pcap`` with ``PATTERN-NNN.truth.json`` beside
    them, plus ``corpus.json`` listing every capture, its label, seed and
    codec. Each capture has its own seed (derived from ``seed``), so the drawn
    parameters vary across the corpus; the codec is drawn per capture from
    ``codecs`` (default: all of them).

    Parameters
    ----------
    out_dir : path-like
    n_per_pattern : int
    seed : int
        Seed of the whole corpus: the same seed gives the same files.
    duration : float
        Seconds per call.
    opaque : bool
        Messenger-style encrypted media instead of RTP (no SIP, no RTCP).
    patterns : sequence of str, optional
        Restrict to these patterns (default: every one).
    codecs : sequence of str, optional
        Codecs to draw from.
    max_background_loss : float
        Each capture's path loses packets independently with a probability
        drawn from [0, this], under whatever the scenario does: real networks
        are never perfectly clean, and a classifier must not need them to be.

    Returns
    -------
    list of Path
        The captures written.
    """
    patterns = list(patterns or SCENARIOS)
    unknown = [p for p in patterns if p not in SCENARIOS]
    if unknown:
        raise CallscopeError(f"unknown pattern(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    codecs = list(codecs or CODECS)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written: list[Path] = []
    manifest = []
    for pattern in patterns:
        for i in range(n_per_pattern):
            call_seed = int(rng.integers(0, 2**31))
            codec = str(rng.choice(codecs))
            background = round(float(rng.uniform(0.0, max_background_loss)), 5)
            path = out / f"{pattern}-{i:03d}.pcap"
            call = simulate(pattern, seed=call_seed, duration=duration, codec=codec, opaque=opaque,
                            background_loss=background)
            write_capture(call, path)
            written.append(path)
            manifest.append({"file": path.name, "label": pattern, "seed": call_seed, "codec": codec})
    (out / MANIFEST).write_text(
        json.dumps({"seed": seed, "duration_s": duration, "opaque": opaque, "captures": manifest}, indent=1)
        + "\n"
    )
    return written
