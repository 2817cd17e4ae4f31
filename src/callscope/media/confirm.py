"""The rule that confirms RTP found without signalling (the heuristic).

A valid RTP header on one datagram (RFC 3550 §5.1) is weak evidence: random
bytes pass that test one time in four. So the candidates are grouped by path
and SSRC (one SSRC on one 5-tuple, or one TURN channel / relayed peer, is a
stream, as in Wireshark), and a group is RTP when consecutive packets agree:
the sequence number advances by a small step and the timestamp advances, not
faster than any audio/video clock, consistently with arrival time. Random
bytes almost never repeat an SSRC, so one-packet "streams" of encrypted
traffic never confirm.

Signalling (an SDP offer, or ``decode_as``) says where RTP should be; on
such a flow every valid header counts, unless the flow is mostly one-packet
"SSRC" groups (encrypted messenger payloads under an RTP offer), where a
group needs one confirming pair.

This module holds only the rule; :mod:`callscope.media.memory` keeps the
arrays it runs on small on large captures, :mod:`callscope.media.discover`
builds the streams.
"""

from __future__ import annotations

import numpy as np

from callscope.media import demux, rtp
from callscope.media.columns import MediaColumns
from callscope.media.memory import BLOCK

MAX_SEQ_STEP = 100  # a confirming pair may have lost at most 99 packets between them
MAX_CLOCK_RATE = 192_000  # Hz: no RTP clock runs faster (RFC 3551 §4.5 rates, 90 kHz video)
CLOCK_SLACK_S = 1.0  # timestamp may run ahead of arrival by this much (sender-side buffering)
MIN_CONFIRMING_PAIRS = 2  # consecutive consistent pairs that make a heuristic stream
#: One-packet "SSRC" groups on one flow from which its bytes are not RTP.
JUNK_SINGLETONS = 3
NS = 1_000_000_000


def rtp_candidates(cols: MediaColumns, not_rtp_rows: np.ndarray | None) -> np.ndarray:
    """Rows whose bytes may be RTP: demultiplexed as RTP (RFC 7983), a valid
    RTP header (RFC 3550 §5.1), not a marker + payload type that is RTCP's on a
    multiplexed port (RFC 5761 §4), and not given to another protocol by
    signalling (``not_rtp_rows``: UDPTL fax)."""
    pt_all = cols.b1 & 0x7F
    conflict = ((cols.b1 & 0x80) != 0) & (pt_all >= rtp.RTCP_CONFLICT_PT[0]) & (pt_all <= rtp.RTCP_CONFLICT_PT[1])
    is_cand = (cols.inner == demux.RTP) & cols.rtp_valid & ~conflict
    if not_rtp_rows is not None:
        is_cand &= ~not_rtp_rows
    return is_cand


def plausible_pairs(seq: np.ndarray, ts: np.ndarray, t_ns: np.ndarray) -> np.ndarray:
    """Whether each pair of consecutive rows looks like consecutive RTP packets.

    The sequence number advances by 1 to :data:`MAX_SEQ_STEP` and the
    timestamp by less than the fastest clock (:data:`MAX_CLOCK_RATE`) runs
    in the arrival interval plus :data:`CLOCK_SLACK_S`. Differences in the
    columns' own widths wrap modulo 2^16 / 2^32 (RFC 3550 §5.1). Computed
    block by block: no temporary spans every row.
    """
    good = np.empty(max(seq.size - 1, 0), bool)
    for a in range(0, good.size, BLOCK):
        b = min(a + BLOCK, good.size)
        limit = (t_ns[a + 1 : b + 1] - t_ns[a:b]) / NS
        np.maximum(limit, 0, out=limit)
        limit += CLOCK_SLACK_S
        limit *= MAX_CLOCK_RATE
        dseq = seq[a + 1 : b + 1] - seq[a:b]
        good[a:b] = ((ts[a + 1 : b + 1] - ts[a:b]) < limit) & (dseq >= 1) & (dseq <= MAX_SEQ_STEP)
    return good


def confirmed_groups(
    good: np.ndarray, starts: np.ndarray, bounds: np.ndarray, flow_ids: np.ndarray, flow_signalled: np.ndarray
) -> np.ndarray:
    """Which groups are RTP streams.

    Parameters
    ----------
    good : bool, one per pair of consecutive rows
        :func:`plausible_pairs` of the rows in group order (changed in place).
    starts : bool, one per row
        True where a group starts.
    bounds : int
        Row offsets of the groups, and the total at the end.
    flow_ids : int, one per group
        The flow of each group.
    flow_signalled : bool, one per flow
        Whether signalling named the flow as RTP.

    Returns
    -------
    bool, one per group
    """
    good &= ~starts[1:]
    # a pair confirms the group of its second row
    confirming = np.add.reduceat(np.concatenate([[False], good]), bounds[:-1], dtype=np.int64)
    signalled = flow_signalled[flow_ids]
    # Signalling says where RTP should be, not that every datagram there is
    # RTP: encrypted messenger payloads under an RTP offer parse as a new
    # "SSRC" in almost every packet. On a flow that is mostly such one-packet
    # groups, a signalled group needs a pair of packets that follow on.
    lengths = np.diff(bounds)
    singles = np.bincount(flow_ids, weights=(lengths == 1), minlength=flow_signalled.size)
    per_flow = np.bincount(flow_ids, minlength=flow_signalled.size)
    junk = (singles >= JUNK_SINGLETONS) & (2 * singles >= per_flow)
    return (signalled & (~junk[flow_ids] | (confirming >= 1))) | (confirming >= MIN_CONFIRMING_PAIRS)
