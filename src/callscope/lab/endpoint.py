"""A lab endpoint: real UDP sockets, paced by the clock.

Run inside an endpoint namespace by the lab::

    ip netns exec cs-lab-a python -m callscope.lab.endpoint CONFIG.json

One single-threaded event loop: every transmission has an absolute deadline
(``time.perf_counter`` mapped once to the wall clock the captures use), the
loop sleeps in ``select`` on the sockets until the next deadline, answers
what arrives (SIP, STUN, RTCP sender reports) and keeps RTCP receiver
statistics of what arrives (RFC 3550 Appendix A.1, A.3, A.8), so its report
blocks are true. Every send is logged (scheduled time, actual time, size,
``sendto`` status) to the JSON file named in the config. The process exits
by itself at the config's ``stop_at`` (a wall-clock deadline), whatever
happens.

Media kinds:

- RTP G.711 µ-law (PT 0, 8 kHz, 160 B every 20 ms, RFC 3551 §4.5.14);
- RTP Opus-like VBR (PT 111, 48 kHz clock, RFC 7587 §4.1), sizes following a
  talk/pause envelope; with DTX one small frame per 400 ms in pauses;
- opaque: no RTP header, random bytes, voice-like sizes at 50 pps in talk,
  and with DTX fewer, smaller packets in pauses (as encrypted messenger
  calls send comfort noise).

Talk spurts and pauses are exponential with the means of ITU-T P.59 (§5,
Table 1: talkspurt 1.004 s, pause 1.587 s).
"""

from __future__ import annotations

import errno
import heapq
import json
import os
import selectors
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from itertools import count
from typing import Any, cast

import numpy as np

RTP_VERSION = 2  # RFC 3550 §5.1
RTP_HEADER = struct.Struct("!BBHII")  # RFC 3550 §5.1: V/P/X/CC, M/PT, seq, timestamp, SSRC
RTCP_SR, RTCP_RR, RTCP_SDES, RTCP_BYE = 200, 201, 202, 203  # RFC 3550 §12.1
SDES_CNAME = 1  # RFC 3550 §6.5.1
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01
RTCP_INTERVAL_S = 5.0  # RFC 3550 §6.2: minimum interval
STUN_MAGIC = 0x2112A442  # RFC 5389 §6
STUN_BINDING_REQUEST = 0x0001  # RFC 5389 §18.1
STUN_BINDING_SUCCESS = 0x0101
STUN_XOR_MAPPED_ADDRESS = 0x0020  # RFC 5389 §15.2
STUN_RTO_S = 0.5  # RFC 5389 §7.2.1: initial RTO
STUN_RC = 7  # RFC 5389 §7.2.1: requests sent per transaction
STUN_RM = 16  # RFC 5389 §7.2.1: final wait, in RTOs
CONSENT_INTERVAL_S = 5.0  # RFC 7675 §5.1: consent checks every 5 s, randomised 0.8-1.2
TALKSPURT_MEAN_S = 1.004  # ITU-T P.59 Table 1
PAUSE_MEAN_S = 1.587  # ITU-T P.59 Table 1
OPUS_DTX_INTERVAL_S = 0.4  # RFC 7587 §3.1.3 / libopus: one frame per 400 ms in DTX
OPAQUE_DTX_INTERVAL_S = 0.06


#: Receive buffer of every endpoint socket. Under CPU load (a test suite beside
#: a corpus run) the default 208 kB let the cross-traffic sink overflow, and
#: the run's verification then counted those socket drops as unexplained loss.
RECEIVE_BUFFER_BYTES = 4 << 20


def large_receive_buffer(s: socket.socket) -> None:
    """Ask for :data:`RECEIVE_BUFFER_BYTES`; as root past ``rmem_max``, else as much as allowed."""
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    try:
        if force is None:
            raise OSError
        s.setsockopt(socket.SOL_SOCKET, force, RECEIVE_BUFFER_BYTES)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)


@dataclass
class RxStats:
    """RFC 3550 Appendix A.1/A.3/A.8 receiver state of one SSRC."""

    clock: int
    base_seq: int = -1
    max_seq: int = 0
    cycles: int = 0
    received: int = 0
    expected_prior: int = 0
    received_prior: int = 0
    transit: float | None = None
    jitter: float = 0.0
    lsr: int = 0
    lsr_arrival: float = 0.0

    def update(self, seq: int, ts: int, arrival: float) -> None:
        if self.base_seq < 0:
            self.base_seq = self.max_seq = seq
        else:
            delta = (seq - self.max_seq) & 0xFFFF
            if 0 < delta < 3000:
                if seq < self.max_seq:
                    self.cycles += 1 << 16
                self.max_seq = seq
        self.received += 1
        transit = arrival * self.clock - ts
        if self.transit is not None:
            d = abs(transit - self.transit)
            self.jitter += (d - self.jitter) / 16.0  # RFC 3550 A.8
        self.transit = transit

    def report_block(self, ssrc: int, now: float) -> bytes:
        """One RFC 3550 §6.4.1 report block (fraction and cumulative lost, jitter, LSR, DLSR)."""
        extended = self.cycles + self.max_seq
        expected = extended - self.base_seq + 1
        lost = expected - self.received
        interval_expected = expected - self.expected_prior
        interval_received = self.received - self.received_prior
        self.expected_prior, self.received_prior = expected, self.received
        lost_interval = interval_expected - interval_received
        fraction = 0 if interval_expected <= 0 or lost_interval <= 0 else (lost_interval << 8) // interval_expected
        lost = max(-(1 << 23), min((1 << 23) - 1, lost)) & 0xFFFFFF
        dlsr = int((now - self.lsr_arrival) * 65536) if self.lsr else 0
        return struct.pack("!IIIIII", ssrc, (min(fraction, 255) << 24) | lost, extended & 0xFFFFFFFF,
                           int(self.jitter), self.lsr, dlsr)


#: epoll waits in whole milliseconds (rounded up): the loop waits in it until this
#: close to a deadline, then sleeps the rest with nanosleep (microsecond precision).
EPOLL_SLACK_S = 0.002


def coarse_wait(wait: float) -> float:
    """How long to wait in ``select`` (0 when the deadline is too close for its ms timer)."""
    return max(0.0, wait - EPOLL_SLACK_S)


def fine_wait(wait: float) -> None:
    """Sleep the last stretch before a deadline precisely (no-op when it is not that close)."""
    if 0.0 < wait <= EPOLL_SLACK_S:
        time.sleep(wait)


def ntp64(t: float) -> tuple[int, int]:
    """NTP timestamp (RFC 5905 §6) of Unix time ``t``: seconds and fraction."""
    sec = int(t) + NTP_EPOCH_OFFSET
    return sec & 0xFFFFFFFF, int((t % 1.0) * (1 << 32)) & 0xFFFFFFFF


def media_schedule(cfg: dict[str, Any], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Departure offsets (s from media start), payload sizes, RTP timestamp steps, marker bits.

    Frames of ``ptime`` (20 ms; 40 ms after a downshift) follow a talk/pause
    envelope; with DTX pauses send one small frame per DTX interval. With a
    replay pattern the departure offsets follow the real capture's gaps
    (tiled), while RTP timestamps stay nominal, so the sender's own jitter
    is on the wire as it was in that capture.
    """
    codec = cfg["codec"]
    duration = float(cfg["stop_s"]) - float(cfg["start_s"])
    dtx = bool(cfg.get("dtx"))
    downshift = cfg.get("downshift_at_s")
    clock = 8000 if codec == "pcmu" else 48000
    times: list[float] = []
    sizes: list[int] = []
    steps: list[int] = []
    marks: list[bool] = []
    t, talking, next_switch = 0.0, True, rng.exponential(TALKSPURT_MEAN_S)
    level = 1.0
    while t < duration:
        while t >= next_switch:
            talking = not talking
            next_switch += rng.exponential(TALKSPURT_MEAN_S if talking else PAUSE_MEAN_S)
        down = downshift is not None and t + float(cfg["start_s"]) >= downshift
        ptime = 0.04 if down else 0.02
        factor = 0.6 if down else 1.0
        level = 0.8 * level + 0.2 * rng.uniform(0.6, 1.4)
        if codec == "pcmu":
            size, step = int(8000 * ptime), int(8000 * ptime)
            gap = ptime
        elif talking or not dtx:
            if codec == "opus":
                base = 100.0 * level if talking else 62.0
                size = int(np.clip(base * factor * ptime / 0.02 + rng.normal(0, 6), 20, 400))
            else:
                base = 115.0 * level if talking else 70.0
                size = int(np.clip(base * factor * ptime / 0.02 + rng.normal(0, 10), 30, 400))
            step, gap = int(clock * ptime), ptime
        else:
            interval = OPUS_DTX_INTERVAL_S if codec == "opus" else OPAQUE_DTX_INTERVAL_S
            size = int(rng.integers(3, 6)) if codec == "opus" else int(rng.integers(32, 48))
            step, gap = int(clock * interval), interval
        marks.append(bool(talking and (not sizes or sizes[-1] < 20)))
        times.append(t)
        sizes.append(size)
        steps.append(step)
        t += gap
    offsets = np.asarray(times)
    replay = cfg.get("replay_gaps")
    if replay:
        gaps = np.asarray(replay, float)
        reps = int(np.ceil(len(offsets) / len(gaps))) + 1
        tiled = np.tile(gaps, reps)[: max(len(offsets) - 1, 0)]
        offsets = np.concatenate([[0.0], np.cumsum(tiled)])
        keep = offsets < duration
        offsets = offsets[keep]
        sizes, steps, marks = sizes[: len(offsets)], steps[: len(offsets)], marks[: len(offsets)]
    return (offsets + float(cfg["start_s"]), np.asarray(sizes, np.int64),
            np.asarray(steps, np.int64), np.asarray(marks, bool))


@dataclass
class Stream:
    cfg: dict[str, Any]
    sock: socket.socket
    rtcp_sock: socket.socket | None
    times: np.ndarray
    sizes: np.ndarray
    steps: np.ndarray
    marks: np.ndarray
    log_sched: list[float] = field(default_factory=list)
    log_sent: list[float] = field(default_factory=list)
    log_size: list[int] = field(default_factory=list)
    log_status: list[int] = field(default_factory=list)
    log_seq: list[int] = field(default_factory=list)
    octets: int = 0
    ts: int = 0
    seq: int = 0
    rtcp_sent: int = 0


class Endpoint:
    """The event loop of one endpoint (see the module docstring)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.t0 = float(cfg["t0"])
        self.stop_at = float(cfg["stop_at"])
        self.rng = np.random.default_rng(int(cfg["seed"]))
        self.local = cfg["local"]
        self.sel = selectors.DefaultSelector()
        self.events: list[tuple[float, int, Any, tuple]] = []
        self.order = count()
        self.socks: dict[int, socket.socket] = {}
        self.rx: dict[tuple[int, int], RxStats] = {}
        self.rx_counts: dict[str, int] = {}
        self.log: dict[str, Any] = {"role": cfg["role"], "streams": [], "stun": [], "sip": [],
                                    "rtcp": [], "sink_received": 0}
        self.stun_pending: dict[bytes, dict[str, Any]] = {}
        self.offset = time.time() - time.perf_counter()
        self.streams: list[Stream] = []

    # -- sockets and timers -------------------------------------------------
    def sock(self, port: int) -> socket.socket:
        if port not in self.socks:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            large_receive_buffer(s)
            s.bind((self.local, port))
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, port)
            self.socks[port] = s
        return self.socks[port]

    def at(self, rel_s: float, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` at ``rel_s`` seconds after media start (wall-clock deadline)."""
        heapq.heappush(self.events, (self.t0 + rel_s, next(self.order), fn, args))

    def now(self) -> float:
        return time.perf_counter() + self.offset

    def send(self, s: socket.socket, data: bytes, addr: tuple[str, int]) -> tuple[float, int]:
        try:
            s.sendto(data, addr)
            status = 0
        except OSError as e:
            status = e.errno or errno.EIO
        return time.time(), status

    # -- setup --------------------------------------------------------------
    def build(self) -> None:
        cfg = self.cfg
        if cfg.get("sink_port"):
            self.sock(int(cfg["sink_port"]))
        for scfg in cfg.get("streams", []):
            s = self.sock(int(scfg["local_port"]))
            rs = self.sock(int(scfg["local_port"]) + 1) if scfg.get("rtcp") else None
            if scfg.get("send", True):
                times, sizes, steps, marks = media_schedule(scfg, self.rng)
            else:  # receive only: RTCP receiver reports, no media
                times, sizes, steps, marks = (np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64),
                                              np.zeros(0, bool))
            st = Stream(scfg, s, rs, times, sizes, steps, marks, ts=int(scfg["ts0"]), seq=int(scfg["seq0"]))
            self.streams.append(st)
            for k in range(len(times)):
                self.at(float(times[k]), self.send_media, st, k)
            if scfg.get("rtcp"):
                t = float(scfg["start_s"]) + RTCP_INTERVAL_S * 0.5 * self.rng.uniform(0.5, 1.5)
                while t < float(scfg["stop_s"]):
                    self.at(t, self.send_rtcp, st, False)
                    t += RTCP_INTERVAL_S * self.rng.uniform(0.5, 1.5)  # RFC 3550 §6.3.1
                self.at(float(scfg["stop_s"]) + 0.02, self.send_rtcp, st, True)
            if scfg.get("ice"):
                t = float(scfg["start_s"]) - 0.3
                self.at(t, self.stun_transaction, s, self.media_peer(scfg, t), "ice", False)
                t = float(scfg["start_s"]) + CONSENT_INTERVAL_S * self.rng.uniform(0.8, 1.2)
                while t < float(scfg["stop_s"]):
                    self.at(t, self.stun_transaction, s, self.media_peer(scfg, t), "consent", False)
                    t += CONSENT_INTERVAL_S * self.rng.uniform(0.8, 1.2)  # RFC 7675 §5.1
        for call in cfg.get("sip_calls", []):
            self.sock(int(call["local_port"]))
            if call["role"] == "uac":
                self.at(float(call["invite_s"]), self.sip_invite, call)
                self.at(float(call["bye_s"]), self.sip_bye, call)
        if cfg.get("stun_server_port"):
            self.sock(int(cfg["stun_server_port"]))
        client = cfg.get("stun_client")
        if client:
            for i, port in enumerate(client["ports"]):
                s = self.sock(int(port))
                self.at(float(client["start_s"]) + 0.05 * i, self.stun_transaction, s,
                        (client["server"], int(client["server_port"])), "setup", True)

    def media_peer(self, scfg: dict[str, Any], rel_s: float) -> tuple[str, int]:
        relay = scfg.get("relay")
        if relay and rel_s < float(relay["until_s"]):
            return relay["addr"], int(relay["port"])
        return scfg["peer"], int(scfg["peer_port"])

    # -- media --------------------------------------------------------------
    def send_media(self, st: Stream, k: int, sched: float) -> None:
        scfg = st.cfg
        size = int(st.sizes[k])
        payload = self.rng.bytes(size)
        if scfg["codec"] == "opaque":
            data = payload
        else:
            if k:
                st.ts = (st.ts + int(st.steps[k - 1])) & 0xFFFFFFFF
            b1 = (0x80 if st.marks[k] else 0) | int(scfg["pt"])
            data = RTP_HEADER.pack(RTP_VERSION << 6, b1, st.seq & 0xFFFF, st.ts, int(scfg["ssrc"])) + payload
        peer = self.media_peer(scfg, float(st.times[k]))
        sent, status = self.send(st.sock, data, peer)
        st.log_sched.append(sched)
        st.log_sent.append(sent)
        st.log_size.append(len(data))
        st.log_status.append(status)
        st.log_seq.append(st.seq & 0xFFFF)
        st.seq += 1
        if status == 0:
            st.octets += size

    def send_rtcp(self, st: Stream, bye: bool, sched: float) -> None:
        scfg = st.cfg
        if st.rtcp_sock is None:
            return
        now = time.time()
        ssrc = int(scfg["ssrc"])
        blocks = b"".join(r.report_block(src, now) for (port, src), r in self.rx.items()
                          if port == int(scfg["local_port"]))
        rc = len(blocks) // 24
        sending = len(st.log_sent) > 0 and scfg["codec"] != "opaque"
        if sending:
            sec, frac = ntp64(now)
            rtp_ts = (st.ts + int((now - st.log_sent[-1]) * (8000 if scfg["codec"] == "pcmu" else 48000))) & 0xFFFFFFFF
            body = struct.pack("!IIIIII", ssrc, sec, frac, rtp_ts, len(st.log_sent) & 0xFFFFFFFF,
                               st.octets & 0xFFFFFFFF) + blocks
            pt = RTCP_SR
        else:
            body = struct.pack("!I", ssrc) + blocks
            pt = RTCP_RR
        pkt = struct.pack("!BBH", 0x80 | rc, pt, len(body) // 4) + body
        cname = f"{self.cfg['role']}@callscope.lab".encode()
        chunk = struct.pack("!IBB", ssrc, SDES_CNAME, len(cname)) + cname + b"\x00"
        chunk += b"\x00" * (-len(chunk) % 4)
        pkt += struct.pack("!BBH", 0x81, RTCP_SDES, len(chunk) // 4) + chunk
        if bye:
            pkt += struct.pack("!BBHI", 0x81, RTCP_BYE, 1, ssrc)
        peer_host, peer_port = self.media_peer(scfg, sched - self.t0)
        sent, status = self.send(st.rtcp_sock, pkt, (peer_host, peer_port + 1))
        st.rtcp_sent += 1
        self.log["rtcp"].append([scfg["name"], sent, status, pt, rc, int(bye)])

    # -- STUN ---------------------------------------------------------------
    def stun_transaction(self, s: socket.socket, server: tuple[str, int], purpose: str, repeat: bool,
                         sched: float) -> None:
        """A Binding transaction: RFC 5389 §7.2.1 retransmissions at 0, RTO, 3 RTO, ... 63 RTO."""
        txid = self.rng.bytes(12)
        msg = struct.pack("!HHI", STUN_BINDING_REQUEST, 0, STUN_MAGIC) + txid
        tx: dict[str, Any] = {"txid": txid.hex(), "purpose": purpose, "sent": [], "answered": None}
        self.stun_pending[txid] = tx
        self.log["stun"].append(tx)
        rel = sched - self.t0
        offsets = [STUN_RTO_S * ((1 << i) - 1) for i in range(STUN_RC)]
        for off in offsets:
            self.at(rel + off, self.stun_retransmit, s, server, msg, txid)
        give_up = offsets[-1] + STUN_RM * STUN_RTO_S
        if repeat:
            self.at(rel + give_up, self.stun_transaction, s, server, purpose, repeat)

    def stun_retransmit(self, s: socket.socket, server: tuple[str, int], msg: bytes, txid: bytes,
                        sched: float) -> None:
        tx = self.stun_pending.get(txid)
        if tx is None or tx["answered"] is not None:
            return
        sent, status = self.send(s, msg, server)
        tx["sent"].append([sent, status])

    def stun_answer(self, s: socket.socket, data: bytes, addr: tuple[str, int]) -> None:
        mtype, _, _ = struct.unpack_from("!HHI", data)
        txid = data[8:20]
        if mtype == STUN_BINDING_REQUEST:
            ip = struct.unpack("!I", socket.inet_aton(addr[0]))[0] ^ STUN_MAGIC
            attr = struct.pack("!HHBBHI", STUN_XOR_MAPPED_ADDRESS, 8, 0, 1, addr[1] ^ (STUN_MAGIC >> 16), ip)
            resp = struct.pack("!HHI", STUN_BINDING_SUCCESS, len(attr), STUN_MAGIC) + txid + attr
            sent, status = self.send(s, resp, addr)
            self.log["stun"].append({"response_to": txid.hex(), "sent": [[sent, status]]})
        elif mtype == STUN_BINDING_SUCCESS:
            tx = self.stun_pending.get(txid)
            if tx is not None and tx["answered"] is None:
                tx["answered"] = time.time()

    # -- SIP ----------------------------------------------------------------
    def sip_send(self, call: dict[str, Any], text: str) -> None:
        s = self.sock(int(call["local_port"]))
        sent, status = self.send(s, text.replace("\n", "\r\n").encode(), (self.cfg["peer"], int(call["peer_port"])))
        self.log["sip"].append([sent, status, text.split("\n", 1)[0]])

    def sip_headers(self, call: dict[str, Any], method: str, cseq: int, request: bool) -> str:
        me, peer = self.local, self.cfg["peer"]
        lp = call["local_port"]
        return (f"Via: SIP/2.0/UDP {me}:{lp};branch=z9hG4bK{call['call_id'][:8]}{cseq}\n"
                f"From: <sip:caller@{me if call['role'] == 'uac' else peer}>;tag=a{call['call_id'][:6]}\n"
                f"To: <sip:callee@{peer if call['role'] == 'uac' else me}>"
                + ("" if request and method == "INVITE" else f";tag=b{call['call_id'][:6]}") + "\n"
                f"Call-ID: {call['call_id']}@callscope.lab\nCSeq: {cseq} {method}\n"
                f"Contact: <sip:{me}:{lp}>\nMax-Forwards: 70\n")

    def sdp(self, call: dict[str, Any]) -> str:
        codec = call["codec"]
        pt = 0 if codec == "pcmu" else 111
        rtpmap = "a=rtpmap:0 PCMU/8000" if codec == "pcmu" else "a=rtpmap:111 opus/48000/2"
        # A party that only listens says so (RFC 4566 §6): a one-way call by
        # design is not one whose other direction was blocked.
        sends = any(scfg.get("send", True) for scfg in self.cfg.get("streams", [])
                    if int(scfg["local_port"]) == int(call["media_port"]))
        direction = "sendrecv" if sends else "recvonly"
        return (f"v=0\no=- 1 1 IN IP4 {self.local}\ns=callscope lab\nc=IN IP4 {self.local}\nt=0 0\n"
                f"m=audio {call['media_port']} RTP/AVP {pt}\n{rtpmap}\na=ptime:20\na={direction}\n")

    def sip_invite(self, call: dict[str, Any], sched: float) -> None:
        body = self.sdp(call)
        self.sip_send(call, f"INVITE sip:callee@{self.cfg['peer']}:{call['peer_port']} SIP/2.0\n"
                      + self.sip_headers(call, "INVITE", 1, True)
                      + f"Content-Type: application/sdp\nContent-Length: {len(body.replace(chr(10), chr(13) + chr(10)))}\n\n"
                      + body)

    def sip_bye(self, call: dict[str, Any], sched: float) -> None:
        self.sip_send(call, f"BYE sip:callee@{self.cfg['peer']}:{call['peer_port']} SIP/2.0\n"
                      + self.sip_headers(call, "BYE", 2, True) + "Content-Length: 0\n\n")

    def sip_receive(self, port: int, data: bytes) -> None:
        calls = [c for c in self.cfg.get("sip_calls", []) if int(c["local_port"]) == port]
        if not calls:
            return
        text = data.decode(errors="replace")
        first = text.split("\r\n", 1)[0]
        call_ids = [c for c in calls if f"Call-ID: {c['call_id']}@" in text] or calls
        call = call_ids[0]
        if first.startswith("INVITE"):
            self.sip_send(call, "SIP/2.0 100 Trying\n" + self.sip_headers(call, "INVITE", 1, False)
                          + "Content-Length: 0\n\n")
            body = self.sdp(call)
            self.sip_send(call, "SIP/2.0 200 OK\n" + self.sip_headers(call, "INVITE", 1, False)
                          + f"Content-Type: application/sdp\nContent-Length: {len(body.replace(chr(10), chr(13) + chr(10)))}\n\n"
                          + body)
        elif first.startswith("SIP/2.0 200") and "CSeq: 1 INVITE" in text:
            self.sip_send(call, f"ACK sip:callee@{self.cfg['peer']}:{call['peer_port']} SIP/2.0\n"
                          + self.sip_headers(call, "ACK", 1, True) + "Content-Length: 0\n\n")
        elif first.startswith("BYE"):
            self.sip_send(call, "SIP/2.0 200 OK\n" + self.sip_headers(call, "BYE", 2, False)
                          + "Content-Length: 0\n\n")

    # -- receive ------------------------------------------------------------
    def receive(self, port: int, s: socket.socket) -> None:
        while True:
            try:
                data, addr = s.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            arrival = time.time()
            if port == self.cfg.get("sink_port"):
                self.log["sink_received"] += 1
                continue
            self.rx_counts[str(port)] = self.rx_counts.get(str(port), 0) + 1
            if len(data) >= 20 and data[0] < 2 and struct.unpack_from("!I", data, 4)[0] == STUN_MAGIC:
                self.stun_answer(s, data, addr)
            elif data[:3] in (b"INV", b"SIP", b"ACK", b"BYE"):
                self.sip_receive(port, data)
            elif len(data) >= 12 and data[0] >> 6 == RTP_VERSION:
                pt = data[1] & 0x7F
                if RTCP_SR <= data[1] <= RTCP_BYE:
                    if data[1] == RTCP_SR and len(data) >= 28:
                        ssrc, sec, frac = struct.unpack_from("!III", data, 4)
                        for (p, src), r in self.rx.items():
                            if p == port - 1 and src == ssrc:
                                r.lsr = ((sec & 0xFFFF) << 16) | (frac >> 16)  # RFC 3550 §6.4.1 LSR
                                r.lsr_arrival = arrival
                    continue
                _, _, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
                key = (port, ssrc)
                if key not in self.rx:
                    self.rx[key] = RxStats(8000 if pt == 0 else 48000)
                self.rx[key].update(seq, ts, arrival)

    # -- loop ---------------------------------------------------------------
    def run(self) -> None:
        self.build()
        while True:
            now = self.now()
            if now >= self.stop_at:
                break
            due = self.events[0][0] if self.events else self.stop_at
            wait = min(due, self.stop_at) - now
            for key, _ in self.sel.select(timeout=coarse_wait(wait)):
                self.receive(key.data, cast(socket.socket, key.fileobj))  # only sockets are registered
            fine_wait(min(due, self.stop_at) - self.now())
            now = self.now()
            while self.events and self.events[0][0] <= now:
                sched, _, fn, args = heapq.heappop(self.events)
                fn(*args, sched)
        self.write_log()

    def write_log(self) -> None:
        for st in self.streams:
            self.log["streams"].append({
                "name": st.cfg["name"], "codec": st.cfg["codec"], "ssrc": st.cfg.get("ssrc"),
                "local_port": st.cfg["local_port"], "peer_port": st.cfg["peer_port"],
                "seq": st.log_seq, "scheduled": st.log_sched, "sent": st.log_sent, "size": st.log_size,
                "status": st.log_status, "rtcp_sent": st.rtcp_sent,
            })
        self.log["rx_counts"] = self.rx_counts
        self.log["stun"] = [{k: v for k, v in tx.items()} for tx in self.log["stun"]]
        tmp = self.cfg["log"] + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.log, f)
        os.replace(tmp, self.cfg["log"])


#: SCHED_FIFO priority of the lab's paced processes: they sleep almost all the time,
#: and on a busy machine a normal-priority sender is seconds late now and then.
REALTIME_PRIORITY = 20


def realtime() -> bool:
    """Ask for real-time scheduling (root can); the kernel's RT throttling still bounds it."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
    except (OSError, AttributeError):
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m callscope.lab.endpoint CONFIG.json", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        cfg = json.load(f)
    ep = Endpoint(cfg)
    ep.log["realtime"] = realtime()
    ep.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
