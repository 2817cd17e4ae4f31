"""callscope's per-stream numbers beside Wireshark's, every difference explained.

:func:`crosscheck` runs ``tshark -q -o rtp.heuristic_rtp:TRUE -z rtp,streams``
and :func:`callscope.analyze` on the same capture and compares, stream by
stream, the figures Wireshark prints: packets, lost, max delta, mean and max
jitter. callscope reproduces Wireshark's definitions exactly
(:mod:`callscope.metrics.wireshark_rtp`) but reports its own reading where
Wireshark's is misleading, so a difference is either one of those deliberate
ones, checked against the numbers that explain it, or a real disagreement:

- *lost*: Wireshark's lost is ``expected - received`` with ``expected`` from
  the first and the **last** sequence number (RFC 3550 §6.4.1 / A.3 computed
  naively). A duplicate copy cancels a loss (-1 for one duplicate and no
  loss), a late packet at the end shortens ``expected``, and a sequence
  restart makes the figure meaningless. callscope reports the sequence
  numbers never received (``missing``) with ``duplicates``, ``reordered``
  and ``sequence_restarts`` beside it. The difference is explained when
  callscope's Wireshark-compatible ``lost`` equals Wireshark's and one of
  those causes is present.
- *jitter*: Wireshark knows no clock rate for a dynamic payload type without
  SDP and then prints jitter 0; callscope infers the rate from timestamps
  (``clock_source`` ``inferred``; ``opus`` is always 48 kHz, RFC 7587 §4.1).
- Streams only Wireshark lists: its RTP heuristic accepts any single packet
  whose first bits look like RTP version 2, so encrypted traffic yields
  one-packet "streams" with random SSRCs; callscope requires
  :data:`~callscope.media.confirm.MIN_CONFIRMING_PAIRS` consistent
  consecutive pairs and rejects them.
- Streams only callscope lists: opaque media (no RTP header: nothing
  Wireshark's RTP analysis can see), RTP carried in TURN, and flows a
  port-registered dissector took before Wireshark's heuristic could (compare
  them with ``decode_as``).

Tolerances are those of the project's conformance checker
(``shared/conformance/check``).
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from callscope.capture.tshark_decoder import find_tshark
from callscope.errors import CaptureError

#: Exact figures (conformance checker): packets and lost.
#: Max delta: within this many ms or this fraction of Wireshark's value.
DELTA_ABS_MS, DELTA_REL = 0.01, 0.001
#: Mean and max jitter: within this many ms or this fraction.
JITTER_ABS_MS, JITTER_REL = 0.02, 0.01

SAME, EXPLAINED, UNEXPLAINED = "same", "explained", "unexplained"

_ROW = re.compile(
    r"^\s*(?P<start>[\d.]+)\s+(?P<end>[\d.]+)\s+(?P<src>\S+)\s+(?P<sport>\d+)\s+"
    r"(?P<dst>\S+)\s+(?P<dport>\d+)\s+(?P<ssrc>0x[0-9A-Fa-f]+)\s+(?P<payload>.*?)\s+"
    r"(?P<pkts>\d+)\s+(?P<lost>-?\d+)\s+\((?P<lostpct>[-\d.]+)%\)\s+"
    r"(?P<dmin>-?[\d.]+)\s+(?P<dmean>-?[\d.]+)\s+(?P<dmax>-?[\d.]+)\s+"
    r"(?P<jmin>-?[\d.]+)\s+(?P<jmean>-?[\d.]+)\s+(?P<jmax>-?[\d.]+)\s*(?P<problem>X?)\s*$"
)


@dataclass(frozen=True)
class WiresharkStream:
    """One row of ``tshark -z rtp,streams`` (times in ms, as printed)."""

    src: str
    src_port: int
    dst: str
    dst_port: int
    ssrc: int
    payload: str
    packets: int
    lost: int
    delta_max_ms: float
    jitter_mean_ms: float
    jitter_max_ms: float
    problem: bool

    @property
    def key(self) -> tuple:
        return (_addr(self.src), self.src_port, _addr(self.dst), self.dst_port, self.ssrc)

    @property
    def label(self) -> str:
        return f"{self.src}:{self.src_port} -> {self.dst}:{self.dst_port} ssrc 0x{self.ssrc:08X}"


@dataclass(frozen=True)
class Figure:
    """One figure of one stream: Wireshark's value, callscope's, and the verdict."""

    name: str
    wireshark: float | int | None
    callscope: float | int | None
    status: str  # SAME, EXPLAINED or UNEXPLAINED
    reason: str = ""


@dataclass(frozen=True)
class StreamCheck:
    """A stream as both tools see it (either side may be missing)."""

    label: str
    wireshark: WiresharkStream | None
    stream_id: str | None  # callscope's stream id
    figures: tuple[Figure, ...]
    status: str
    reason: str = ""


@dataclass(frozen=True)
class Crosscheck:
    """The whole comparison for one capture."""

    path: str
    tshark_version: str
    decode_as: tuple[int, ...]
    streams: tuple[StreamCheck, ...]

    @property
    def unexplained(self) -> int:
        return sum(s.status == UNEXPLAINED for s in self.streams)

    @property
    def ok(self) -> bool:
        return self.unexplained == 0


def parse_rtp_streams(text: str) -> tuple[WiresharkStream, ...]:
    """The rows of ``tshark -q -z rtp,streams`` output."""
    out = []
    for line in text.splitlines():
        m = _ROW.match(line)
        if m:
            out.append(WiresharkStream(
                src=m["src"], src_port=int(m["sport"]), dst=m["dst"], dst_port=int(m["dport"]),
                ssrc=int(m["ssrc"], 16), payload=m["payload"], packets=int(m["pkts"]), lost=int(m["lost"]),
                delta_max_ms=float(m["dmax"]), jitter_mean_ms=float(m["jmean"]),
                jitter_max_ms=float(m["jmax"]), problem=m["problem"] == "X",
            ))
    return tuple(out)


def wireshark_rtp_streams(path: str | os.PathLike, decode_as: Sequence[int] = ()) -> tuple[tuple[WiresharkStream, ...], str]:
    """Run Wireshark's RTP stream analysis (heuristic RTP on); return its rows and tshark's version."""
    tshark = find_tshark()
    cmd = [tshark.path, "-n", "-q", "-r", str(path), "-o", "rtp.heuristic_rtp:TRUE"]
    for port in decode_as:
        cmd += ["-d", f"udp.port=={int(port)},rtp"]
    cmd += ["-z", "rtp,streams"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode and "cut short" not in proc.stderr:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("Running as user")]
        raise CaptureError(f"tshark failed: {' '.join(lines[-2:]) or f'exit {proc.returncode}'}", str(path))
    return parse_rtp_streams(proc.stdout), tshark.version


def crosscheck(path: str | os.PathLike, decode_as: Sequence[int] = ()) -> Crosscheck:
    """Compare callscope's streams in ``path`` with Wireshark's ``rtp,streams``.

    Parameters
    ----------
    path : path-like
        The capture.
    decode_as : sequence of int
        UDP ports both tools treat as RTP (``-d udp.port==P,rtp`` for tshark).

    Returns
    -------
    Crosscheck
        One :class:`StreamCheck` per stream either tool reports; ``ok`` is
        False when a difference has no explanation.

    Examples
    --------
    >>> crosscheck("fixtures/rtpproxy__dups.a.pcap").ok   # doctest: +SKIP
    True
    """
    from callscope.analysis import analyze

    decode_as = tuple(int(p) for p in decode_as)
    report = analyze(path, decode_as=decode_as)  # first: its errors name what is wrong with the file
    ws_rows, version = wireshark_rtp_streams(path, decode_as)
    ours = list(report.streams)
    used: set[str] = set()
    checks = []
    for w in ws_rows:
        s = _match(w, ours, used)
        if s is None:
            checks.append(_only_wireshark(w, ours))
        else:
            used.add(s.id)
            checks.append(_compare(w, s, report.metrics[s.id]))
    ws_flows = {(_addr(w.src), w.src_port, _addr(w.dst), w.dst_port) for w in ws_rows}
    for s in ours:
        if s.id not in used:
            checks.append(_only_callscope(s, ws_flows, decode_as))
    return Crosscheck(path=str(path), tshark_version=version, decode_as=decode_as, streams=tuple(checks))


def _addr(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _key(s) -> tuple:
    return (_addr(s.src), s.src_port, _addr(s.dst), s.dst_port, s.ssrc)


def _match(w: WiresharkStream, ours, used: set[str]):
    for s in ours:
        if s.id not in used and s.kind == "rtp" and _key(s) == w.key:
            return s
    return None


def _close(a: float, b: float, abs_tol: float, rel_tol: float) -> bool:
    return abs(a - b) <= max(abs_tol, rel_tol * abs(b))


def _compare(w: WiresharkStream, s, m) -> StreamCheck:
    figures = (
        _packets(w, m),
        _lost(w, m),
        _delta(w, m),
        _jitter("jitter_mean_ms", w.jitter_mean_ms, m.jitter_mean_ms, w, s),
        _jitter("jitter_max_ms", w.jitter_max_ms, m.jitter_max_ms, w, s),
    )
    worst = UNEXPLAINED if any(f.status == UNEXPLAINED for f in figures) else (
        EXPLAINED if any(f.status == EXPLAINED for f in figures) else SAME)
    return StreamCheck(label=w.label, wireshark=w, stream_id=s.id, figures=figures, status=worst)


def _packets(w: WiresharkStream, m) -> Figure:
    status = SAME if m.packets == w.packets else UNEXPLAINED
    return Figure("packets", w.packets, m.packets, status)


def _lost(w: WiresharkStream, m) -> Figure:
    """Wireshark's lost against callscope's missing sequence numbers."""
    if w.lost == m.missing:
        return Figure("lost", w.lost, m.missing, SAME)
    causes = []
    if m.duplicates:
        copies = "1 duplicate copy cancels" if m.duplicates == 1 else f"{m.duplicates} duplicate copies each cancel"
        causes.append(f"{copies} one loss in Wireshark's expected - received")
    if m.reordered:
        causes.append(f"{m.reordered} packet(s) arrived out of order; Wireshark's expected ends at the "
                      "last packet's number, not the highest")
    if m.sequence_restarts:
        causes.append(f"the sequence restarted {m.sequence_restarts} time(s); Wireshark's expected spans "
                      "the jump, so its lost is meaningless")
    what = (f"callscope counts {m.missing} sequence number(s) never received "
            f"(its Wireshark-compatible lost is {m.lost})")
    if causes and (m.lost == w.lost or m.sequence_restarts):
        return Figure("lost", w.lost, m.missing, EXPLAINED, f"{what}: " + "; ".join(causes))
    return Figure("lost", w.lost, m.missing, UNEXPLAINED, what)


def _delta(w: WiresharkStream, m) -> Figure:
    ours = m.delta_max_ms
    if w.packets < 2 and ours is None:
        return Figure("delta_max_ms", w.delta_max_ms, ours, SAME)
    if ours is not None and _close(ours, w.delta_max_ms, DELTA_ABS_MS, DELTA_REL):
        return Figure("delta_max_ms", w.delta_max_ms, ours, SAME)
    return Figure("delta_max_ms", w.delta_max_ms, ours, UNEXPLAINED)


def _jitter(name: str, theirs: float, ours: float | None, w: WiresharkStream, s) -> Figure:
    if w.jitter_max_ms == 0:  # Wireshark computed no jitter (no clock rate, or one packet)
        if not ours:
            return Figure(name, theirs, ours, SAME)
        if s.clock_source in ("inferred", "opus"):
            how = ("inferred from RTP timestamps against arrival times" if s.clock_source == "inferred"
                   else "Opus always runs at 48 kHz (RFC 7587 §4.1)")
            return Figure(name, theirs, ours, EXPLAINED,
                          f"Wireshark knows no clock rate for dynamic payload type {s.payload_type} without "
                          f"SDP and computes no jitter; callscope uses {s.clock_rate} Hz ({how})")
        return Figure(name, theirs, ours, UNEXPLAINED,
                      f"Wireshark computed no jitter though callscope's clock rate comes from {s.clock_source}")
    if ours is not None and _close(ours, theirs, JITTER_ABS_MS, JITTER_REL):
        return Figure(name, theirs, ours, SAME)
    return Figure(name, theirs, ours, UNEXPLAINED)


def _only_wireshark(w: WiresharkStream, ours) -> StreamCheck:
    from callscope.media.confirm import MIN_CONFIRMING_PAIRS

    flow = (_addr(w.src), w.src_port, _addr(w.dst), w.dst_port)
    opaque = [s.id for s in ours if s.kind == "opaque" and _key(s)[:4] == flow]
    if w.packets <= MIN_CONFIRMING_PAIRS:
        reason = (f"Wireshark's RTP heuristic took {w.packets} packet(s) of this 5-tuple for a stream; callscope "
                  f"needs {MIN_CONFIRMING_PAIRS} consistent consecutive pairs before it calls a flow RTP and "
                  "rejects it as junk (encrypted payloads look like RTP to a one-packet heuristic)")
        if opaque:
            reason += f"; callscope reports the flow as opaque media {', '.join(opaque)}"
        return StreamCheck(w.label, w, None, (), EXPLAINED, reason)
    return StreamCheck(w.label, w, None, (), UNEXPLAINED, "callscope found no RTP stream with this SSRC and 5-tuple")


def _only_callscope(s, ws_flows: set, decode_as: tuple[int, ...]) -> StreamCheck:
    label = f"{s.src}:{s.src_port} -> {s.dst}:{s.dst_port}" + (
        f" ssrc 0x{s.ssrc:08X}" if s.ssrc is not None else f" ({s.kind})")
    if s.kind == "opaque":
        return StreamCheck(label, None, s.id, (), EXPLAINED,
                           "opaque media (no RTP header): nothing Wireshark's RTP analysis can see")
    if s.transport != "udp":
        inside = "TURN" if s.transport.startswith("turn") else s.transport
        return StreamCheck(label, None, s.id, (), EXPLAINED,
                           f"RTP carried inside {inside} ({s.transport}): Wireshark's rtp,streams does not "
                           "look inside it")
    if _key(s)[:4] not in ws_flows and s.dst_port not in decode_as and s.src_port not in decode_as:
        return StreamCheck(label, None, s.id, (), EXPLAINED,
                           "Wireshark did not decode this flow as RTP (a dissector registered for the port, "
                           f"or its heuristic, took it): compare with --decode-as {s.dst_port}")
    return StreamCheck(label, None, s.id, (), UNEXPLAINED, "Wireshark lists no stream with this SSRC and 5-tuple")
