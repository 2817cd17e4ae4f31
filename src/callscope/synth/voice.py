"""A speech-like test signal and its G.711 encoding, for simulated PCMU/PCMA payloads.

Random payload bytes decode to white noise; this signal decodes to something a
listener recognises as a voice-like buzz of syllables, so that what
``callscope audio`` renders from a simulated capture lets one hear the
difference between evenly spaced (policing: "metallic") and bursty losses.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 8000  # ITU-T G.711: 8 kHz sampling
# ITU-T G.711 / Sun Microsystems g711.c: upper ends of the eight segments.
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])  # 14-bit magnitudes
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])  # 13-bit magnitudes
ULAW_CLIP = 8159  # 14-bit magnitude clip (G.711 µ-law range ±8159)
ULAW_BIAS_14 = 0x84 >> 2  # G.711 µ-law bias 132 in 16-bit scale, 33 in 14-bit


def linear_to_ulaw(pcm: np.ndarray) -> np.ndarray:
    """ITU-T G.711 µ-law encoding of 16-bit linear samples (vectorised).

    References
    ----------
    ITU-T G.711 (1988) §3 and Table 2a; the segment search of the public
    domain Sun ``g711.c``.
    """
    x = np.asarray(pcm, np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x), ULAW_CLIP) + ULAW_BIAS_14
    seg = np.searchsorted(_ULAW_SEG_END, mag, side="left")
    val = (np.minimum(seg, 7) << 4) | ((mag >> (seg + 1)) & 0x0F)
    val = np.where(seg >= 8, 0x7F, val)  # beyond the last segment: the largest code
    return ((val ^ mask) & 0xFF).astype(np.uint8)


def linear_to_alaw(pcm: np.ndarray) -> np.ndarray:
    """ITU-T G.711 A-law encoding of 16-bit linear samples (vectorised).

    References
    ----------
    ITU-T G.711 (1988) §2 and Table 1a (even bits inverted: XOR 0x55).
    """
    x = np.asarray(pcm, np.int32) >> 3
    negative = x < 0
    mask = np.where(negative, 0x55, 0xD5)
    mag = np.where(negative, -x - 1, x)
    seg = np.searchsorted(_ALAW_SEG_END, mag, side="left")
    shift = np.where(seg < 2, 1, seg)
    val = (np.minimum(seg, 7) << 4) | ((mag >> shift) & 0x0F)
    val = np.where(seg >= 8, 0x7F, val)  # beyond the last segment: the largest code
    return ((val ^ mask) & 0xFF).astype(np.uint8)


def speech_like(rng: np.random.Generator, n: int, pitch_hz: float) -> np.ndarray:
    """``n`` samples at 8 kHz of a voiced buzz with syllables and pauses, 16-bit.

    A glottal-like harmonic series (12 harmonics falling 6 dB/octave) on a
    pitch that wanders ±15 %, amplitude-modulated at a syllable rate of
    3-5 Hz and gated by talk/pause periods (1-3 s of talk, 0.2-0.8 s of quiet).
    """
    t = np.arange(n) / SAMPLE_RATE
    wander = 1.0 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(pitch_hz * wander) / SAMPLE_RATE
    signal = np.zeros(n)
    for k in range(1, 13):
        signal += np.sin(k * phase) / k
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(3.0, 5.0) * t) ** 2
    count = int(n / SAMPLE_RATE) + 2
    quiet = rng.uniform(0.2, 0.8, count)
    edges = np.cumsum(rng.uniform(1.0, 3.0, count) + quiet)
    period = np.searchsorted(edges, t)
    gate = np.where(t < edges[period] - quiet[period], 1.0, 0.05)  # the tail of each period is quiet
    return np.rint(6000.0 * signal * syllables * gate).clip(-32768, 32767).astype(np.int16)
