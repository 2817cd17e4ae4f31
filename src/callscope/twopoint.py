"""Two-point analysis: the same call captured at the sender and at the receiver.

One capture can only infer loss from sequence numbers (or, for encrypted
media with no RTP header, from gaps in the cadence). With both ends captured,
every packet can be followed: a packet is identified by a hash of its UDP
payload, which NAT does not touch and which for RTP includes the sequence
number and timestamp, and for encrypted media is unique by construction.
That gives exact loss, duplication and reordering per direction, and the
one-way delay of every packet up to the unknown offset between the two
capture clocks.

Clock model: ``t_recv = t_send + d + offset + drift * t_send`` where ``d`` is
the true one-way delay. Only ``d - min(d)`` is observable. The offset and the
drift are fitted to the lower envelope of the delay series (per-window
minima, which a queue can only raise), taken from the direction whose
envelope is flattest; the other direction sees the same clocks with the
opposite sign. Assumption, reported with every result: the smallest delay
observed is pure propagation (no queue at that instant).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from callscope.capture.datagrams import Datagrams, address_to_str, str_to_address
from callscope.capture.flows import flow_keys, group_rows
from callscope.capture.reader import read_capture
from callscope.diagnose.engine import REPORT_THRESHOLD, stream_findings, strongest
from callscope.diagnose.findings import Diagnosis, Evidence, Finding
from callscope.diagnose.trace import Trace
from callscope.errors import CallscopeError

#: Payload bytes hashed per packet: covers the RTP header (sequence number,
#: timestamp, SSRC) and enough encrypted payload to make collisions negligible.
HASH_BYTES = 64
#: A flow pair needs this many common packets (and this share of the smaller
#: flow) to count as the same media seen at both ends.
MIN_COMMON = 10
MIN_COMMON_SHARE = 0.2
#: Window for the delay lower envelope, seconds.
ENVELOPE_WINDOW_S = 1.0

ASSUMPTIONS = (
    "the smallest one-way delay observed in each direction is pure propagation (no queueing at that instant)",
    "clock offset and drift between the two captures are constant over the call (linear clock model)",
    "a packet is identified by a hash of its UDP payload (NAT rewrites addresses and ports, never payloads)",
)


class NoCommonFlowsError(CallscopeError):
    """The two captures share no media: probably not the same call."""


@dataclass(frozen=True)
class DirectionResult:
    """One direction of one flow, followed packet by packet from sender to receiver.

    Attributes
    ----------
    sender, receiver : str
        Which capture saw the packets leave and arrive (the paths given).
    sent_flow, received_flow : tuple (src, sport, dst, dport)
        The flow as each capture saw it (they differ behind NAT).
    sent, received, lost, duplicated, reordered : int
        Exact counts; ``lost`` are packets sent and never received,
        ``reordered`` received after a packet that was sent later.
    send_time : float64 (sent,)
        Send time of every packet, seconds since the sender capture's first packet of the flow.
    lost_mask : bool (sent,)
    delay_ms : float64 (sent,)
        One-way delay above the minimum (offset and drift removed), NaN where lost.
    clock_offset_s, clock_drift_ppm : float
        The receiver clock minus the sender clock at the flow's start, and its drift.
    """

    sender: str
    receiver: str
    sent_flow: tuple[str, int, str, int]
    received_flow: tuple[str, int, str, int]
    sent: int
    received: int
    lost: int
    duplicated: int
    reordered: int
    send_time: np.ndarray
    lost_mask: np.ndarray
    delay_ms: np.ndarray
    clock_offset_s: float
    clock_drift_ppm: float
    start_time: float  # first packet's send time, sender capture's epoch seconds
    size: np.ndarray  # UDP payload bytes of every packet sent

    @property
    def loss_fraction(self) -> float:
        return self.lost / self.sent if self.sent else 0.0

    def loss_bursts(self) -> list[tuple[float, float, int]]:
        """Runs of consecutive lost packets: (first send time, last send time, packets)."""
        m = self.lost_mask.astype(np.int8)
        edges = np.diff(np.concatenate([[0], m, [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        return [(float(self.send_time[a]), float(self.send_time[b - 1]), int(b - a))
                for a, b in zip(starts, ends, strict=True)]


@dataclass(frozen=True)
class Comparison:
    """Everything two-point analysis found."""

    sent_path: str
    received_path: str
    directions: tuple[DirectionResult, ...]
    only_in_sent: tuple[tuple[str, int, str, int], ...]
    only_in_received: tuple[tuple[str, int, str, int], ...]
    assumptions: tuple[str, ...] = ASSUMPTIONS

    def undelivered(self) -> tuple[tuple[str, int, str, int], ...]:
        """Media flows between the call's hosts that only one capture saw.

        Both captures see everything that passes between their hosts, so a
        flow between the call's hosts (those of the directions followed) seen
        at one end only left that end and never arrived.
        """
        # As either capture names them (behind a NAT the two differ).
        hosts = {f[i] for r in self.directions for f in (r.sent_flow, r.received_flow) for i in (0, 2)}
        return tuple(f for f in self.only_in_sent + self.only_in_received if f[0] in hosts and f[2] in hosts)


def payload_hashes(d: Datagrams) -> np.ndarray:
    """64-bit FNV-1a-style hash of each datagram's first bytes and its length (vectorised)."""
    head = d.payload_prefix(HASH_BYTES).astype(np.uint64)
    h = np.full(len(d), np.uint64(0xCBF29CE484222325))
    prime = np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        for k in range(HASH_BYTES):
            h = (h ^ head[:, k]) * prime
        h = (h ^ d.udp_payload_len.astype(np.uint64)) * prime
    return h


@dataclass(frozen=True)
class _Side:
    path: str
    d: Datagrams
    hashes: np.ndarray
    flow: np.ndarray  # flow index per datagram
    keys: np.ndarray  # flow key rows
    local: bytes  # the capturing host's address (most frequent endpoint)

    def endpoints(self, f: int) -> tuple[str, int, str, int]:
        k = self.keys[f]
        return (address_to_str(k[:16]), int(k[32]) << 8 | int(k[33]),
                address_to_str(k[16:32]), int(k[34]) << 8 | int(k[35]))


def _side(path: str) -> _Side:
    cap = read_capture(path)
    d = cap.datagrams
    keys, flow = group_rows(flow_keys(d))
    addrs, counts = np.unique(np.concatenate([d.src, d.dst]).view(np.dtype((np.void, 16))).ravel(),
                              return_counts=True)
    local = bytes(addrs[np.argmax(counts)]) if counts.size else b""
    return _Side(str(path), d, payload_hashes(d), flow, keys, local)


def _pair_flows(a: _Side, b: _Side, manual: Sequence[tuple[str, str]]) -> list[tuple[int, int]]:
    """Flow pairs (index in a, index in b) carrying the same packets."""
    pairs: list[tuple[int, int]] = []
    if manual:
        for left, right in manual:
            pairs.append((_find_flow(a, left), _find_flow(b, right)))
        return pairs
    if a.hashes.size == 0 or b.hashes.size == 0:
        return []  # one capture holds no UDP at all
    order = np.argsort(b.hashes, kind="stable")
    sorted_h = b.hashes[order]
    pos = np.searchsorted(sorted_h, a.hashes)
    hit = (pos < sorted_h.size) & (sorted_h[np.minimum(pos, sorted_h.size - 1)] == a.hashes)
    fa = a.flow[hit]
    fb = b.flow[order[pos[hit]]]
    if fa.size == 0:
        return []
    code = fa.astype(np.int64) * (len(b.keys) + 1) + fb
    uniq, count = np.unique(code, return_counts=True)
    size_a = np.bincount(a.flow, minlength=len(a.keys))
    size_b = np.bincount(b.flow, minlength=len(b.keys))
    best: dict[int, tuple[int, int]] = {}
    for c, n in zip(uniq.tolist(), count.tolist(), strict=True):
        i, j = divmod(c, len(b.keys) + 1)
        if n < MIN_COMMON or n < MIN_COMMON_SHARE * min(size_a[i], size_b[j]):
            continue
        if i not in best or n > best[i][1]:
            best[i] = (j, n)
    return sorted((i, j) for i, (j, _) in best.items())


def _a_sent(a: _Side, fa: int, b: _Side, fb: int, pairs: Sequence[tuple[int, int]], follow_ab) -> bool:
    """Whether capture ``a`` saw the flow leave, when the hosts' addresses do not say.

    With a flow the other way between the same hosts, the clock offset between
    the captures cancels: ``t_b - t_a`` is ``delay + offset`` for a flow a saw
    leave and ``offset - delay`` for one it saw arrive, so the flow whose
    median is larger left from a (the difference is the sum of the two
    one-way delays, never negative). Without one, the side that saw more of
    the flow's packets sent it (a lost packet is seen by its sender only),
    then the sign of the median (the captures' clocks taken as agreeing).
    ``follow_ab(fa, fb)`` is :func:`_follow` with a as the sender, memoised
    by the caller (the same result serves the flow if a did send it).
    """

    def median_gap(ga: int, gb: int) -> float | None:
        t_send, t_recv, ok, *_ = follow_ab(ga, gb)
        return float(np.median((t_recv[ok] - t_send[ok]) / 1e9)) if ok.any() else None

    key = a.keys[fa]
    mine = median_gap(fa, fb)
    for ga, gb in pairs:
        other = a.keys[ga]
        if (bytes(other[:16]) == bytes(key[16:32]) and bytes(other[16:32]) == bytes(key[:16])
                and bytes(other[32:34]) == bytes(key[34:36]) and bytes(other[34:36]) == bytes(key[32:34])):
            theirs = median_gap(ga, gb)
            if mine is not None and theirs is not None and mine != theirs:
                return mine > theirs
    n_a, n_b = np.count_nonzero(a.flow == fa), np.count_nonzero(b.flow == fb)
    if n_a != n_b:
        return bool(n_a > n_b)
    return mine is None or mine >= 0


def _find_flow(side: _Side, spec: str) -> int:
    """Flow index for ``SRC:PORT>DST:PORT`` (IPv6 in brackets)."""
    try:
        left, right = spec.split(">")
        (sa, sp), (da, dp) = (_endpoint(x) for x in (left, right))
    except ValueError:
        raise CallscopeError(f"--map flow {spec!r}: expected SRC:PORT>DST:PORT") from None
    want = np.concatenate([str_to_address(sa), str_to_address(da),
                           np.array([sp >> 8, sp & 255, dp >> 8, dp & 255], np.uint8)])
    hits = np.flatnonzero((side.keys == want).all(axis=1))
    if hits.size == 0:
        raise CallscopeError(f"{side.path}: no UDP flow {spec}")
    return int(hits[0])


def _endpoint(text: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):
        addr, _, port = text[1:].partition("]:")
    else:
        addr, _, port = text.rpartition(":")
    return addr, int(port)


def _envelope_fit(t: np.ndarray, d: np.ndarray) -> tuple[float, float, float]:
    """Line through the per-window minima of delay: (intercept, slope, residual spread)."""
    if t.size < 2:
        return (float(d.min()) if d.size else 0.0), 0.0, float("inf")
    w = np.floor((t - t[0]) / ENVELOPE_WINDOW_S).astype(np.int64)
    order = np.lexsort((d, w))
    first = np.concatenate([[True], w[order][1:] != w[order][:-1]])
    tm, dm = t[order][first], d[order][first]
    if tm.size < 3:
        return float(d.min()), 0.0, float("inf")
    slope, intercept = np.polyfit(tm - t[0], dm, 1)
    resid = dm - (intercept + slope * (tm - t[0]))
    return float(intercept), float(slope), float(np.std(resid))


def _follow(snd: _Side, fs: int, rcv: _Side, fr: int):
    """Match the packets of one flow seen at the sender and at the receiver."""
    si = np.flatnonzero(snd.flow == fs)
    ri = np.flatnonzero(rcv.flow == fr)
    sh, rh = snd.hashes[si], rcv.hashes[ri]
    t_send = snd.d.time_ns[si]
    # A payload sent twice (a retransmission, or a true duplicate upstream) is
    # matched in order: the k-th copy sent to the k-th copy received.
    order = np.argsort(rh, kind="stable")
    rh_sorted = rh[order]
    first = np.searchsorted(rh_sorted, sh, side="left")
    last = np.searchsorted(rh_sorted, sh, side="right")
    copies_recv = last - first
    # Which copy of its payload each sent packet is (0 for the first sent).
    s_order = np.argsort(sh, kind="stable")
    s_sorted = sh[s_order]
    group_start = np.searchsorted(s_sorted, s_sorted, side="left")
    copy = np.empty(sh.size, np.int64)
    copy[s_order] = np.arange(sh.size) - group_start
    received = copy < copies_recv
    arrival_idx = np.where(received, order[np.minimum(first + copy, max(order.size - 1, 0))], -1)
    t_recv = np.where(received, rcv.d.time_ns[ri][np.maximum(arrival_idx, 0)], 0)
    # Copies received beyond the copies sent of the same payload are duplicates.
    us, cs = np.unique(sh, return_counts=True)
    ur, cr = np.unique(rh, return_counts=True)
    pos = np.minimum(np.searchsorted(us, ur), max(us.size - 1, 0))
    known = us[pos] == ur if us.size else np.zeros(ur.size, bool)
    dup = int(np.sum(np.maximum(cr[known] - cs[pos[known]], 0)))
    arrivals = arrival_idx[received]
    reordered = int(np.count_nonzero(arrivals < np.maximum.accumulate(arrivals))) if arrivals.size else 0
    return t_send, t_recv, received, dup, reordered, snd.d.udp_payload_len[si]


def compare(
    sent: str | os.PathLike,
    received: str | os.PathLike,
    *,
    flow_map: Sequence[tuple[str, str]] = (),
) -> Comparison:
    """Follow every media packet from one capture to the other.

    Parameters
    ----------
    sent, received : path-like
        Captures taken at the two ends of the same call (the order only names
        them: each flow's direction is found from which capture's host sent it).
    flow_map : sequence of (flow in sent, flow in received), optional
        Pair flows by hand (``"SRC:PORT>DST:PORT"``) when automatic matching by
        payload is not wanted.

    Returns
    -------
    Comparison

    Raises
    ------
    NoCommonFlowsError
        The captures share no media packets.
    """
    a, b = _side(str(sent)), _side(str(received))
    pairs = _pair_flows(a, b, flow_map)
    if not pairs:
        raise NoCommonFlowsError(
            f"{sent} and {received} share no media packets: not captures of the same call? "
            "(pair flows by hand with --map SRC:PORT>DST:PORT=SRC:PORT>DST:PORT)"
        )
    followed: dict[tuple[int, int], tuple] = {}

    def follow_ab(ga: int, gb: int) -> tuple:
        if (ga, gb) not in followed:
            followed[ga, gb] = _follow(a, ga, b, gb)
        return followed[ga, gb]

    raw = []
    for fa, fb in pairs:
        # The sender of a flow is the capture whose host is the flow's source.
        a_sends = bytes(a.keys[fa][:16]) == a.local
        b_sends = bytes(b.keys[fb][:16]) == b.local
        if a_sends == b_sends:  # both hosts equally busy: let the delays tell
            a_sends = _a_sent(a, fa, b, fb, pairs, follow_ab)
        if a_sends:
            raw.append((a, fa, b, fb, *follow_ab(fa, fb)))
        else:
            raw.append((b, fb, a, fa, *_follow(b, fb, a, fa)))
    drift = _common_drift(raw, a.path)
    out = []
    for snd, fs, rcv, fr, t_send, t_recv, ok, dup, reord, size in raw:
        t0 = t_send[0]
        ts = (t_send - t0) / 1e9
        d = (t_recv - t_send) / 1e9
        # drift is receiver-vs-sender clock for flows sent from capture a; reversed otherwise
        slope = drift if snd.path == a.path else -drift
        base = d[ok] - slope * ts[ok]
        offset = _floor(base)
        delay = np.full(ts.size, np.nan)
        delay[ok] = np.maximum(base - offset, 0.0) * 1000.0
        out.append(DirectionResult(
            sender=snd.path, receiver=rcv.path,
            sent_flow=snd.endpoints(fs), received_flow=rcv.endpoints(fr),
            sent=int(ts.size), received=int(np.count_nonzero(ok)), lost=int(np.count_nonzero(~ok)),
            duplicated=dup, reordered=reord, send_time=ts, lost_mask=~ok, delay_ms=delay,
            clock_offset_s=offset, clock_drift_ppm=slope * 1e6, start_time=t0 / 1e9,
            size=size.astype(np.int32),
        ))
    matched_a = {p[0] for p in pairs}
    matched_b = {p[1] for p in pairs}
    media_a = _media_flows(a)
    media_b = _media_flows(b)
    return Comparison(
        sent_path=str(sent),
        received_path=str(received),
        directions=tuple(out),
        only_in_sent=tuple(a.endpoints(f) for f in media_a if f not in matched_a),
        only_in_received=tuple(b.endpoints(f) for f in media_b if f not in matched_b),
    )


#: The delay floor must be reached by this many packets: a lone packet
#: below it carries a capture timestamp error (a sender's stamp taken late),
#: not a path faster than every other packet's. Lab pairs: single packets up
#: to 53 ms under an otherwise constant floor.
FLOOR_SUPPORT = 5


def _floor(base: np.ndarray) -> float:
    """The propagation delay: the :data:`FLOOR_SUPPORT`-th smallest delay (s); below it counts as 0."""
    if base.size == 0:
        return 0.0
    k = min(FLOOR_SUPPORT, base.size) - 1
    return float(np.partition(base, k)[k])


def _media_flows(side: _Side, min_packets: int = 50) -> list[int]:
    """Flows busy enough to be media (for the 'present in one capture only' list)."""
    counts = np.bincount(side.flow, minlength=len(side.keys))
    return [int(f) for f in np.flatnonzero(counts >= min_packets)]


def _common_drift(raw, a_path: str) -> float:
    """Clock drift (s/s of capture b relative to a), from the flattest delay envelope."""
    best = (float("inf"), 0.0)
    for snd, _fs, _rcv, _fr, t_send, t_recv, ok, *_ in raw:
        if np.count_nonzero(ok) < 3:
            continue
        ts = (t_send[ok] - t_send[0]) / 1e9
        d = (t_recv[ok] - t_send[ok]) / 1e9
        _, slope, spread = _envelope_fit(ts, d)
        if spread < best[0]:
            best = (spread, slope if snd.path == a_path else -slope)
    return best[1]


def direction_trace(r: DirectionResult, stream_id: str) -> Trace:
    """The diagnosis view of one direction, with exact loss and exact delay."""
    ok = ~r.lost_mask
    ptime = float(np.median(np.diff(r.send_time))) if r.sent > 1 else 0.02
    delay_s = r.delay_ms / 1000.0
    typical = float(np.nanmedian(delay_s)) if ok.any() else 0.0
    arrival = r.send_time + np.where(ok, delay_s, typical)
    return Trace(
        stream_id=stream_id,
        opaque=False,
        ptime=ptime if ptime > 0 else 0.02,
        time=arrival,
        send=r.send_time,
        received=ok,
        size=r.size.astype(np.float64),
        delay=np.where(ok, delay_s, np.nan),
        capture_end=float(r.send_time[-1]) if r.sent else 0.0,
        lost_sizes_known=True,
    )


def diagnose_direction(r: DirectionResult, stream_id: str = "d1") -> tuple[Finding | None, list[Finding]]:
    """The diagnosis machinery on exact loss: (primary finding or None when clean, all findings)."""
    findings = [f for f in stream_findings(direction_trace(r, stream_id), r.reordered)
                if f.confidence >= REPORT_THRESHOLD]
    return strongest(findings), findings


#: A direction stopped when every packet sent over its last this-many seconds
#: (and at least :data:`STOP_MIN_PACKETS` of them) was lost: the sender kept
#: sending into a path that no longer delivered.
STOP_MIN_S = 1.0
STOP_MIN_PACKETS = 25
#: Directions that stopped within this of each other were cut together (s).
STOP_TOGETHER_S = 2.0


def stopped_at(r: DirectionResult) -> float | None:
    """Send time (s since the flow's first packet) from which nothing sent arrived, or None.

    Only a stop that lasts to the end of what the sender sent counts, and it
    must span :data:`STOP_MIN_S` and :data:`STOP_MIN_PACKETS`: a shorter tail
    is an ordinary loss burst at the end.
    """
    if r.sent == 0:
        return None
    delivered = np.flatnonzero(~r.lost_mask)
    first_lost = int(delivered[-1]) + 1 if delivered.size else 0
    tail = r.sent - first_lost
    if tail < STOP_MIN_PACKETS:
        return None
    start = float(r.send_time[first_lost])
    if float(r.send_time[-1]) - start < STOP_MIN_S:
        return None
    return start


def judge_pair(c: Comparison, verdicts: Sequence[tuple[Finding | None, list[Finding]]]) -> Finding | None:
    """The call's verdict from both ends: a stop the two captures prove, else the worst direction.

    With both ends captured a cut-off needs no inference from life signs: the
    sender's capture shows it went on sending, the receiver's that nothing
    arrived. Every direction stopping together is a cut-off (time and bytes
    delivered before it); some stopping while others deliver to the end, or a
    media flow seen only at its sender, is one-way blocking. Otherwise the
    strongest per-direction finding (``verdicts``, as :func:`diagnose_direction`
    gives them) stands, or None when every direction is clean.
    """
    stops = [(r, stopped_at(r)) for r in c.directions]
    cut = [(r, t) for r, t in stops if t is not None]
    flowing = [r for r, t in stops if t is None and r.received > 0]
    never = c.undelivered()
    if cut and not flowing:
        # On the first capture's clock: a direction the other capture sent is
        # moved by its clock offset (receiver clock minus sender clock).
        times = [r.start_time + t + (r.clock_offset_s if r.sender != c.sent_path else 0.0) for r, t in cut]
        if max(times) - min(times) <= STOP_TOGETHER_S:
            t_cut = min(times)
            call_start = min(r.start_time + (r.clock_offset_s if r.sender != c.sent_path else 0.0)
                             for r in c.directions)
            first = cut[int(np.argmin(times))][0]
            # What the first direction to stop delivered (a quota counts each direction on its own).
            delivered = int(first.size[~first.lost_mask].sum())
            headers = (48 if ":" in first.sent_flow[0] else 28) * int(np.count_nonzero(~first.lost_mask))
            lost_after = sum(int(np.count_nonzero(r.lost_mask[r.send_time >= t])) for r, t in cut)
            return Finding(
                pattern="cutoff",
                confidence=1.0,
                summary=(
                    f"every direction stopped arriving at {t_cut - call_start:.2f} s "
                    f"into the call while its sender went on ({lost_after} packets sent after it, none "
                    f"delivered); the first to stop had delivered {delivered} payload bytes: a cut-off, seen at both ends"
                ),
                evidence=(
                    Evidence("directions_stopped", len(cut)),
                    Evidence("sent_after_stop", lost_after, "packets"),
                    Evidence("delivered_before", delivered, "B"),
                ),
                params=(
                    Evidence("time_s", round(t_cut - call_start, 3), "s"),
                    Evidence("bytes", delivered, "B"),
                    Evidence("ip_bytes", delivered + headers, "B"),
                ),
            )
    if (cut or never) and flowing:
        blocked = [f"{'{}:{} > {}:{}'.format(*r.sent_flow)} from {t:.2f} s" for r, t in cut]
        blocked += [f"{'{}:{} > {}:{}'.format(*f)} from its start" for f in never]
        return Finding(
            pattern="one-way",
            confidence=1.0,
            summary=(
                f"{'; '.join(blocked)}: sent but not delivered, while "
                f"{len(flowing)} other direction{'s' if len(flowing) > 1 else ''} delivered to the end: "
                f"one-way blocking, seen at both ends"
            ),
            evidence=(
                Evidence("directions_blocked", len(blocked)),
                Evidence("directions_flowing", len(flowing)),
            ),
        )
    found = [v[0] for v in verdicts if v[0] is not None]
    return strongest(found) if found else None


#: Call-level patterns a single capture proves without any media crossing.
SETUP_PATTERNS = frozenset({"setup-blocked", "one-way", "cutoff"})


def pair_diagnosis(a: str | os.PathLike, b: str | os.PathLike) -> Diagnosis:
    """The diagnosis of a call captured at both ends.

    Media both captures saw is judged by :func:`judge_pair`. When no media
    crossed at all (nothing in common), what each end saw of the set-up
    decides: the strongest call-level finding (set-up blocked, one-way, cut-off)
    of either capture's own diagnosis.
    """
    try:
        c = compare(a, b)
    except NoCommonFlowsError:
        from callscope.analysis import analyze

        found = [f for p in (a, b) for f in analyze(p).diagnosis.findings
                 if f.pattern in SETUP_PATTERNS and f.confidence >= REPORT_THRESHOLD]
        best = strongest(found)
        note = "no media crossed between the two captures"
    else:
        verdicts = [diagnose_direction(r, f"d{i + 1}") for i, r in enumerate(c.directions)]
        best = judge_pair(c, verdicts)
        found = [f for _, fs in verdicts for f in fs]
        if best is not None and best not in found:
            found.insert(0, best)
        note = f"{len(c.directions)} directions followed packet by packet"
    if best is None:
        return Diagnosis(findings=tuple(found), notes=(note,))
    return Diagnosis(findings=tuple(found), verdict=best.pattern, verdict_confidence=best.confidence,
                     notes=(note,))
