"""RTP sequence numbers: extension, loss, duplicates, reordering, restarts.

Everything here works on the per-packet ``seq`` (uint16) and ``ts`` (uint32)
columns of one stream in capture order, with numpy only.

Definitions (RFC 3550 §6.4.1 and Appendix A.1, A.3):

- *Extended sequence number*: the 16-bit sequence number unwrapped to an
  integer that keeps counting past 65535 ("cycles"). Each step is taken as the
  signed 16-bit difference to the previous packet, which is the wrap rule of
  Appendix A.1 (a difference below 2^15 is forward motion) applied pairwise.
- *Restart*: Appendix A.1 treats a jump of more than ``MAX_DROPOUT`` forward
  or ``MAX_MISORDER`` backward as a possible sender restart, confirmed when
  the next packet continues from the new number. A restart is not loss: the
  segment after it is re-based to continue right after the highest number seen
  so far. A forward jump whose RTP timestamp advanced by as much as the
  skipped packets would have is a real gap (loss), not a restart.
- *Stray*: a packet whose number jumps away and is not confirmed by the next
  packet (Appendix A.1 discards it). It is counted as received but takes no
  part in the expected range. A packet jumping back more than
  ``MAX_MISORDER`` is kept as a very late packet (or duplicate) when its
  number falls inside the range already seen, and is a stray otherwise.
- *Duplicate*: a second or later copy of an extended number already received.
- *Reordered*: a first copy arriving after a packet with a higher extended
  number (late, out of order). Reordering is not loss.
- *Missing*: extended numbers inside the expected range never received at
  all: the loss that duplicates cannot hide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEQ_MOD = 1 << 16  # RTP sequence numbers are 16 bits (RFC 3550 §5.1)
MAX_DROPOUT = 3000  # RFC 3550 Appendix A.1
MAX_MISORDER = 100  # RFC 3550 Appendix A.1
TS_MOD = 1 << 32  # RTP timestamps are 32 bits (RFC 3550 §5.1)

_MAX_PASSES = 8  # stray-removal passes; a real stream needs one or two

#: A forward jump counts as a loss gap (not a restart) when the timestamp
#: advanced by this fraction of the nominal advance or more (and at most its
#: inverse): a margin for senders that skip timestamps during silence.
_TS_GAP_TOLERANCE = 0.5


@dataclass(frozen=True)
class SequenceAnalysis:
    """Sequence accounting of one stream.

    Per received packet (capture order)
        ``ext_seq`` (int64, re-based across restarts), ``duplicate``,
        ``reordered``, ``stray`` (bool).
    Over the expected range of extended numbers ``base .. base + received.size - 1``
        ``received`` (bool, one slot per number), ``lost_ext`` (int64, the
        numbers never received) and ``lost_time`` (float64, seconds: when each
        lost packet would have arrived, interpolated from its received
        neighbours).
    Over the distinct numbers received in range, in sequence order
        ``first_ext`` (int64, the numbers) and ``first_time`` (float64,
        seconds: arrival of each one's first copy).
    Counts
        ``packets``, ``unique`` (distinct numbers received in range),
        ``expected_range`` (slots in the range), ``missing``,
        ``duplicates``, ``reordered_count``, ``strays``; ``restarts`` holds
        the packet indices where a restart began.
    """

    ext_seq: np.ndarray
    duplicate: np.ndarray
    reordered: np.ndarray
    stray: np.ndarray
    restarts: np.ndarray
    base: int
    received: np.ndarray
    lost_ext: np.ndarray
    lost_time: np.ndarray
    first_ext: np.ndarray
    first_time: np.ndarray

    @property
    def packets(self) -> int:
        return int(self.ext_seq.size)

    @property
    def expected_range(self) -> int:
        return int(self.received.size)

    @property
    def unique(self) -> int:
        return int(np.count_nonzero(self.received))

    @property
    def missing(self) -> int:
        return int(self.lost_ext.size)

    @property
    def duplicates(self) -> int:
        return int(np.count_nonzero(self.duplicate))

    @property
    def reordered_count(self) -> int:
        return int(np.count_nonzero(self.reordered))

    @property
    def strays(self) -> int:
        return int(np.count_nonzero(self.stray))


def signed_diff16(seq: np.ndarray) -> np.ndarray:
    """Signed 16-bit differences ``seq[i] - seq[i-1]`` (length ``n - 1``).

    The wrap rule of RFC 3550 Appendix A.1: 65535 -> 0 is +1, 0 -> 65535 is -1.
    """
    return _signed_diff(seq, np.uint16, np.int16, SEQ_MOD)


def signed_diff32(ts: np.ndarray) -> np.ndarray:
    """Signed 32-bit differences of RTP timestamps (wrap at 2^32, RFC 3550 §5.1)."""
    return _signed_diff(ts, np.uint32, np.int32, TS_MOD)


def _signed_diff(x: np.ndarray, unsigned, signed, mod: int) -> np.ndarray:
    """Differences taken modulo ``mod`` into ``-mod/2 .. mod/2 - 1`` (int64).

    Integers are differenced in the ``unsigned`` type of that width, whose
    subtraction wraps modulo ``mod``, and read back as ``signed``: the same
    value as ``(d + mod/2) % mod - mod/2`` with two passes instead of five.
    """
    a = np.asarray(x)
    if a.dtype.kind in "iu":
        return np.diff(a.astype(unsigned, copy=False)).view(signed).astype(np.int64)
    d: np.ndarray = np.diff(a.astype(np.int64))  # numpy's stubs type an int64 diff as timedelta64
    return (d + mod // 2) % mod - mod // 2


def extend_timestamps(ts: np.ndarray) -> np.ndarray:
    """RTP timestamps unwrapped past 2^32, relative to the first (int64, first = its own value)."""
    t = np.asarray(ts)
    if t.size == 0:
        return np.zeros(0, np.int64)
    out = np.empty(t.size, np.int64)
    out[0] = int(t[0])
    np.cumsum(signed_diff32(t), out=out[1:])
    out[1:] += int(t[0])
    return out


def _nominal_ts_per_seq(d_seq: np.ndarray, d_ts: np.ndarray) -> float:
    """Median timestamp advance of one sequence step (0 when unknown)."""
    step = d_ts[(d_seq == 1) & (d_ts > 0)]
    return float(np.median(step)) if step.size else 0.0


def _classify_jumps(
    d_seq: np.ndarray, ts: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Restart, stray and far-back flags per packet from the pairwise steps (RFC 3550 A.1).

    Far-back packets jumped back more than ``MAX_MISORDER`` without the next
    packet confirming a restart: late packets or strays, told apart once the
    range is known. Returns three bool arrays of length ``d_seq.size + 1``,
    or None when no step jumps at all (the usual case). ``ts`` (the same
    packets' RTP timestamps) tells a long forward gap from a restart.
    """
    n = d_seq.size + 1
    # d < -MAX_MISORDER or d > MAX_DROPOUT, as one unsigned comparison
    outside = (d_seq + MAX_MISORDER).view(np.uint64) > MAX_DROPOUT + MAX_MISORDER
    jump = np.flatnonzero(outside) + 1
    if jump.size == 0:
        return None
    restart = np.zeros(n, bool)
    stray = np.zeros(n, bool)
    far_back = np.zeros(n, bool)
    nxt = np.zeros(n, np.int64)
    nxt[:-1] = d_seq  # step from packet i to packet i + 1
    continues = (nxt[jump] >= 1) & (nxt[jump] <= MAX_MISORDER)
    is_gap = np.zeros(jump.size, bool)
    if ts is not None:
        d_ts = signed_diff32(ts)
        per = _nominal_ts_per_seq(d_seq, d_ts)
        if per > 0:
            want = d_seq[jump - 1] * per
            got = d_ts[jump - 1].astype(np.float64)
            fwd = d_seq[jump - 1] > 0
            is_gap = fwd & (got >= want * _TS_GAP_TOLERANCE) & (got <= want / _TS_GAP_TOLERANCE)
    back = (d_seq[jump - 1] < 0) & ~continues
    restart[jump[~is_gap & continues]] = True
    stray[jump[~is_gap & ~continues & ~back]] = True
    far_back[jump[back]] = True
    return restart, stray, far_back


def analyze_sequence(
    seq: np.ndarray, time: np.ndarray, ts: np.ndarray | None = None
) -> SequenceAnalysis:
    """Extended sequence numbers and loss / duplicate / reorder accounting.

    Parameters
    ----------
    seq : uint16 array
        RTP sequence numbers in capture order.
    time : float64 array
        Arrival times in seconds (used to place lost packets in time).
    ts : uint32 array, optional
        RTP timestamps; lets a long forward jump be told apart from a restart.

    Returns
    -------
    SequenceAnalysis

    References
    ----------
    RFC 3550 §6.4.1 (cumulative lost, extended highest sequence number),
    Appendix A.1 (wrap, MAX_DROPOUT / MAX_MISORDER, restart), Appendix A.3
    (expected = highest - base + 1).

    Examples
    --------
    >>> a = analyze_sequence(np.array([65534, 65535, 1, 1], np.uint16), np.arange(4) * 0.02)
    >>> a.ext_seq.tolist(), a.missing, a.duplicates
    ([65534, 65535, 65537, 65537], 1, 1)
    """
    seq = np.asarray(seq)
    time = np.asarray(time, dtype=np.float64)
    n = seq.size
    if n == 0:
        z = np.zeros(0, np.int64)
        zb = np.zeros(0, bool)
        return SequenceAnalysis(z, zb, zb, zb, z, 0, zb, z, np.zeros(0), z, np.zeros(0))
    # Unwrap over the non-stray packets only, so a stray cannot shift the rest.
    # Removing strays can expose new jumps between the remaining packets (a
    # flow of garbage numbers), so classify again until nothing changes.
    # ``keep`` (indices of the non-stray packets) stays None while that is
    # every packet, the usual case, which then needs no gathers or scatters.
    stray = np.zeros(n, bool)
    keep = None
    seq_k = seq
    for _ in range(_MAX_PASSES):
        d_seq = signed_diff16(seq_k)
        jumps = _classify_jumps(d_seq, None if ts is None else ts if keep is None else ts[keep])
        restart_k = None if jumps is None else jumps[0]
        ext_keep = _unwrap(seq_k, restart_k, d_seq)
        if jumps is None:
            break
        bad = jumps[1].copy()
        far_back_k = jumps[2]
        if far_back_k.any():
            # A far-back packet below everything seen before it is a stray too.
            prior_min = np.minimum.accumulate(np.concatenate([[ext_keep[0]], ext_keep[:-1]]))
            bad |= far_back_k & (ext_keep < prior_min)
        bad[0] = False
        if not bad.any():
            break
        idx = np.arange(n) if keep is None else keep
        stray[idx[bad]] = True
        keep = idx[~bad]
        seq_k = seq[keep]
    else:  # out of passes: take the last remaining packets as they are
        d_seq = signed_diff16(seq_k)
        jumps = _classify_jumps(d_seq, None)
        restart_k = None if jumps is None else jumps[0]
        ext_keep = _unwrap(seq_k, restart_k, d_seq)
    if restart_k is None:
        restarts = np.zeros(0, np.int64)
    else:
        restart = restart_k if keep is None else _scatter(restart_k, keep, n, False)
        restarts = np.flatnonzero(restart).astype(np.int64)

        # Re-base each segment after a restart to continue after the highest so far.
        seg_start = np.flatnonzero(restart_k)
        if seg_start.size:
            seg_start = np.concatenate([[0], seg_start])
            seg_min = np.minimum.reduceat(ext_keep, seg_start)
            seg_max = np.maximum.reduceat(ext_keep, seg_start)
            offset = np.zeros(seg_start.size, np.int64)
            for k in range(1, seg_start.size):  # one iteration per restart
                prev_hi = seg_max[k - 1] + offset[k - 1]
                offset[k] = prev_hi + 1 - seg_min[k]
            seg_len = np.diff(np.concatenate([seg_start, [ext_keep.size]]))
            ext_keep += np.repeat(offset, seg_len)

    if keep is None:
        ext = ext_keep
    else:  # strays keep their own unwrapped number, outside the accounting
        ext = np.empty(n, np.int64)
        ext[keep] = ext_keep
        prev = np.maximum.accumulate(np.where(~stray, np.arange(n), 0))
        ext[stray] = ext[prev[stray]] + (
            (seq[stray].astype(np.int64) - seq[prev[stray]].astype(np.int64) + SEQ_MOD // 2)
            % SEQ_MOD
            - SEQ_MOD // 2
        )

    # Duplicates: every copy after the first of the same extended number.
    m = ext_keep.size
    order = np.argsort(ext_keep, kind="stable")
    sorted_ext = ext_keep[order]
    first_of_run = np.empty(m, bool)
    first_of_run[0] = True
    np.not_equal(sorted_ext[1:], sorted_ext[:-1], out=first_of_run[1:])
    any_duplicate = not first_of_run.all()
    if any_duplicate:
        dup_keep = np.empty(m, bool)
        dup_keep[order] = ~first_of_run
        first = order[first_of_run]
        uniq = sorted_ext[first_of_run]
    else:
        dup_keep = np.zeros(m, bool)
        first = order
        uniq = sorted_ext

    # Reordered: a first copy below the highest number received before it.
    run_max = np.maximum.accumulate(ext_keep)
    late = np.empty(m, bool)
    late[0] = False
    np.less(ext_keep[1:], run_max[:-1], out=late[1:])
    if any_duplicate:
        late &= ~dup_keep

    base = int(sorted_ext[0])
    received = np.zeros(int(sorted_ext[-1]) - base + 1, bool)
    received[uniq - base] = True
    lost_ext = np.flatnonzero(~received)
    lost_ext += base
    t_first = time[first if keep is None else keep[first]]
    lost_time = np.interp(lost_ext, uniq, t_first) if lost_ext.size else np.zeros(0)
    return SequenceAnalysis(
        ext_seq=ext,
        duplicate=dup_keep if keep is None else _scatter(dup_keep, keep, n, False),
        reordered=late if keep is None else _scatter(late, keep, n, False),
        stray=stray,
        restarts=restarts,
        base=base,
        received=received,
        lost_ext=lost_ext,
        lost_time=np.asarray(lost_time, np.float64),
        first_ext=uniq,
        first_time=t_first,
    )


def _scatter(values: np.ndarray, index: np.ndarray, n: int, fill) -> np.ndarray:
    """``values`` placed at ``index`` in an array of ``n`` ``fill``s."""
    out = np.full(n, fill, values.dtype)
    out[index] = values
    return out


def _unwrap(seq: np.ndarray, restart: np.ndarray | None, d: np.ndarray) -> np.ndarray:
    """Extended numbers by summing the signed 16-bit steps ``d`` (changed in place);
    each restart segment (none when ``restart`` is None) starts at 0."""
    if restart is not None:
        d[restart[1:]] = 0
    ext = np.empty(seq.size, np.int64)
    ext[0] = int(seq[0])
    np.cumsum(d, out=ext[1:])
    ext[1:] += int(seq[0])
    return ext
