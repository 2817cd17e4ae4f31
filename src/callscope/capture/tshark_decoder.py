"""A second decoder backed by Wireshark's dissectors (``--decoder wireshark``).

:func:`read_capture_wireshark` builds the same :class:`~callscope.capture.Capture`
as the built-in reader, but every header is decoded by Wireshark. It reads what
the built-in reader does not: any file format and link type Wireshark knows,
and tunnels Wireshark dissects (GTP-U, GRE, VXLAN, Geneve, IP-in-IP, Teredo,
L2TP, ...), where the datagram is the **innermost** IP/UDP layer.

Why tshark's field output rather than pyshark packet objects
------------------------------------------------------------
pyshark builds one Python object per packet from tshark's PDML/JSON and
decodes well under a thousand packets a second; a one-hour call capture holds
hundreds of thousands. So tshark is found on ``PATH`` (:func:`shutil.which`)
and the packets come from one ``tshark -T fields`` process whose tab-separated columns are parsed chunk by
chunk with numpy: no Python object per packet, memory bounded by the chunk
size. The decoder then runs at tshark's own speed (about 40k packets/s on
one core, against about 250 packets/s through pyshark packet objects).

``-E occurrence=l`` keeps the last occurrence of each field, i.e. the innermost
layer of a tunnelled frame. ``frame.protocols`` (the dissector chain, e.g.
``eth:ethertype:ip:udp:gtp:ip:udp:rtp``) tells for each distinct chain which
layer that is, so the per-packet work stays in numpy and the Python work is per
distinct chain.

Rules (what counts as a datagram)
---------------------------------
- A frame is a UDP datagram when its innermost IP layer (IPv4 or IPv6) carries
  UDP: the chain's last ``udp`` comes after its last ``ip``/``ipv6`` and no IP
  layer follows it. A tunnel whose inner packet is TCP or ICMP is counted as
  that protocol; a VXLAN frame carrying ARP is the outer UDP datagram.
- ICMP errors quote the IP/UDP header of the packet they refer to; Wireshark
  dissects the quote, but the frame is ICMP, not a datagram (as in the
  built-in reader).
- IP fragments are reassembled by Wireshark (``ip.defragment``); the datagram
  takes the frame number and time of the fragment that completed it.
- Timestamps are parsed from the decimal text of ``frame.time_epoch``, never
  through a float, so they keep Wireshark's full nanosecond precision.
- ``CaptureInfo.link_types`` holds Wireshark's names of the link-layer
  dissectors seen (``eth``, ``sll``, ``null``, ``ppp`` ...).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import struct
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from callscope.capture.datagrams import Datagrams, str_to_address
from callscope.capture.decode import OTHER_KINDS, SIP_STARTS
from callscope.capture.reader import (
    GZIP_MAGIC,
    PCAP_MAGIC_NS,
    PCAP_MAGIC_US,
    PCAPNG_SHB,
    Capture,
    CaptureInfo,
)
from callscope.errors import (
    CaptureError,
    EmptyCaptureError,
    NotACaptureError,
    TruncatedCaptureWarning,
    UnreadableCaptureError,
)

INSTALL_HINT = (
    "the Wireshark decoder needs tshark on PATH: `apt-get install tshark` "
    "(or your system's Wireshark package)"
)

#: Columns requested from tshark, in output order.
FIELDS = (
    "frame.number",
    "frame.time_epoch",
    "frame.cap_len",
    "frame.len",
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "udp.srcport",
    "udp.dstport",
    "udp.length",
    "ip.flags.mf",
    "ip.frag_offset",
    "ipv6.fraghdr.more",
    "ipv6.fraghdr.offset",
    "udp.payload",
)
(
    F_FRAME, F_TIME, F_CAPLEN, F_LEN, F_PROTOCOLS, F_IP_SRC, F_IP_DST, F_IP6_SRC, F_IP6_DST,
    F_SPORT, F_DPORT, F_UDP_LEN, F_MF, F_FRAG_OFF, F6_MORE, F6_FRAG_OFF, F_PAYLOAD,
) = range(len(FIELDS))

#: Columns of the SIP-over-TCP pass.
TCP_FIELDS = (
    "frame.number", "frame.time_epoch", "frame.protocols",
    "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport", "tcp.payload",
)

#: Wireshark preferences fixed so that the table does not depend on the user's
#: profile where it matters: fragments reassembled as the built-in reader does.
PREFERENCES = ("ip.defragment:TRUE", "ipv6.defragment:TRUE")

UDP_HEADER = 8  # RFC 768
NS_PER_S = 1_000_000_000
TAB, NEWLINE, DOT, ZERO = 9, 10, 46, 48
DEFAULT_CHUNK_BYTES = 8 << 20

#: frame kinds as numbers, per distinct protocol chain
KIND_UDP = 0
_OTHER_INDEX = {k: i + 1 for i, k in enumerate(OTHER_KINDS)}


@dataclass(frozen=True)
class Tshark:
    """The tshark executable found on ``PATH``, and its version."""

    path: str
    version: str


def find_tshark() -> Tshark:
    """Locate tshark on ``PATH`` (:func:`shutil.which`) and read its version (``tshark -v``).

    Raises
    ------
    CaptureError
        tshark cannot be found, run, or its version read; the message says
        what to install.
    """
    path = shutil.which("tshark")
    if path is None:
        raise CaptureError(f"tshark is not on PATH; {INSTALL_HINT}")
    try:
        out = subprocess.run([path, "-v"], capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise CaptureError(f"tshark is not usable ({e}); {INSTALL_HINT}") from None
    # first line: "TShark (Wireshark) 4.0.17 (Git v4.0.17 ...)"
    first = out.decode("ascii", "replace").partition("\n")[0]
    m = re.match(r".*?\s(\d+\.\d+\.\d+)", first)
    if m is None:
        raise CaptureError(f"tshark is not usable (no version in {first!r}); {INSTALL_HINT}")
    return Tshark(path=path, version=m.group(1))


def read_capture_wireshark(path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Capture:
    """Read a capture through Wireshark's dissectors: same result type as :func:`read_capture`.

    Parameters
    ----------
    path : path-like
        Any capture file Wireshark reads (pcap, pcapng, gzip-compressed, and
        the other formats of libwiretap), with any link type it dissects.
    chunk_bytes : int
        How much of tshark's output is parsed at a time (bounds memory).

    Returns
    -------
    Capture
        The innermost UDP datagram of every frame that has one, the frame
        counts (``info``) and the SIP-over-TCP segments.

    Raises
    ------
    CaptureError
        The file is missing, empty or not a capture Wireshark reads, or
        tshark is not installed. A file cut off mid-record is read up
        to the cut with a :class:`~callscope.errors.TruncatedCaptureWarning`.

    Examples
    --------
    >>> cap = read_capture_wireshark("vxlan-call.pcap")   # doctest: +SKIP
    >>> len(cap.datagrams), cap.info.link_types            # doctest: +SKIP
    (1520, ['eth'])
    """
    path = Path(path)
    _check_readable(path)
    tshark = find_tshark()
    acc = _Accumulator(CaptureInfo(path=str(path)))
    acc.info.format, acc.info.compressed, acc.info.byte_order = _file_format(path)
    stderr = _run_fields(tshark.path, path, FIELDS, (), chunk_bytes, acc.add)
    info = acc.info
    info.link_types = list(acc.link_types)
    _check_stderr(stderr, path, info, produced=info.packets > 0)
    datagrams = Datagrams.concat(acc.parts)
    info.udp_datagrams = len(datagrams)
    info.snaplen_truncated = int(np.count_nonzero(datagrams.payload_caplen < datagrams.udp_payload_len))
    tcp_signalling = _tcp_sip(tshark.path, path) if acc.tcp_sip else ()
    return Capture(datagrams, info, tcp_signalling)


def _file_format(path: Path) -> tuple[str, bool, str]:
    """Format name, gzip compression and byte order from the file's magic numbers.

    Files of other formats (read by Wireshark's libwiretap) are named ``"other"``.
    """
    with open(path, "rb") as fh:
        compressed = fh.read(2) == GZIP_MAGIC
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(12)
    except (OSError, EOFError):
        return "other", compressed, ""
    if len(head) < 12:
        return "other", compressed, ""
    for order, name in (("<", "little"), (">", "big")):
        magic = struct.unpack(order + "I", head[:4])[0]
        if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            return ("pcap-ns" if magic == PCAP_MAGIC_NS else "pcap"), compressed, name
    if struct.unpack("<I", head[:4])[0] == PCAPNG_SHB:
        order = "little" if head[8:12] == b"\x4d\x3c\x2b\x1a" else "big"
        return "pcapng", compressed, order
    return "other", compressed, ""


def _check_readable(path: Path) -> None:
    if path.is_dir():
        raise UnreadableCaptureError(
            "is a directory, not a capture file (pass the files in it, or use `callscope batch`)", str(path)
        )
    if not path.exists():
        raise UnreadableCaptureError("no such file", str(path))
    if not os.access(path, os.R_OK):
        raise UnreadableCaptureError("permission denied", str(path))
    if path.stat().st_size == 0:
        raise EmptyCaptureError("empty file (0 bytes): not a capture", str(path))


def _run_fields(tshark: str, path: Path, fields, extra: tuple[str, ...], chunk_bytes: int, sink) -> str:
    """Run ``tshark -T fields`` and feed each chunk of complete rows to ``sink``; return stderr."""
    cmd = [tshark, "-n", "-r", str(path), *extra]
    for pref in PREFERENCES:
        cmd += ["-o", pref]
    cmd += ["-T", "fields", "-E", "header=n", "-E", "separator=/t", "-E", "occurrence=l", "-E", "quote=n"]
    for f in fields:
        cmd += ["-e", f]
    # stderr goes to a file: a pipe left unread could fill and stall tshark.
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        stdout = proc.stdout
        assert stdout is not None  # stdout=PIPE
        try:
            rest = b""
            while True:
                block = stdout.read(max(int(chunk_bytes), 1 << 16))
                if not block:
                    break
                data = rest + block
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                if cut:
                    sink(_FieldTable.parse(data[:cut], len(fields)))
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            stdout.close()
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    if proc.returncode and "aren't valid" in text:
        raise CaptureError(f"this tshark does not know a field callscope needs ({_last_line(text)}); "
                           f"a newer Wireshark is needed", str(path))
    return text


def _last_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("Running as user")]
    return " ".join(lines[-2:]) if lines else "no message"


def _check_stderr(stderr: str, path: Path, info: CaptureInfo, produced: bool) -> None:
    """Turn what tshark said on stderr into a warning (cut-off file) or an error."""
    if "cut short in the middle of a packet" in stderr:
        info.truncated = True
        msg = f"{path}: capture is cut off (last record incomplete); analyzed everything before the cut"
        info.warnings.append(msg)
        warnings.warn(msg, TruncatedCaptureWarning, stacklevel=3)
    elif "isn't a capture file" in stderr or "unknown file format" in stderr.lower():
        raise NotACaptureError(f"not a capture file Wireshark reads: {_last_line(stderr)}", str(path))
    elif "tshark:" in stderr and not produced:
        raise CaptureError(f"tshark could not read it: {_last_line(stderr)}", str(path))


@dataclass(frozen=True)
class _FieldTable:
    """One chunk of tshark's tab-separated output: the bytes and every cell's span."""

    buf: np.ndarray  # uint8
    start: np.ndarray  # (rows, columns) int64
    end: np.ndarray

    @classmethod
    def parse(cls, text: bytes, columns: int) -> _FieldTable:
        buf = np.frombuffer(text, np.uint8)
        seps = np.flatnonzero((buf == TAB) | (buf == NEWLINE))
        if seps.size % columns or not np.all(buf[seps[columns - 1::columns]] == NEWLINE):
            raise CaptureError("tshark's field output does not have the expected columns")
        start = np.empty_like(seps)
        start[0] = 0
        start[1:] = seps[:-1] + 1
        return cls(buf, start.reshape(-1, columns), seps.reshape(-1, columns))

    def __len__(self) -> int:
        return int(self.start.shape[0])

    def present(self, col: int) -> np.ndarray:
        return self.end[:, col] > self.start[:, col]

    def uint(self, col: int, rows: np.ndarray | None = None, width: int = 10) -> np.ndarray:
        """Unsigned decimal cells as int64 (empty cells are 0)."""
        s, e = self.start[:, col], self.end[:, col]
        if rows is not None:
            s, e = s[rows], e[rows]
        return _decimal(self.buf, s, e, width)

    def epoch_ns(self, col: int) -> np.ndarray:
        """``seconds.fraction`` cells as integer nanoseconds, without float rounding."""
        s, e = self.start[:, col], self.end[:, col]
        dots = np.flatnonzero(self.buf == DOT)
        if dots.size == 0:
            dot = e
        else:
            at = np.searchsorted(dots, s)
            dot = dots[np.minimum(at, dots.size - 1)]
            dot = np.where((at < dots.size) & (dot < e), dot, e)
        seconds = _decimal(self.buf, s, dot, 19)
        frac_end = np.minimum(e, dot + 1 + 9)  # digits beyond ns are dropped, never rounded up
        frac = _decimal(self.buf, np.minimum(dot + 1, e), frac_end, 9)
        digits = np.maximum(frac_end - dot - 1, 0)
        return seconds * NS_PER_S + frac * 10 ** (9 - digits)

    def text(self, col: int, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Distinct texts of a column over ``rows`` and each row's index into them."""
        return _distinct(self.buf, self.start[rows, col], self.end[rows, col])


def _decimal(buf: np.ndarray, s: np.ndarray, e: np.ndarray, width: int) -> np.ndarray:
    """Parse right-aligned unsigned decimal spans ``buf[s:e]`` (at most ``width`` digits)."""
    if s.size == 0:
        return np.zeros(0, np.int64)
    length = e - s
    if (length > width).any():
        raise CaptureError(f"tshark printed a number longer than {width} digits")
    idx = e[:, None] - width + np.arange(width)[None, :]
    valid = idx >= s[:, None]
    digits = buf[np.clip(idx, 0, buf.size - 1)].astype(np.int64) - ZERO
    if ((digits < 0) | (digits > 9))[valid].any():
        raise CaptureError("tshark printed a non-numeric value where a number was expected")
    digits = np.where(valid, digits, 0)
    return digits @ (10 ** np.arange(width - 1, -1, -1, dtype=np.int64))


def _distinct(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Distinct byte strings among spans, decoded, and the inverse index (Python work per distinct value)."""
    if s.size == 0:
        return [], np.zeros(0, np.int64)
    width = max(int((e - s).max()), 1)
    idx = s[:, None] + np.arange(width)[None, :]
    valid = idx < e[:, None]
    cells = np.where(valid, buf[np.minimum(idx, buf.size - 1)], 0).astype(np.uint8)
    view = np.ascontiguousarray(cells).view(np.dtype((np.void, width))).ravel()
    uniq, inverse = np.unique(view, return_inverse=True)
    texts = [bytes(u).rstrip(b"\0").decode("ascii", "replace") for u in uniq]
    return texts, inverse.ravel()


@dataclass(frozen=True)
class _Chain:
    """What one distinct ``frame.protocols`` chain means for the datagram table."""

    kind: int  # KIND_UDP or 1 + index into OTHER_KINDS
    inner_v6: bool  # the layer carrying the datagram is IPv6
    link: str  # Wireshark's name of the link-layer dissector
    tcp_sip: bool  # Wireshark saw SIP over TCP in it


def _classify(chain: str) -> _Chain:
    layers = chain.split(":")
    link = layers[0] if layers else ""
    ip_at = [i for i, p in enumerate(layers) if p in ("ip", "ipv6")]
    udp_at = [i for i, p in enumerate(layers) if p == "udp"]
    tcp_sip = "tcp" in layers and "sip" in layers
    if not ip_at:
        return _Chain(_OTHER_INDEX["arp" if "arp" in layers else "non-ip"], False, link, tcp_sip)
    inner = ip_at[-1]
    quoted = any(p in ("icmp", "icmpv6") for p in layers[:inner])
    if udp_at and udp_at[-1] > inner and not quoted:
        return _Chain(KIND_UDP, layers[inner] == "ipv6", link, tcp_sip)
    for proto, kind in (("icmp", "icmp"), ("icmpv6", "icmpv6"), ("tcp", "tcp")):
        if proto in layers:
            return _Chain(_OTHER_INDEX[kind], False, link, tcp_sip)
    if udp_at:  # the innermost IP layer is a tunnel's outer one, e.g. VXLAN carrying ARP
        outer = [i for i in ip_at if i < udp_at[-1]]
        return _Chain(KIND_UDP, layers[outer[-1]] == "ipv6", link, tcp_sip)
    return _Chain(_OTHER_INDEX["other-ip"], False, link, tcp_sip)


class _Accumulator:
    """Collects the datagrams and frame counts of tshark's output, chunk by chunk."""

    def __init__(self, info: CaptureInfo):
        self.info = info
        self.parts: list[Datagrams] = []
        self.link_types: dict[str, None] = {}  # ordered set
        self.tcp_sip = False

    def add(self, t: _FieldTable) -> None:
        chains, which = self._chains(t)
        self.parts.append(_absorb(t, self.info, chains, which))

    def _chains(self, t: _FieldTable) -> tuple[list[_Chain], np.ndarray]:
        names, which = t.text(F_PROTOCOLS, np.arange(len(t)))
        chains = [_classify(c) for c in names]
        for c in chains:
            self.link_types.setdefault(c.link)
            self.tcp_sip |= c.tcp_sip
        return chains, which


def _absorb(t: _FieldTable, info: CaptureInfo, chains: list[_Chain], which: np.ndarray) -> Datagrams:
    """Datagrams of one chunk; frame counts added to ``info``."""
    n = len(t)
    frame = t.uint(F_FRAME)
    time_ns = t.epoch_ns(F_TIME)
    info.packets += n
    if info.first_time_ns is None:
        info.first_time_ns = int(time_ns[0])
    info.last_time_ns = int(time_ns[-1])

    kind = np.array([c.kind for c in chains], np.int64)[which]
    inner_v6 = np.array([c.inner_v6 for c in chains], bool)[which]

    # Fragments (RFC 791 §3.1 MF flag and offset; RFC 8200 §4.5 M flag and offset)
    frag4 = _flag(t, F_MF) | (t.uint(F_FRAG_OFF, width=6) > 0)
    frag6 = _flag(t, F6_MORE) | (t.uint(F6_FRAG_OFF, width=6) > 0)
    frag = frag4 | frag6
    info.other["ipv4-fragment"] += int(np.count_nonzero(frag4))
    info.other["ipv6-fragment"] += int(np.count_nonzero(frag6 & ~frag4))

    udp = (kind == KIND_UDP) & t.present(F_SPORT) & t.present(F_DPORT) & t.present(F_UDP_LEN)
    info.other["truncated-header"] += int(np.count_nonzero((kind == KIND_UDP) & ~udp & ~frag))
    counted = np.bincount(kind[~frag & (kind != KIND_UDP)], minlength=len(OTHER_KINDS) + 1)
    for name, i in _OTHER_INDEX.items():
        info.other[name] += int(counted[i])
    info.reassembled += int(np.count_nonzero(udp & frag))
    return _udp_table(t, np.flatnonzero(udp), frame, time_ns, inner_v6)


def _flag(t: _FieldTable, col: int) -> np.ndarray:
    """Boolean cells: tshark prints ``1``/``0`` (``True``/``False`` in some versions)."""
    first = t.buf[np.minimum(t.start[:, col], t.buf.size - 1)]
    return t.present(col) & ((first == ord("1")) | (first == ord("T")))


def _udp_table(t: _FieldTable, rows: np.ndarray, frame, time_ns, inner_v6) -> Datagrams:
    if rows.size == 0:
        return Datagrams.empty()
    v6 = inner_v6[rows]
    udp_len = t.uint(F_UDP_LEN, rows, width=6)
    hex_start = t.start[rows, F_PAYLOAD]
    hex_len = t.end[rows, F_PAYLOAD] - hex_start
    if (hex_len % 2).any():
        raise CaptureError("tshark printed an odd number of hex digits for a UDP payload")
    caplen = hex_len // 2
    return Datagrams(
        frame=frame[rows],
        time_ns=time_ns[rows],
        ip_version=np.where(v6, 6, 4).astype(np.uint8),
        src=_addresses(t, rows, v6, F_IP_SRC, F_IP6_SRC),
        dst=_addresses(t, rows, v6, F_IP_DST, F_IP6_DST),
        sport=t.uint(F_SPORT, rows, width=5).astype(np.uint16),
        dport=t.uint(F_DPORT, rows, width=5).astype(np.uint16),
        udp_payload_len=np.maximum(udp_len - UDP_HEADER, 0).astype(np.int32),
        payload_caplen=caplen.astype(np.int32),
        frame_caplen=t.uint(F_CAPLEN, rows, width=10).astype(np.int32),
        frame_len=t.uint(F_LEN, rows, width=10).astype(np.int32),
        payload_start=np.concatenate([[0], np.cumsum(caplen)[:-1]]).astype(np.int64),
        data=_unhex(t.buf, hex_start, caplen),
    )


def _addresses(t: _FieldTable, rows: np.ndarray, v6: np.ndarray, col4: int, col6: int) -> np.ndarray:
    """16-byte address rows (IPv4-mapped for IPv4) from the address text of each row's family."""
    s = np.where(v6, t.start[rows, col6], t.start[rows, col4])
    e = np.where(v6, t.end[rows, col6], t.end[rows, col4])
    texts, which = _distinct(t.buf, s, e)
    table = np.stack([str_to_address(a) for a in texts]) if texts else np.zeros((0, 16), np.uint8)
    return table[which]


_HEX = np.full(256, 255, np.uint8)
_HEX[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEX[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_HEX[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


def _unhex(buf: np.ndarray, start: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
    """Decode the hex spans ``buf[start : start + 2 * nbytes]`` into one byte buffer."""
    total = int(nbytes.sum())
    if total == 0:
        return np.zeros(0, np.uint8)
    base = np.repeat(start - 2 * (np.cumsum(nbytes) - nbytes), nbytes)
    pos = base + 2 * np.arange(total)
    hi, lo = _HEX[buf[pos]], _HEX[buf[pos + 1]]
    if (hi == 255).any() or (lo == 255).any():
        raise CaptureError("tshark printed a UDP payload that is not hexadecimal")
    return (hi << 4) | lo


def _tcp_sip(tshark: str, path: Path) -> tuple[tuple, ...]:
    """TCP segments whose payload starts like a SIP message (RFC 3261 §7), as the built-in reader keeps them.

    A second, filtered tshark pass, run only when the first saw SIP over TCP:
    signalling is rare, so the rows are handled in Python.
    """
    starts = " || ".join(f"tcp.payload[0:3] == {s.hex(':')}" for s in SIP_STARTS)
    rows: list[bytes] = []
    # Problems with the file itself were reported by the first pass: stderr is not needed again.
    _run_fields(tshark, path, TCP_FIELDS, ("-Y", f"tcp.len > 3 && ({starts})"), DEFAULT_CHUNK_BYTES,
                lambda table: rows.extend(_lines(table)))
    out = []
    for row in rows:
        number, epoch, chain, ip_src, ip_dst, ip6_src, ip6_dst, sport, dport, payload = row.split(b"\t")
        v6 = _classify_ip(chain.decode())
        sec, _, frac = epoch.decode().partition(".")
        time_ns = int(sec) * NS_PER_S + int((frac + "000000000")[:9])
        src = (ip6_src if v6 else ip_src).decode()
        dst = (ip6_dst if v6 else ip_dst).decode()
        out.append((int(number), time_ns, bytes(str_to_address(src)), int(sport),
                    bytes(str_to_address(dst)), int(dport), bytes.fromhex(payload.decode())))
    return tuple(out)


def _lines(t: _FieldTable) -> list[bytes]:
    """The rows of a chunk as raw tab-separated lines (for the rare signalling pass)."""
    text = t.buf.tobytes()
    return [ln for ln in text.split(b"\n") if ln]


def _classify_ip(chain: str) -> bool:
    """Whether the innermost IP layer of a chain is IPv6."""
    layers = chain.split(":")
    ips = [p for p in layers if p in ("ip", "ipv6")]
    return bool(ips) and ips[-1] == "ipv6"
