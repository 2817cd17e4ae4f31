"""Both ends of one simulated call: two captures with their own clocks, across a NAT.

Endpoint A (the caller) sits behind a NAT: its capture shows its private
address, while B's capture shows the NAT's public address and a public port
for each of A's ports (a port-restricted NAT does not keep RTP's even/odd
pairing). NAT rewrites headers, never payloads — SIP and SDP still carry A's
private address, as they do without an ALG. B's capture clock is off by
``clock_offset_s`` and runs fast by ``clock_drift_ppm``::

    t_B = t + clock_offset_s + clock_drift_ppm * 1e-6 * t

where ``t`` is the true time since the call's first packet (A's capture clock
is true). Each capture holds what its endpoint sent (when sent) and received
(when received), so a packet lost in between is in the sender's capture only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from callscope.capture.files import truth_path
from callscope.capture.writer import TOS_EF, ipv4_to_int, write_pcap
from callscope.errors import CallscopeError
from callscope.synth.call import SimulatedCall
from callscope.synth.output import truth_document
from callscope.synth.packets import Kind
from callscope.synth.plan import ADDRESS_A, ADDRESS_B
from callscope.synth.scenarios import A_TO_B, B_TO_A

NAT_PUBLIC = "203.0.113.45"  # RFC 5737 documentation range
NAT_PORT_RANGE = (1024, 65535)


@dataclass(frozen=True)
class TwoPointTruth:
    """How the two captures of a call relate: clocks and NAT mapping (true values)."""

    clock_offset_s: float
    clock_drift_ppm: float
    nat_private: str
    nat_public: str
    port_map: tuple[tuple[int, int], ...]  # (private port, public port) of A


def draw_two_point(
    rng: np.random.Generator,
    call: SimulatedCall,
    clock_offset_s: float | None = None,
    clock_drift_ppm: float | None = None,
) -> TwoPointTruth:
    """Draw B's clock error (offset 0.5-30 s either way, drift 10-80 ppm either way) and A's NAT ports."""
    sign = rng.choice([-1.0, 1.0], 2)
    offset = float(sign[0] * rng.uniform(0.5, 30.0))
    drift = float(sign[1] * rng.uniform(10.0, 80.0))
    a = ipv4_to_int(ADDRESS_A)
    ports = np.unique(np.concatenate([call.sport[call.src == a], call.dport[call.dst == a]]))
    public = rng.choice(np.arange(*NAT_PORT_RANGE), ports.size, replace=False)
    return TwoPointTruth(
        clock_offset_s=round(offset if clock_offset_s is None else clock_offset_s, 6),
        clock_drift_ppm=round(drift if clock_drift_ppm is None else clock_drift_ppm, 3),
        nat_private=ADDRESS_A,
        nat_public=NAT_PUBLIC,
        port_map=tuple(zip(ports.tolist(), public.tolist(), strict=True)),
    )


def _capture_rows(call: SimulatedCall, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows endpoint ``end`` (0: A, 1: B) captured, in time order, and their true times."""
    host = ipv4_to_int(ADDRESS_A if end == 0 else ADDRESS_B)
    own = (call.src == host) & (call.direction == (A_TO_B if end == 0 else B_TO_A))
    received = (call.dst == host) & ~np.isnan(call.arrival_time)
    time = np.where(own, call.send_time, call.arrival_time)
    rows = np.flatnonzero(own | received)
    rows = rows[np.argsort(time[rows], kind="stable")]
    return rows, time[rows]


def _lost_ids(call: SimulatedCall, direction: int) -> list[int]:
    """Lost media packets of one direction: RTP extended seq, or index in the flow when opaque."""
    media = np.flatnonzero(np.isin(call.kind, (Kind.RTP, Kind.OPAQUE)) & (call.direction == direction))
    lost = call.lost[media]
    if call.opaque:
        return np.flatnonzero(lost).tolist()
    return call.seq[media][lost].tolist()


def write_two_point(
    call: SimulatedCall,
    path: str | os.PathLike[str],
    *,
    seed: int | None = None,
    clock_offset_s: float | None = None,
    clock_drift_ppm: float | None = None,
    nanosecond: bool = False,
) -> tuple[Path, Path]:
    """Write A's and B's captures of ``call``: ``NAME.a.pcap`` and ``NAME.b.pcap``.

    Each gets a sidecar (``NAME.a.truth.json``, ``NAME.b.truth.json``) holding
    the call's truth plus a ``two_point`` section: this capture's end, the
    other capture's file name, the clock offset and drift of B relative to A,
    the NAT mapping, and the lost media packets per direction (RTP extended
    sequence numbers; for opaque media, indices in the flow).

    Parameters
    ----------
    call : SimulatedCall
        A call from :func:`callscope.synth.simulate` (any vantage: both ends are derived from its
        per-packet truth).
    path : path-like
        ``NAME.pcap``: the two files are named after it.
    seed : int, optional
        Seed for the clocks and NAT ports (default: the call's seed).
    clock_offset_s, clock_drift_ppm : float, optional
        Set B's clock error instead of drawing it.
    nanosecond : bool
        Nanosecond timestamps.

    Returns
    -------
    tuple of Path
        A's capture and B's capture.
    """
    if not call.scenario.has_media:
        raise CallscopeError(f"{call.label}: no media reaches B, so there is no second capture")
    base = Path(path)
    stem = base.name[: -len(base.suffix)] if base.suffix else base.name
    paths = (base.with_name(f"{stem}.a.pcap"), base.with_name(f"{stem}.b.pcap"))
    rng = np.random.default_rng(np.random.SeedSequence([call.seed if seed is None else seed, 2]))
    tp = draw_two_point(rng, call, clock_offset_s, clock_drift_ppm)
    private, public = ipv4_to_int(tp.nat_private), ipv4_to_int(tp.nat_public)
    port_of = dict(tp.port_map)
    drift = tp.clock_drift_ppm * 1e-6
    lost = {"a->b": _lost_ids(call, A_TO_B), "b->a": _lost_ids(call, B_TO_A)}
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for end, out in enumerate(paths):
        rows, t = _capture_rows(call, end)
        src, dst = call.src[rows].copy(), call.dst[rows].copy()
        sport, dport = call.sport[rows].copy(), call.dport[rows].copy()
        if end == 1:
            t = t + tp.clock_offset_s + drift * t
            from_a, to_a = src == private, dst == private
            src[from_a], dst[to_a] = public, public
            sport[from_a] = [port_of[p] for p in sport[from_a].tolist()]
            dport[to_a] = [port_of[p] for p in dport[to_a].tolist()]
        media = np.isin(call.kind[rows], (Kind.RTP, Kind.RTCP, Kind.OPAQUE))
        write_pcap(
            out, call.epoch_ns + np.rint(t * 1e9).astype(np.int64), src, dst, sport, dport,
            call.data, call.payload_start[rows], call.size[rows], nanosecond=nanosecond,
            ip_id=call.ip_id[rows], tos=np.where(media, TOS_EF, 0).astype(np.uint8),
        )
        in_capture = np.zeros(len(call), bool)
        in_capture[rows] = True
        doc = truth_document(call, in_capture)
        doc["vantage"] = "a" if end == 0 else "b"
        doc["two_point"] = {
            "end": doc["vantage"],
            "other_capture": paths[1 - end].name,
            "clock_offset_s": tp.clock_offset_s,
            "clock_drift_ppm": tp.clock_drift_ppm,
            "clock_model": "t_b = t_a + clock_offset_s + clock_drift_ppm * 1e-6 * t_a, t_a since the first packet",
            "nat": {
                "private": tp.nat_private,
                "public": tp.nat_public,
                "ports": [{"private": a, "public": b} for a, b in tp.port_map],
            },
            "lost": lost,
            "lost_ids": "rtp extended sequence numbers" if not call.opaque else "packet index in the flow",
        }
        truth_path(out).write_text(json.dumps(doc, indent=1) + "\n")
    return paths
