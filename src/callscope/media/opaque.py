"""Opaque media: encrypted UDP flows with no RTP header whose cadence is voice.

Messenger calls (Telegram, WhatsApp, Zoom P2P, ...) often wrap their media in
their own encrypted framing. With no sequence number or timestamp in the
clear, such a flow is recognised by how voice is sent: one small packet per
codec frame (10-60 ms, so 10-100 packets per second), sizes well under the
MTU, for seconds on end, every payload different (ciphertext), unlike the
repeated payloads of keep-alives and connectivity probes. Flows of other protocols that a capture commonly
holds (name resolution, discovery, time, management) are never media.

The cadence shows either in the gaps between packets (most of them near the
frame interval) or, when network jitter scatters the gaps, in the packet
count per second, which jitter only moves between neighbouring seconds.
Packets are small except for a constant-bitrate codec at long frames
(G.711 at 40-60 ms: 320-480 bytes of payload), whose packets all have one size.
"""

from __future__ import annotations

import numpy as np

from callscope.media import demux
from callscope.media.columns import TRANSPORT_UDP, TRANSPORT_ZOOM, MediaColumns

MIN_PACKETS = 50  # at least a couple of seconds of packets
MIN_DURATION_S = 3.0  # "lasting several seconds"
MAX_MEDIAN_SIZE = 300  # bytes: voice frames, not bulk transfer
#: G.711 sends 8 bits per sample at 8 kHz (RFC 3551 §4.5.14): 480 bytes per
#: 60 ms frame, plus up to 80 bytes of the messenger's own header and tag.
MAX_CBR_MEDIAN_SIZE = 560
CBR_SIZE_SLACK = 16  # bytes: one cipher block of padding
MIN_CBR_FRACTION = 0.5  # packets of the constant-bitrate size
RATE_WINDOW_S = 1.0  # packets are counted per second
RATE_BAND = 0.25  # a second "on cadence" holds the median count within this fraction
MIN_STEADY_WINDOWS = 0.75  # three seconds in four on cadence
MIN_PACKET_INTERVAL_S = 0.010  # 100 pps, the fastest voice cadence (10 ms frames)
MAX_PACKET_INTERVAL_S = 0.100  # 10 pps, the slowest (e.g. bundled 60-100 ms frames)
STEADY_BAND = (0.5, 2.0)  # an interval "on cadence" lies within this factor of the median
MIN_STEADY_FRACTION = 0.5  # half the intervals on cadence
MIN_DISTINCT_FRACTION = 0.5  # encrypted frames differ; keep-alives and probes repeat

#: Well-known ports of protocols that are never a call's media: DNS (53),
#: DHCP (67, 68), NTP (123), NetBIOS (137, 138), SNMP (161, 162), syslog
#: (514), SSDP (1900), WS-Discovery (3702), NAT-PMP/PCP (5350, 5351),
#: mDNS (5353), LLMNR (5355).
NEVER_MEDIA_PORTS = frozenset({53, 67, 68, 123, 137, 138, 161, 162, 514, 1900, 3702, 5350, 5351, 5353, 5355})

#: RFC 7983 classes whose packets may be opaque media: not a control protocol
#: recognised by its structure (STUN, DTLS, SIP).
_MEDIA_CLASSES = (demux.OTHER, demux.RTP, demux.RTCP, demux.ZRTP, demux.TURN_CHANNEL)


def find_opaque(cols: MediaColumns, flows, exclude_conversations: set[int]) -> list[tuple[int, np.ndarray]]:
    """Directed flows that carry opaque voice, each with its packets' row indices.

    Parameters
    ----------
    cols : MediaColumns
        The reduced capture.
    flows
        The flow table helper of :mod:`callscope.media.discover` (endpoints,
        conversation ids).
    exclude_conversations : set of int
        Conversations already holding RTP streams.

    Returns
    -------
    list of (flow index, row indices in capture order)
    """
    n_flows = len(flows.keys)
    if n_flows == 0:
        return []
    # Zoom-looking rows stay candidates: a confirmed Zoom stream already
    # excludes its conversation, an unconfirmed one was a coincidence.
    # Flows that could still be opaque media, decided per flow before any
    # per-row work: on a capture that is all RTP, no row is touched at all.
    never = np.array(sorted(NEVER_MEDIA_PORTS), dtype=np.int64)
    eligible = ~np.isin(flows.conversation, np.array(sorted(exclude_conversations), dtype=np.int64))
    eligible &= ~np.isin(flows.sport, never) & ~np.isin(flows.dport, never)
    if not eligible.any():
        return []
    media_like = np.isin(cols.transport, (TRANSPORT_UDP, TRANSPORT_ZOOM)) & np.isin(cols.demux, _MEDIA_CLASSES)
    media_like &= eligible[cols.flow]
    rows = np.flatnonzero(media_like)
    rows = rows[np.argsort(cols.flow[rows], kind="stable")]  # by flow, capture order within
    counts = np.bincount(cols.flow[rows], minlength=n_flows)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    found: dict[int, np.ndarray] = {}
    doubtful: list[int] = []
    for flow in np.flatnonzero(counts >= MIN_PACKETS):
        r = rows[bounds[flow] : bounds[flow + 1]]
        if np.unique(cols.head_hash[r]).size / r.size < MIN_DISTINCT_FRACTION:
            continue
        if _voice_cadence(cols.time_ns[r], cols.size[r]):
            found[int(flow)] = r
        else:
            doubtful.append(int(flow))
    # The return direction of a confirmed voice flow: a queue with bursty
    # cross traffic can scatter its arrivals past both cadence tests (lab:
    # tbf 321 kbit/s behind 425 kbit/s bursts, 41 % of gaps and 58 % of
    # seconds on cadence), yet voice-sized packets at a voice rate on the
    # reverse 5-tuple of a call are that call's other party.
    for f in doubtful:
        if int(flows.reverse[f]) in found:
            r = rows[bounds[f] : bounds[f + 1]]
            if _voice_rate_on_average(cols.time_ns[r], cols.size[r]):
                found[f] = r
    return sorted(found.items())


def _voice_like(time_ns: np.ndarray, size: np.ndarray) -> bool:
    """Voice-sized packets lasting several seconds."""
    return (int(time_ns[-1]) - int(time_ns[0])) / 1e9 >= MIN_DURATION_S and _voice_sized(size)


def _voice_rate(packets_per_s: float) -> bool:
    """A packet rate voice is sent at: 10-100 per second (10 % slack on the fastest)."""
    return 1.0 / MAX_PACKET_INTERVAL_S <= packets_per_s <= 1.0 / (MIN_PACKET_INTERVAL_S * 0.9)


def _voice_cadence(time_ns: np.ndarray, size: np.ndarray) -> bool:
    """Voice-sized packets at 10-100 per second, steadily, for several seconds."""
    if not _voice_like(time_ns, size):
        return False
    t = time_ns / 1e9
    return _steady_intervals(t) or _steady_rate(t)


def _voice_rate_on_average(time_ns: np.ndarray, size: np.ndarray) -> bool:
    """Voice-sized packets for several seconds at a voice rate on average."""
    if not _voice_like(time_ns, size):
        return False
    return _voice_rate((time_ns.size - 1) / ((int(time_ns[-1]) - int(time_ns[0])) / 1e9))


def _voice_sized(size: np.ndarray) -> bool:
    """Small packets, or the one size of a constant-bitrate codec at long frames."""
    med = float(np.median(size))
    if med <= MAX_MEDIAN_SIZE:
        return True
    same = np.mean(np.abs(size - med) <= CBR_SIZE_SLACK)
    return med <= MAX_CBR_MEDIAN_SIZE and bool(same >= MIN_CBR_FRACTION)


def _steady_intervals(t: np.ndarray) -> bool:
    """Most gaps between packets near their median, a voice frame interval."""
    dt = np.diff(t)
    med = float(np.median(dt))
    if med <= 0 or not _voice_rate(1.0 / med):
        return False
    steady = np.mean((dt >= STEADY_BAND[0] * med) & (dt <= STEADY_BAND[1] * med))
    return bool(steady >= MIN_STEADY_FRACTION)


def _steady_rate(t: np.ndarray) -> bool:
    """Most whole seconds hold about the median count of packets, a voice rate."""
    window = ((t - t[0]) // RATE_WINDOW_S).astype(np.int64)
    whole = int(window[-1])  # the last window is partial
    if whole > 2 * t.size:
        # Most seconds are empty (the median count is 0): not a voice rate.
        # Said without an array of one count per second of a span that a
        # clock jump can make years long.
        return False
    counts = np.bincount(window, minlength=whole + 1)[:whole]
    if counts.size == 0:
        return False
    med = float(np.median(counts)) / RATE_WINDOW_S
    if not _voice_rate(med):
        return False
    steady = np.mean(np.abs(counts / RATE_WINDOW_S - med) <= RATE_BAND * med)
    return bool(steady >= MIN_STEADY_WINDOWS)
