"""The fast paths of metrics give the masks' and the eager computation's results exactly."""

from __future__ import annotations

import numpy as np

from callscope.media.stream import MediaStream, PacketSeries
from callscope.metrics import jitterbuffer, loss_structure, measure, wireshark_rtp
from callscope.metrics.loss_structure import loss_runs
from callscope.metrics.measure import packet_metrics
from callscope.metrics.relative_delay import relative_delay
from callscope.metrics.sequence import analyze_sequence, extend_timestamps


def _impaired_stream(seed: int = 3, n: int = 3000) -> MediaStream:
    """G.711 with 3 % loss, late (reordered) packets, duplicates, a marker
    and an interleaved RFC 4733 event, whose timestamp does not advance."""
    rng = np.random.default_rng(seed)
    seq = np.arange(n)
    send = seq * 0.02
    arrive = 1.0 + send + rng.exponential(0.008, n)
    arrive[rng.choice(n, 40, replace=False)] += 0.09  # late: overtaken by later packets
    keep = rng.random(n) > 0.03
    seq, send, arrive = seq[keep], send[keep], arrive[keep]
    dup = rng.choice(seq.size, 15, replace=False)
    seq = np.concatenate([seq, seq[dup]])
    send = np.concatenate([send, send[dup]])
    arrive = np.concatenate([arrive, arrive[dup] + 0.001])
    order = np.argsort(arrive, kind="stable")
    seq, send, arrive = seq[order], send[order], arrive[order]
    m = seq.size
    pt = np.full(m, 8, np.uint8)
    pt[500:503] = 101  # telephone-event: no clock, no jitter, no delay
    marker = np.zeros(m, bool)
    marker[1200] = True
    ts = np.round(send * 8000).astype(np.int64)
    ts[500:503] = ts[500]
    return MediaStream(
        id="s1", kind="rtp", src="10.0.0.1", src_port=4000, dst="10.0.0.2", dst_port=5000,
        packets=PacketSeries(
            frame=np.arange(1, m + 1, dtype=np.int64),
            time=arrive,
            size=np.full(m, 172, np.int32),
            seq=((seq + 65000) % 65536).astype(np.uint16),  # wraps
            ts=(ts % (1 << 32)).astype(np.uint32),
            pt=pt,
            marker=marker,
        ),
        ssrc=0x1234, payload_type=8, codec="PCMA", clock_rate=8000, clock_source="static",
    )  # fmt: skip


def test_per_packet_arrays_are_computed_on_first_access_and_kept():
    s = _impaired_stream()
    m = measure(s)
    assert "per_packet" not in vars(m)  # nothing per packet held after measuring
    pp = m.per_packet
    assert m.per_packet is pp
    assert pp.time_s is s.packets.time  # the stream's own column, not a copy


def test_lazy_per_packet_arrays_equal_the_eager_computation():
    """What measure() used to build for every stream, from the same building blocks."""
    s = _impaired_stream()
    p = s.packets
    n = len(p)
    seqa = analyze_sequence(p.seq, p.time, p.ts)
    clock = wireshark_rtp.packet_clock_rates(p.pt, s.payload_type, s.clock_rate)
    ws = wireshark_rtp.analyze(p.time, p.seq, p.ts, p.pt, p.marker, clock, p.frame)
    segment = np.zeros(n, np.int64)
    if seqa.restarts.size:
        segment[seqa.restarts] = 1
        segment = np.cumsum(segment)
    delay = relative_delay(p.time, extend_timestamps(p.ts), clock, segment)
    jitter = np.where(clock > 0, ws.jitter_ms, np.nan)
    media = np.isfinite(delay.delay_ms) & ~seqa.duplicate
    spurt = np.asarray(p.marker, bool).copy()
    spurt[1:] |= ~np.isfinite(delay.delay_ms[:-1])
    jb = jitterbuffer.simulate(delay.delay_ms[media], spurt[media])
    late_fixed = np.zeros(n, bool)
    late_adaptive = np.zeros(n, bool)
    late_fixed[media] = jb.late_fixed
    late_adaptive[media] = jb.late_adaptive
    eager = {
        "ext_seq": seqa.ext_seq, "delta_ms": ws.delta_ms, "jitter_ms": jitter,
        "delay_ms": delay.delay_ms, "duplicate": seqa.duplicate, "reordered": seqa.reordered,
        "late_fixed": late_fixed, "late_adaptive": late_adaptive, "received": seqa.received,
        "lost_ext": seqa.lost_ext, "lost_time_s": seqa.lost_time,
    }  # fmt: skip

    m = measure(s)
    lazy = m.per_packet
    for name, want in eager.items():
        got = getattr(lazy, name)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), name
    assert lazy.slot_base == seqa.base
    assert packet_metrics(s).late_adaptive.tobytes() == late_adaptive.tobytes()
    # the scalars count what the arrays show
    assert m.duplicates == 15 == int(lazy.duplicate.sum())
    assert m.reordered == int(lazy.reordered.sum()) > 0
    assert m.missing == lazy.lost_ext.size > 0
    assert m.jb_late_adaptive == int(lazy.late_adaptive.sum())
    assert m.jb_late_fixed == int(lazy.late_fixed.sum())
    assert np.isnan(lazy.jitter_ms[500:503]).all() and np.isnan(lazy.delay_ms[500:503]).all()


def test_per_packet_of_opaque_media_is_its_inferred_slots():
    s = _impaired_stream()
    p = s.packets
    opaque = MediaStream(
        id="s2", kind="opaque", src="10.0.0.1", src_port=4000, dst="10.0.0.2", dst_port=5000,
        packets=PacketSeries(frame=p.frame, time=p.time, size=p.size),
    )  # fmt: skip
    m = measure(opaque)
    pp = m.per_packet
    assert np.isnan(pp.jitter_ms).all() and not pp.duplicate.any()
    assert pp.received.size == m.expected and int((~pp.received).sum()) == m.missing


def _transitions(src: np.ndarray, dst: np.ndarray) -> float:
    """P(dst at i | src at i - 1) counted over the masks."""
    if src.size < 2 or not src[:-1].any():
        return 0.0
    return float(np.count_nonzero(src[:-1] & dst[1:])) / np.count_nonzero(src[:-1])


def test_loss_structure_counted_from_lost_indices_equals_the_slot_masks():
    rng = np.random.default_rng(11)
    for _ in range(300):
        n = int(rng.integers(0, 300))
        received = rng.random(n) > rng.choice([0.0, 0.02, 0.2, 0.6])
        for _ in range(int(rng.integers(0, 3))):  # bursts, some at the ends
            i = int(rng.integers(0, max(n, 1)))
            received[i : i + int(rng.integers(1, 25))] = False
        s = loss_structure.loss_structure(received, 20.0)
        in_burst = np.zeros(n, bool)
        for first, last in s.burst_spans:
            in_burst[first : last + 1] = True
        lost = ~received
        assert s.bursts == len(s.burst_spans)
        burst_slots = int(in_burst.sum())
        assert s.burst_density == ((lost & in_burst).sum() / burst_slots if burst_slots else 0.0)
        gap_slots = n - burst_slots
        assert s.gap_density == ((lost & ~in_burst).sum() / gap_slots if gap_slots else 0.0)
        assert s.ge_p == _transitions(~in_burst, in_burst)
        assert s.ge_r == _transitions(in_burst, ~in_burst)
        assert s.gilbert_p == _transitions(received, lost)
        assert s.gilbert_q == _transitions(lost, received)
        runs = loss_runs(received).length
        assert s.run_histogram == (tuple(np.bincount(runs)[1:].tolist()) if runs.size else ())
        gaps = int(np.count_nonzero(np.diff(np.concatenate([[1], in_burst, [1]]).astype(int)) == -1))
        assert s.gap_duration_ms == (gap_slots / gaps * 20.0 if gaps else 0.0)
