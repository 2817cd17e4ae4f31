"""One direction's voice media: its datagrams and what the path did to them.

RTP headers per RFC 3550 §5.1 (or an opaque messenger header), payloads with
a speech-like signal for G.711, the arrival of each packet after the
impairing element and the path, and the ground-truth facts about the media
as sent (loss per direction, rates before and after a codec downshift).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callscope.synth import wire
from callscope.synth.packets import Kind, Part, random_bytes
from callscope.synth.plan import MediaFlow
from callscope.synth.scenarios import DIRECTIONS, Downshift, DropReason, Outcome
from callscope.synth.sender import MediaSchedule
from callscope.synth.voice import linear_to_alaw, linear_to_ulaw, speech_like

G711_ENCODERS = {"pcmu": linear_to_ulaw, "pcma": linear_to_alaw}
#: RFC 6716 §3.1 Table 2: TOC configuration numbers of SILK wideband frames by duration (ms).
OPUS_SILK_WB_CONFIG = {10: 8, 20: 9, 40: 10, 60: 11}
#: Voice pitch of A's and B's speech-like signal (a low and a higher voice), Hz.
VOICE_PITCH_HZ = (120.0, 210.0)


@dataclass(frozen=True)
class MediaRun:
    """One direction's media through the call: the frames sent, what the
    impairing element did to them, when each arrived (NaN if lost), the datagrams."""

    sched: MediaSchedule
    outcome: Outcome
    arrival: np.ndarray
    part: Part


def path_arrival(
    rng: np.random.Generator, outcome: Outcome, base: float, noise: float, loss: float = 0.0
) -> np.ndarray:
    """Arrival at the far end: impairment exit + propagation + queueing noise.

    On a FIFO path a packet cannot overtake the one before it. ``loss`` is the
    path's own background loss (independent), recorded in ``outcome.reason``.
    """
    arrival = outcome.depart + base + rng.exponential(noise, outcome.depart.size)
    if loss > 0:
        background = (rng.random(arrival.size) < loss) & ~np.isnan(arrival)
        arrival[background] = np.nan
        outcome.reason[background] = DropReason.RANDOM
    if outcome.fifo:
        ok = ~np.isnan(arrival)
        arrival[ok] = np.maximum.accumulate(arrival[ok])
    return arrival


def _stamp(body: np.ndarray, sizes: np.ndarray, headers: np.ndarray) -> np.ndarray:
    """Write fixed-length ``headers`` (n, h) at the start of each payload in ``body``."""
    starts = np.cumsum(sizes) - sizes
    h = headers.shape[1]
    body[(starts[:, None] + np.arange(h)[None, :]).ravel()] = headers.ravel()
    return body


def _payloads(rng: np.random.Generator, flow: MediaFlow, sched: MediaSchedule, voice: bool) -> np.ndarray:
    """Every datagram's bytes, headers still to write: G.711 frames carry a
    speech-like signal (:mod:`callscope.synth.voice`) when ``voice``, Opus
    frames a TOC byte, everything else random bytes (what an encrypted or
    unsimulated codec looks like)."""
    n = len(sched)
    header = flow.header
    size = (sched.payload + header).astype(np.int32)
    body = random_bytes(rng, int(size.sum()))
    encode = G711_ENCODERS.get(flow.codec.name)
    if voice and encode is not None and not flow.opaque and n:
        # One G.711 octet per sample: the frames tile the signal back to back.
        samples = encode(speech_like(rng, int(sched.payload.sum()), VOICE_PITCH_HZ[flow.direction]))
        starts = np.cumsum(size) - size + header
        first = np.cumsum(sched.payload) - sched.payload
        body[np.repeat(starts - first, sched.payload) + np.arange(samples.size)] = samples
    if flow.codec.name == "opus" and not flow.opaque and n:
        # RFC 6716 §3.1: a TOC byte (code 0, one frame, mono) naming the SILK wideband
        # configuration of the frame's duration; the frame itself stays random bytes.
        toc = np.array([OPUS_SILK_WB_CONFIG[int(p)] << 3 for p in sched.ptime_ms], np.uint8)
        body[np.cumsum(size) - size + header] = toc
    return body


def media_part(
    rng: np.random.Generator,
    flow: MediaFlow,
    sched: MediaSchedule,
    arrival: np.ndarray,
    drop: np.ndarray,
    voice: bool = True,
) -> Part:
    """One direction's media datagrams; RTP headers per RFC 3550 §5.1."""
    n = len(sched)
    size = (sched.payload + flow.header).astype(np.int32)
    body = _payloads(rng, flow, sched, voice)
    seq = flow.seq0 + np.arange(n, dtype=np.int64)
    ts = flow.ts0 + sched.ts_offset
    if not flow.opaque:
        marker = np.zeros(n, bool)
        marker[:1] = True  # RFC 3551 §4.1: first packet of a talkspurt
        pt = np.full(n, flow.codec.payload_type, np.uint8)
        _stamp(body, size, wire.rtp_headers(seq, ts, np.full(n, flow.ssrc, np.uint32), pt, marker))
    d = flow.direction
    return Part(
        kind=Kind.OPAQUE if flow.opaque else Kind.RTP, stream=d, direction=d,
        send_time=sched.time, arrival_time=arrival, size=size, drop=drop,
        src=flow.src, dst=flow.dst, sport=flow.sport, dport=flow.dport, data=body,
        seq=None if flow.opaque else seq, rtp_ts=None if flow.opaque else ts,
    )


def loss_facts(arrivals: list[np.ndarray]) -> dict[str, float]:
    """Fraction of each direction's media lost, whatever the cause."""
    return {
        f"loss_fraction_{name.replace('->', '_to_')}": float(np.isnan(arr).mean()) if arr.size else 0.0
        for name, arr in zip(DIRECTIONS, arrivals, strict=True)
    }


def downshift_facts(shift: Downshift | None, scheds: list[MediaSchedule], header: int) -> dict[str, float]:
    """Packet rate and payload byte rate before and after a codec downshift, as sent."""
    if shift is None:
        return {}
    sched = scheds[shift.direction]
    after = sched.adapted
    facts = {}
    for name, part in (("before", ~after), ("after", after)):
        if np.count_nonzero(part) < 2:
            continue
        span = np.ptp(sched.time[part]) + sched.ptime_ms[part][-1] / 1e3
        facts[f"pps_{name}"] = float(np.count_nonzero(part) / span)
        facts[f"rate_Bps_{name}"] = float((sched.payload[part] + header).sum() / span)
    return facts
