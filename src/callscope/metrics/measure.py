"""``measure()``: every number of one stream, with its definition.

The scalar fields of :class:`StreamMetrics` are the JSON keys of a stream
(snake_case, units in the name). Per-packet arrays live in
:class:`PacketMetrics` (built from the stream when first asked for, see
:func:`packet_metrics`), per-window series in
:class:`~callscope.metrics.timeline.Timeline`, the E-model inputs in
:class:`~callscope.metrics.emodel.EModelInputs`.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass
from functools import cached_property

import numpy as np

from callscope._numerics.quantile import median, percentiles
from callscope.media.stream import MediaStream
from callscope.metrics import emodel, jitterbuffer, loss_structure, wireshark_rtp
from callscope.metrics.cadence import infer_slots
from callscope.metrics.relative_delay import DelayStats, relative_delay
from callscope.metrics.sequence import analyze_sequence, extend_timestamps
from callscope.metrics.timeline import Timeline, build_timeline


@dataclass(frozen=True)
class PacketMetrics:
    """Per-packet and per-slot arrays of one stream (not serialised to JSON).

    Per received packet, capture order
        ``time_s``, ``size``, ``ext_seq`` (extended sequence number; for
        opaque media the inferred slot index), ``delta_ms`` (Wireshark's
        delta: arrival minus the last in-time packet's arrival; NaN for the
        first), ``jitter_ms`` (running RFC 3550 jitter after the packet, NaN
        without a clock rate), ``delay_ms`` (relative one-way delay above the
        minimum, NaN without a clock), ``duplicate``, ``reordered``,
        ``late_fixed``, ``late_adaptive`` (discarded by the playout buffers).
    Per slot of the expected range ``slot_base ..``
        ``received`` (bool), and for the lost ones ``lost_ext`` (their
        numbers) and ``lost_time_s`` (when they would have arrived).
    """

    time_s: np.ndarray
    size: np.ndarray
    ext_seq: np.ndarray
    delta_ms: np.ndarray
    jitter_ms: np.ndarray
    delay_ms: np.ndarray
    duplicate: np.ndarray
    reordered: np.ndarray
    late_fixed: np.ndarray
    late_adaptive: np.ndarray
    slot_base: int
    received: np.ndarray
    lost_ext: np.ndarray
    lost_time_s: np.ndarray


@dataclass(frozen=True)
class StreamMetrics:
    """Every number callscope reports for one stream.

    Counting (RFC 3550 §6.4.1, Appendix A.3; Wireshark ``rtp,streams``)
        ``packets`` received (every copy); ``expected`` and ``lost`` exactly
        as Wireshark computes them (``lost = expected - packets``, negative
        after duplicates, see :mod:`callscope.metrics.wireshark_rtp`);
        ``missing``: sequence numbers never received at all, over the
        expected range with restarts removed (:mod:`callscope.metrics.sequence`);
        ``duplicates``; ``reordered`` (late first copies, not loss);
        ``sequence_restarts``; ``loss_fraction = missing / (missing +
        distinct numbers received)`` (= missing / expected without restarts
        or strays); ``loss_inferred``: True when loss comes from gaps in the
        cadence (opaque media, no sequence numbers).
    Timing (Wireshark's definitions, ms)
        ``delta_min_ms``, ``delta_mean_ms``, ``delta_max_ms``;
        ``jitter_mean_ms``, ``jitter_max_ms`` and ``jitter_p95_ms``
        (95th percentile of the running jitter), None without a clock rate.
    Delay (relative one-way, :mod:`callscope.metrics.relative_delay`)
        ``delay_p50_ms``, ``delay_p95_ms``, ``delay_max_ms``,
        ``delay_trend_ms_per_s``, ``clock_skew_ppm``.
    Loss structure (:mod:`callscope.metrics.loss_structure`)
        ``loss_runs`` (histogram: element k counts runs of k + 1 losses),
        RFC 3611 ``burst_density``, ``gap_density``, ``burst_duration_ms``,
        ``gap_duration_ms``; Gilbert-Elliott ``ge_p``, ``ge_r``,
        ``ge_loss_good``, ``ge_loss_bad``; ``burst_ratio`` (G.107 BurstR).
    Playout (:mod:`callscope.metrics.jitterbuffer`)
        ``jb_late_fixed``, ``jb_late_adaptive`` (packets discarded as late),
        ``jb_delay_fixed_ms``, ``jb_delay_adaptive_ms`` (mean playout delay
        above the fastest packet), ``effective_loss_fraction`` = (missing +
        adaptive late) / slots.
    Quality (:mod:`callscope.metrics.emodel`)
        ``r_factor``, ``mos`` and the inputs in ``emodel``.
    Volume
        ``bitrate_kbps`` (UDP payload), ``duration_s``, ``first_time_s``,
        ``last_time_s``, ``ptime_ms`` (nominal packet interval).
    Per packet
        ``per_packet`` (:class:`PacketMetrics`, not a field): computed from
        the measured ``stream`` (an init-only argument) on first access, then
        kept. A capture's per-packet arrays would take tens of bytes per
        packet for every stream; only plots and audio rendering read them,
        for the few streams they show.
    """

    packets: int
    expected: int
    lost: int
    missing: int
    duplicates: int
    reordered: int
    sequence_restarts: int
    loss_fraction: float
    loss_inferred: bool
    delta_min_ms: float | None
    delta_mean_ms: float | None
    delta_max_ms: float | None
    jitter_mean_ms: float | None
    jitter_max_ms: float | None
    jitter_p95_ms: float | None
    delay_p50_ms: float | None
    delay_p95_ms: float | None
    delay_max_ms: float | None
    delay_trend_ms_per_s: float | None
    clock_skew_ppm: float | None
    loss_runs: tuple[int, ...]
    burst_density: float
    gap_density: float
    burst_duration_ms: float
    gap_duration_ms: float
    ge_p: float
    ge_r: float
    ge_loss_good: float
    ge_loss_bad: float
    burst_ratio: float
    jb_late_fixed: int | None
    jb_late_adaptive: int | None
    jb_delay_fixed_ms: float | None
    jb_delay_adaptive_ms: float | None
    effective_loss_fraction: float
    r_factor: float
    mos: float
    bitrate_kbps: float
    duration_s: float
    first_time_s: float | None
    last_time_s: float | None
    ptime_ms: float | None
    emodel: emodel.EModelInputs
    timeline: Timeline
    stream: InitVar[MediaStream | None] = None

    def __post_init__(self, stream: MediaStream | None) -> None:
        # an attribute, not a dataclass field: kept out of fields() (and so the JSON)
        object.__setattr__(self, "_stream", stream)

    @cached_property
    def per_packet(self) -> PacketMetrics:
        """Per-packet arrays of the measured stream (:func:`packet_metrics`), computed once."""
        stream: MediaStream | None = getattr(self, "_stream", None)
        if stream is None:
            raise ValueError("per-packet metrics need the stream: construct with stream=")
        return packet_metrics(stream)


def measure(
    stream: MediaStream,
    *,
    window_s: float = 1.0,
    codec_override: emodel.CodecImpairment | str | None = None,
    one_way_delay_ms: float | None = None,
    rtt_ms: float | None = None,
) -> StreamMetrics:
    """Measure one stream.

    Parameters
    ----------
    stream : MediaStream
        RTP (``seq``/``ts``/``pt`` present) or opaque media.
    window_s : float
        Timeline window length in seconds.
    codec_override : CodecImpairment or str, optional
        E-model codec row (or a name in :data:`callscope.metrics.emodel.CODECS`)
        instead of the one derived from the stream's codec / payload type.
    one_way_delay_ms : float, optional
        Known mean one-way network delay; else ``rtt_ms / 2`` when an RTT is
        known (e.g. from RTCP, RFC 3550 §6.4.1). The E-model's Ta is that plus
        the adaptive buffer's mean playout delay; with neither known it gets
        no delay term (Ta None in ``emodel``).
    rtt_ms : float, optional
        Round-trip time.

    Returns
    -------
    StreamMetrics
    """
    p = stream.packets
    n = len(p)
    time_s, acc, media, jb = _account_and_play(stream)

    received = acc.received
    slots = int(received.size)
    missing = int(np.count_nonzero(~received))
    structure = loss_structure.loss_structure(received, acc.ptime_ms or 20.0)
    # Effective loss: the missing slots and those of packets the adaptive
    # buffer discards as late.
    late_slots = np.zeros(0, np.int64)
    if jb is not None and jb.late_adaptive.any():
        judged_ext = acc.ext_seq if media is None else acc.ext_seq[media]
        late_slots = judged_ext[jb.late_adaptive] - acc.slot_base
        late_slots = late_slots[(late_slots >= 0) & (late_slots < slots)]
    if late_slots.size:
        effective = received.copy()
        effective[late_slots] = False
        effective_loss = float(np.count_nonzero(~effective)) / slots
        burst_r = loss_structure.burst_ratio(effective)
    else:  # the effective slots are the received ones
        effective_loss = missing / slots if slots else 0.0
        burst_r = structure.burst_ratio

    codec = _codec_for(stream, codec_override)
    if one_way_delay_ms is not None:
        network_delay = float(one_way_delay_ms)
    elif rtt_ms is not None:
        network_delay = float(rtt_ms) / 2
    else:
        network_delay = None
    ta = None
    if network_delay is not None:
        ta = network_delay + (jb.adaptive_delay_ms if jb is not None else 0.0)
    r, inputs = emodel.r_factor(codec, 100 * effective_loss, burst_r, ta)

    unique = int(np.count_nonzero(received))
    timeline = build_timeline(
        time_s=time_s,
        size=p.size,
        jitter_ms=acc.jitter_ms,
        delay_ms=acc.delay_ms,
        slot_packets=acc.first_copy_in_range,
        lost_time_s=acc.lost_time_s,
        window_s=window_s,
        mos_of_loss=lambda f: emodel.mos_for_loss(codec, 100 * f, burst_r, ta),
    )
    first = float(time_s.min()) if n else None
    last = float(time_s.max()) if n else None
    duration = last - first if last is not None and first is not None else 0.0
    # the sum of integer sizes is exact, as the float64 sum of them was
    payload_bytes = int(np.sum(p.size, dtype=np.int64))
    return StreamMetrics(
        packets=n,
        expected=acc.expected,
        lost=acc.lost,
        missing=missing,
        duplicates=int(np.count_nonzero(acc.duplicate)),
        reordered=int(np.count_nonzero(acc.reordered)),
        sequence_restarts=acc.restarts,
        loss_fraction=missing / (missing + unique) if (missing + unique) else 0.0,
        loss_inferred=not _is_rtp(stream),
        delta_min_ms=acc.delta_min,
        delta_mean_ms=acc.delta_mean,
        delta_max_ms=acc.delta_max,
        jitter_mean_ms=acc.jitter_mean,
        jitter_max_ms=acc.jitter_max,
        jitter_p95_ms=acc.jitter_p95,
        delay_p50_ms=acc.delay.p50_ms if acc.delay else None,
        delay_p95_ms=acc.delay.p95_ms if acc.delay else None,
        delay_max_ms=acc.delay.max_ms if acc.delay else None,
        delay_trend_ms_per_s=acc.delay.trend_ms_per_s if acc.delay else None,
        clock_skew_ppm=acc.delay.clock_skew_ppm if acc.delay else None,
        loss_runs=structure.run_histogram,
        burst_density=structure.burst_density,
        gap_density=structure.gap_density,
        burst_duration_ms=structure.burst_duration_ms,
        gap_duration_ms=structure.gap_duration_ms,
        ge_p=structure.ge_p,
        ge_r=structure.ge_r,
        ge_loss_good=structure.ge_loss_good,
        ge_loss_bad=structure.ge_loss_bad,
        burst_ratio=structure.burst_ratio,
        jb_late_fixed=jb.late_fixed_count if jb is not None else None,
        jb_late_adaptive=jb.late_adaptive_count if jb is not None else None,
        jb_delay_fixed_ms=jb.fixed_delay_ms if jb is not None else None,
        jb_delay_adaptive_ms=jb.adaptive_delay_ms if jb is not None else None,
        effective_loss_fraction=effective_loss,
        r_factor=float(r),
        mos=float(emodel.mos_from_r(r)),
        bitrate_kbps=payload_bytes * 8 / duration / 1000 if duration > 0 else 0.0,
        duration_s=duration,
        first_time_s=first,
        last_time_s=last,
        ptime_ms=acc.ptime_ms,
        emodel=inputs,
        timeline=timeline,
        stream=stream,
    )


def packet_metrics(stream: MediaStream) -> PacketMetrics:
    """Per-packet and per-slot arrays of one stream, as :func:`measure` defines them.

    What ``measure(stream).per_packet`` holds; computed on demand because
    only plots and audio rendering read them.

    Parameters
    ----------
    stream : MediaStream

    Returns
    -------
    PacketMetrics
    """
    p = stream.packets
    n = len(p)
    time_s, acc, media, jb = _account_and_play(stream)
    late_fixed = np.zeros(n, bool)
    late_adaptive = np.zeros(n, bool)
    if jb is not None:
        judged = slice(None) if media is None else media
        late_fixed[judged] = jb.late_fixed
        late_adaptive[judged] = jb.late_adaptive
    return PacketMetrics(
        time_s=time_s,
        size=np.asarray(p.size),
        ext_seq=acc.ext_seq,
        delta_ms=acc.delta_ms,
        jitter_ms=acc.jitter_ms,
        delay_ms=acc.delay_ms,
        duplicate=acc.duplicate,
        reordered=acc.reordered,
        late_fixed=late_fixed,
        late_adaptive=late_adaptive,
        slot_base=acc.slot_base,
        received=acc.received,
        lost_ext=acc.lost_ext,
        lost_time_s=acc.lost_time_s,
    )


def _account_and_play(stream: MediaStream):
    """Arrival times (s), sequence accounting and playout of one stream: the
    shared start of :func:`measure` and :func:`packet_metrics` (the latter
    recomputes them on demand rather than every stream holding them)."""
    time_s = np.asarray(stream.packets.time, np.float64)
    acc = _accounting(stream, time_s)
    media, jb = _playout(acc, stream.packets.marker)
    return time_s, acc, media, jb


def _playout(
    acc: _Accounting, marker: np.ndarray | None
) -> tuple[np.ndarray | None, jitterbuffer.JitterBufferResult | None]:
    """The packets the playout buffers judge (first copies of media packets
    with a clock; None when that is every packet) and the buffers' verdicts
    on them (None when there are none)."""
    n = acc.delay_ms.size
    finite = np.isfinite(acc.delay_ms)
    every_finite = bool(finite.all())
    if n and every_finite and not acc.duplicate.any():  # the usual case: no masks
        spurt = np.zeros(n, bool) if marker is None else np.array(marker, bool)
        return None, jitterbuffer.simulate(acc.delay_ms, spurt)
    media = finite & ~acc.duplicate
    if not media.any():
        return media, None
    # A talkspurt starts at a marker bit or after a non-media packet (an
    # RFC 4733 event or comfort noise), where receivers re-anchor playout.
    spurt = np.zeros(n, bool) if marker is None else np.array(marker, bool)
    if not every_finite:
        spurt[1:] |= ~finite[:-1]
    return media, jitterbuffer.simulate(acc.delay_ms[media], spurt[media])


@dataclass(frozen=True)
class _Accounting:
    """What the RTP and the opaque paths hand to the common part of measure()."""

    expected: int
    lost: int
    restarts: int
    ext_seq: np.ndarray
    duplicate: np.ndarray
    reordered: np.ndarray
    first_copy_in_range: np.ndarray | None
    slot_base: int
    received: np.ndarray
    lost_ext: np.ndarray
    lost_time_s: np.ndarray
    delta_ms: np.ndarray
    jitter_ms: np.ndarray
    delay_ms: np.ndarray
    delta_min: float | None
    delta_mean: float | None
    delta_max: float | None
    jitter_mean: float | None
    jitter_max: float | None
    jitter_p95: float | None
    ptime_ms: float | None
    delay: DelayStats | None


def _is_rtp(stream: MediaStream) -> bool:
    p = stream.packets
    return stream.kind == "rtp" and p.seq is not None and p.ts is not None and p.pt is not None


def _accounting(stream: MediaStream, time_s: np.ndarray) -> _Accounting:
    if _is_rtp(stream):
        return _rtp_accounting(stream)
    return _opaque_accounting(time_s, stream.packets.size)


def _rtp_accounting(stream: MediaStream) -> _Accounting:
    p = stream.packets
    n = len(p)
    seq, ts, pt = p.seq, p.ts, p.pt
    if seq is None or ts is None or pt is None:
        raise ValueError(f"stream {stream.id}: RTP accounting needs sequence numbers, timestamps and payload types")
    marker = p.marker if p.marker is not None else np.zeros(n, bool)
    seqa = analyze_sequence(seq, p.time, ts)
    clock = wireshark_rtp.packet_clock_rates(pt, stream.payload_type, stream.clock_rate)
    ws = wireshark_rtp.analyze(p.time, seq, ts, pt, marker, clock, p.frame)
    has_clock = clock > 0
    every_clock = bool(has_clock.all())
    jitter = ws.jitter_ms if every_clock else np.where(has_clock, ws.jitter_ms, np.nan)

    segment = None
    if seqa.restarts.size:
        segment = np.zeros(n, np.int64)
        segment[seqa.restarts] = 1
        segment = np.cumsum(segment)
    delay = relative_delay(p.time, extend_timestamps(ts), clock, segment) if n else None
    delay_ms = delay.delay_ms if delay is not None else np.zeros(0)

    # None: every packet is the first copy of an in-range number
    in_range = None if seqa.first_ext.size == n else ~seqa.duplicate & ~seqa.stray
    reg = ws.regular if every_clock else ws.regular & has_clock
    jitter_reg = ws.jitter_ms[1:] if reg[1:].all() else ws.jitter_ms[reg]  # reg[0] is False
    delta_known = bool(ws.regular.any())
    return _Accounting(
        expected=ws.expected,
        lost=ws.lost,
        restarts=int(seqa.restarts.size),
        ext_seq=seqa.ext_seq,
        duplicate=seqa.duplicate,
        reordered=seqa.reordered,
        first_copy_in_range=in_range,
        slot_base=seqa.base,
        received=seqa.received,
        lost_ext=seqa.lost_ext,
        lost_time_s=seqa.lost_time,
        delta_ms=ws.delta_ms,
        jitter_ms=jitter,
        delay_ms=delay_ms,
        # Known when any packet qualified (min_delta_ms is then a real minimum,
        # which a capture whose clock steps back between packets makes negative).
        delta_min=ws.min_delta_ms if delta_known else None,
        delta_mean=ws.mean_delta_ms if delta_known else None,
        delta_max=ws.max_delta_ms if delta_known else None,
        jitter_mean=ws.mean_jitter_ms if ws.jitter_known else None,
        jitter_max=ws.max_jitter_ms if ws.jitter_known else None,
        jitter_p95=percentiles(jitter_reg, (95,))[0] if jitter_reg.size else None,
        ptime_ms=_nominal_interval_ms(seqa.first_time, seqa.first_ext),
        delay=delay,
    )


def _nominal_interval_ms(first_time: np.ndarray, first_ext: np.ndarray) -> float | None:
    """Median arrival spacing of consecutive sequence numbers (ms).

    ``first_ext`` are the distinct numbers received, in order, and
    ``first_time`` when each first arrived (:class:`SequenceAnalysis`).
    """
    if first_time.size < 2:
        return None
    dt = (first_time[1:] - first_time[:-1])[first_ext[1:] - first_ext[:-1] == 1]
    return median(dt) * 1000 if dt.size else None


def _opaque_accounting(time_s: np.ndarray, size: np.ndarray) -> _Accounting:
    """Slots inferred from the cadence (:func:`callscope.metrics.cadence.infer_slots`).

    The same inference the diagnosis uses: a gap of ``k`` whole packet
    intervals holds ``k - 1`` losses, bounded by causality; leading set-up
    packets (before the voice cadence settles) take one slot each.
    """
    n = time_s.size
    d = np.diff(time_s)
    ptime = None
    if n >= 2:
        order = np.argsort(time_s, kind="stable")
        cs = infer_slots(time_s[order], size[order])
        ptime = cs.ptime
        slot_sorted = np.concatenate([np.arange(cs.lead), cs.lead + cs.slot]).astype(np.int64)
        slot = np.empty(n, np.int64)
        slot[order] = slot_sorted
    else:
        slot = np.zeros(n, np.int64)
    received = np.zeros(int(slot.max()) + 1 if n else 0, bool)
    received[slot] = True
    lost_ext = np.flatnonzero(~received).astype(np.int64)
    lost_time = np.interp(lost_ext, np.sort(slot), np.sort(time_s)) if lost_ext.size else np.zeros(0)
    delta = np.concatenate([[np.nan], d * 1000]) if n else np.zeros(0)
    nan = np.full(n, np.nan)
    expected = int(received.size)
    return _Accounting(
        expected=expected,
        lost=expected - n,
        restarts=0,
        ext_seq=slot,
        duplicate=np.zeros(n, bool),
        reordered=np.zeros(n, bool),
        first_copy_in_range=None,
        slot_base=0,
        received=received,
        lost_ext=lost_ext,
        lost_time_s=lost_time,
        delta_ms=delta,
        jitter_ms=nan,
        delay_ms=nan.copy(),
        delta_min=float(d.min() * 1000) if d.size else None,
        delta_mean=float(d.mean() * 1000) if d.size else None,
        delta_max=float(d.max() * 1000) if d.size else None,
        jitter_mean=None,
        jitter_max=None,
        jitter_p95=None,
        ptime_ms=ptime * 1000 if ptime else None,
        delay=None,
    )


def _codec_for(
    stream: MediaStream, override: emodel.CodecImpairment | str | None
) -> emodel.CodecImpairment:
    if isinstance(override, emodel.CodecImpairment):
        return override
    if isinstance(override, str):
        row = emodel.codec_row(override, None)
        if row is None:
            raise ValueError(f"unknown codec {override!r}; known: {', '.join(emodel.CODECS)}")
        return row
    return emodel.codec_row(stream.codec, stream.payload_type) or emodel.CODECS["UNKNOWN"]
