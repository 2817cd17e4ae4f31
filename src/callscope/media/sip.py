"""SIP (RFC 3261) messages with SDP bodies (RFC 4566): who called whom, and where media goes.

What media discovery takes from signalling: for each Call-ID, the
address:port pairs in the SDP ``c=``/``m=`` lines (where each party wants to
receive media) and the ``a=rtpmap`` payload-type map (codec and clock rate of
dynamic payload types). Signalling is rare, so each message is parsed in
Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Compact header forms, RFC 3261 §7.3.3.
_COMPACT = {"i": "call-id", "f": "from", "t": "to", "c": "content-type", "l": "content-length"}
_RTPMAP = re.compile(r"^([0-9]{1,3})\s+([^/\s]+)/([0-9]{1,9})", re.ASCII)
#: A port or payload type as the grammar writes it (RFC 4566 §9: ASCII digits);
#: ``str.isdigit`` would also take superscripts, which ``int`` refuses.
_NUMBER = re.compile(r"[0-9]{1,5}", re.ASCII)
MAX_PORT = 65535  # RFC 768: 16-bit port
MAX_PAYLOAD_TYPE = 127  # RFC 3550 §5.1: 7 bits
#: Bytes of one message parsed at most: RFC 3261 §18.1.1 keeps SIP over UDP
#: well under 64 KB; a longer "message" (a pcapng block of megabytes, a TCP
#: stream of garbage) is cut here so that parsing stays linear and small.
MAX_SIP_BYTES = 65535
_URI = re.compile(r"<([^>]*)>")
#: Media direction attributes, RFC 4566 §6 (session- or media-level; sendrecv by default).
_DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})


class CryptoAttribute:
    """One ``a=crypto`` value (RFC 4568 §9.1): an SDES master key in the clear.

    Written out (JSON, tables) as its tag and suite only, so that reports and
    CI artefacts do not carry the key; :mod:`callscope.media.srtp` reads ``value``.
    """

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __str__(self) -> str:
        return " ".join(self.value.split()[:2]) + " inline:(key withheld)"

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CryptoAttribute) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


@dataclass(frozen=True)
class SdpMedia:
    """One ``m=`` section of an SDP body (RFC 4566 §5.14) with its ``a=rtpmap`` lines."""

    media: str  # "audio", "video", ...
    address: str  # from the media-level c= line, else the session-level one
    port: int
    proto: str  # "RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", ...
    payload_types: tuple[int, ...]
    rtpmap: tuple[tuple[int, str, int], ...]  # (payload type, encoding name, clock rate)
    rtcp_mux: bool = False
    direction: str = "sendrecv"  # RFC 4566 §6: sendrecv (default), sendonly, recvonly, inactive
    crypto: tuple[CryptoAttribute, ...] = ()  # RFC 4568 §9.1: SDES keys, see media.srtp

    @property
    def secure(self) -> bool:
        """SRTP profile (RFC 3711 §12: RTP/SAVP; RFC 5124: SAVPF)."""
        return "SAVP" in self.proto.upper()


@dataclass(frozen=True)
class SipMessage:
    """The parts of one SIP message media discovery uses."""

    frame: int
    time_ns: int
    start_line: str
    call_id: str | None
    from_uri: str | None
    to_uri: str | None
    session_name: str | None
    media: tuple[SdpMedia, ...]

    @property
    def status(self) -> int | None:
        if self.start_line.startswith("SIP/2.0 "):
            parts = self.start_line.split()
            return _number(parts[1], 999, None) if len(parts) > 1 else None
        return None

    @property
    def method(self) -> str | None:
        return None if self.status is not None else self.start_line.split(" ", 1)[0]


@dataclass(frozen=True)
class SipCall:
    """All signalling of one Call-ID."""

    call_id: str
    from_uri: str | None
    to_uri: str | None
    session_name: str | None
    first_frame: int
    methods: tuple[str, ...]  # requests seen, in order, without repeats
    final_status: int | None  # the last final (>= 200) response seen, if any
    media: tuple[SdpMedia, ...]
    #: First and last message, and the first BYE request (RFC 3261 §15), in
    #: seconds since the capture's first frame: whether the call was hung up
    #: as its media stopped, or its signalling outlived the media.
    first_time: float = 0.0
    last_time: float = 0.0
    bye_time: float | None = None


@dataclass(frozen=True)
class SipSummary:
    """Every call found in SIP signalling, in order of first message."""

    messages: int = 0
    calls: tuple[SipCall, ...] = ()


def _uri(value: str | None) -> str | None:
    """The URI of a From/To value (RFC 3261 §20.20): inside <...> when present."""
    if not value:
        return None
    m = _URI.search(value)
    if m:
        return m.group(1)
    return value.split(";")[0].strip() or None


def _number(text: str, largest: int, otherwise: int | None = 0) -> int | None:
    """``text`` as a number of ASCII digits no larger than ``largest``; ``otherwise`` if it is not one."""
    if _NUMBER.fullmatch(text) and int(text) <= largest:
        return int(text)
    return otherwise


def parse_sdp(body: str) -> tuple[str | None, tuple[SdpMedia, ...]]:
    """Session name and media sections of an SDP body (RFC 4566 §5).

    Parameters
    ----------
    body : str
        SDP text.

    Returns
    -------
    (session name or None, media sections)
    """
    session_name = None
    session_addr = ""
    session_direction = "sendrecv"
    sections: list[dict] = []
    for raw in body.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        key, value = line[0], line[2:].strip()
        cur = sections[-1] if sections else None
        if key == "s" and cur is None:
            session_name = value
        elif key == "c":
            parts = value.split()
            addr = parts[2].split("/")[0] if len(parts) >= 3 else ""  # RFC 4566 §5.7
            if cur is None:
                session_addr = addr
            else:
                cur["address"] = addr
        elif key == "m":
            parts = value.split()
            if len(parts) < 3:
                continue
            sections.append(
                {
                    "media": parts[0],
                    "port": _number(parts[1].split("/")[0], MAX_PORT),
                    "proto": parts[2],
                    "pts": tuple(pt for pt in (_number(p, MAX_PAYLOAD_TYPE, None) for p in parts[3:])
                                 if pt is not None),
                    "rtpmap": [],
                    "mux": False,
                    "address": None,
                    "direction": None,
                    "crypto": [],
                }
            )
        elif key == "a" and cur is not None:
            if value.startswith("rtpmap:"):
                m = _RTPMAP.match(value[len("rtpmap:") :])
                if m and int(m.group(1)) <= MAX_PAYLOAD_TYPE and int(m.group(3)) > 0:
                    cur["rtpmap"].append((int(m.group(1)), m.group(2), int(m.group(3))))
            elif value.startswith("crypto:"):  # RFC 4568 §9.1
                cur["crypto"].append(CryptoAttribute(value[len("crypto:") :]))
            elif value == "rtcp-mux":  # RFC 5761 §5.1.1
                cur["mux"] = True
            elif value in _DIRECTIONS:
                cur["direction"] = value
        elif key == "a" and value in _DIRECTIONS:
            session_direction = value
    media = tuple(
        SdpMedia(
            media=s["media"],
            address=s["address"] or session_addr,
            port=s["port"],
            proto=s["proto"],
            payload_types=s["pts"],
            rtpmap=tuple(s["rtpmap"]),
            rtcp_mux=s["mux"],
            direction=s["direction"] or session_direction,
            crypto=tuple(s["crypto"]),
        )
        for s in sections
    )
    return session_name, media


def parse_sip(payload: bytes, frame: int, time_ns: int) -> SipMessage | None:
    """Decode one SIP message (RFC 3261 §7) and its SDP body, if any."""
    text = payload[:MAX_SIP_BYTES].decode("utf-8", errors="replace")
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    if not lines or not lines[0]:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.strip().lower()
        name = _COMPACT.get(name, name)
        headers.setdefault(name, value.strip())
    session_name: str | None = None
    media: tuple[SdpMedia, ...] = ()
    if "application/sdp" in headers.get("content-type", "").lower():
        session_name, media = parse_sdp(body)
    return SipMessage(
        frame=frame,
        time_ns=time_ns,
        start_line=lines[0].strip(),
        call_id=headers.get("call-id"),
        from_uri=_uri(headers.get("from")),
        to_uri=_uri(headers.get("to")),
        session_name=session_name,
        media=media,
    )


def summarise(messages: list[SipMessage], start_ns: int = 0) -> SipSummary:
    """Group SIP messages into calls by Call-ID (RFC 3261 §8.1.1.4).

    ``start_ns``: the capture's first frame, from which the calls' times count.
    """
    by_call: dict[str, list[SipMessage]] = {}
    for m in sorted(messages, key=lambda m: m.frame):
        if m.call_id:
            by_call.setdefault(m.call_id, []).append(m)
    calls = []
    for call_id, msgs in by_call.items():
        first_request = next((m for m in msgs if m.method), msgs[0])
        methods: list[str] = []
        for m in msgs:
            if m.method and m.method not in methods:
                methods.append(m.method)
        finals = [m.status for m in msgs if m.status is not None and m.status >= 200]
        session = next((m.session_name for m in msgs if m.session_name), None)
        media = tuple(md for m in msgs for md in m.media)
        times = [(m.time_ns - start_ns) / 1e9 for m in msgs]
        byes = [(m.time_ns - start_ns) / 1e9 for m in msgs if m.method == "BYE"]
        calls.append(
            SipCall(
                call_id=call_id,
                from_uri=first_request.from_uri,
                to_uri=first_request.to_uri,
                session_name=session,
                first_frame=msgs[0].frame,
                methods=tuple(methods),
                final_status=finals[-1] if finals else None,
                media=media,
                first_time=min(times),
                last_time=max(times),
                bye_time=min(byes) if byes else None,
            )
        )
    return SipSummary(messages=len(messages), calls=tuple(calls))
