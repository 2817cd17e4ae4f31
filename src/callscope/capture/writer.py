"""Write UDP datagrams to a classic pcap file, vectorised.

The inverse of the reader for the one encapsulation the simulator needs:
Ethernet II / IPv4 / UDP. Every header of every record is built at once in a
numpy structured array; the variable-length payloads are interleaved with the
headers by one boolean scatter per chunk, so a million datagrams take about a
second and no Python object is made per packet.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

PCAP_MAGIC_US = 0xA1B2C3D4  # pcap file format (draft-ietf-opsawg-pcap §4): µs timestamps
PCAP_MAGIC_NS = 0xA1B23C4D  # same header, nanosecond timestamps
PCAP_VERSION = (2, 4)  # draft-ietf-opsawg-pcap §4: major 2, minor 4
LINKTYPE_ETHERNET = 1  # tcpdump.org link-layer header types: DLT_EN10MB
ETHERTYPE_IPV4 = 0x0800  # IEEE 802 numbers: Internet Protocol version 4
IPPROTO_UDP = 17  # IANA protocol numbers (RFC 768)
IPV4_IHL_WORDS = 5  # RFC 791 §3.1: header length in 32-bit words, no options
IPV4_DONT_FRAGMENT = 0x4000  # RFC 791 §3.1: flags field, DF bit
DEFAULT_TTL = 64  # RFC 1700 recommended default TTL
#: DSCP EF (RFC 3246) shifted into the TOS byte: what softphones mark voice with.
TOS_EF = 0xB8

#: One record's fixed part: pcap record header, Ethernet, IPv4, UDP.
_RECORD_DTYPE = np.dtype(
    {
        "names": [
            "ts_sec", "ts_frac", "incl_len", "orig_len",
            "eth_dst", "eth_src", "ethertype",
            "ver_ihl", "tos", "ip_len", "ip_id", "frag", "ttl", "proto", "ip_sum", "ip_src", "ip_dst",
            "sport", "dport", "udp_len", "udp_sum",
        ],
        "formats": [
            "<u4", "<u4", "<u4", "<u4",
            ("u1", 6), ("u1", 6), ">u2",
            "u1", "u1", ">u2", ">u2", ">u2", "u1", "u1", ">u2", ">u4", ">u4",
            ">u2", ">u2", ">u2", ">u2",
        ],
        "offsets": [
            0, 4, 8, 12,
            16, 22, 28,
            30, 31, 32, 34, 36, 38, 39, 40, 42, 46,
            50, 52, 54, 56,
        ],
        "itemsize": 58,
    }
)
RECORD_HEADER_LEN = 16  # draft-ietf-opsawg-pcap §5: per-packet record header
FRAME_HEADER_LEN = 14 + 20 + 8  # Ethernet II + IPv4 without options + UDP
_FIXED = RECORD_HEADER_LEN + FRAME_HEADER_LEN
_IP_OFFSET = 30
_CHUNK = 1 << 16


def ipv4_to_int(text: str) -> int:
    """The 32-bit value of a dotted-quad IPv4 address."""
    parts = [int(p) for p in text.split(".")]
    if len(parts) != 4 or not all(0 <= p <= 255 for p in parts):
        raise ValueError(f"not an IPv4 address: {text!r}")
    return (parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]


def int_to_ipv4(value: int) -> str:
    """Dotted-quad text of a 32-bit IPv4 address."""
    value = int(value)
    return ".".join(str((value >> s) & 0xFF) for s in (24, 16, 8, 0))


def _mac_of(ip: np.ndarray) -> np.ndarray:
    """A locally administered unicast MAC per host: ``02:00`` then the IPv4 address."""
    mac = np.zeros((ip.shape[0], 6), np.uint8)
    mac[:, 0] = 0x02  # IEEE 802: locally administered, unicast
    for k, shift in enumerate((24, 16, 8, 0)):
        mac[:, 2 + k] = (ip >> shift) & 0xFF
    return mac


def ipv4_header_checksum(headers: np.ndarray) -> np.ndarray:
    """RFC 791 §3.1 / RFC 1071 one's-complement checksum of IPv4 headers.

    Parameters
    ----------
    headers : uint8, shape (n, 20)
        The headers with their checksum field set to zero.

    Returns
    -------
    uint16, shape (n,)
        The checksum to store in each header.
    """
    words = np.ascontiguousarray(headers).view(">u2").astype(np.uint32)
    total = words.sum(axis=1)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return (~total & 0xFFFF).astype(np.uint16)


def write_pcap(
    path: str | os.PathLike[str],
    time_ns: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    data: np.ndarray,
    payload_start: np.ndarray,
    payload_len: np.ndarray,
    *,
    nanosecond: bool = False,
    ip_id: np.ndarray | None = None,
    tos: np.ndarray | int = 0,
    ttl: np.ndarray | int = DEFAULT_TTL,
) -> int:
    """Write UDP datagrams over IPv4 over Ethernet as a classic pcap file.

    Records are written in the order given (sort by ``time_ns`` first if the
    file should be in time order, as captures are).

    Parameters
    ----------
    path : path-like
        The file to create (overwritten).
    time_ns : int64, shape (n,)
        Timestamps, nanoseconds since the Unix epoch.
    src, dst : uint32, shape (n,)
        IPv4 addresses as integers (see :func:`ipv4_to_int`).
    sport, dport : uint16, shape (n,)
        UDP ports.
    data : uint8
        Buffer holding every payload.
    payload_start, payload_len : int64, shape (n,)
        Where each record's UDP payload is in ``data``.
    nanosecond : bool
        Write nanosecond timestamps (magic ``0xA1B23C4D``) instead of µs.
    ip_id : uint16, shape (n,), optional
        IPv4 Identification values (RFC 791 §3.1); zero if omitted.
    tos : uint8 array or int
        IPv4 TOS byte (e.g. :data:`TOS_EF` for voice).
    ttl : uint8 array or int
        IPv4 time to live (per record, or one for all).

    Returns
    -------
    int
        Bytes written.

    References
    ----------
    draft-ietf-opsawg-pcap (the pcap file format); RFC 791 (IPv4); RFC 768 (UDP:
    a zero checksum means "not computed", which IPv4 allows).
    """
    time_ns = np.asarray(time_ns, np.int64)
    n = time_ns.shape[0]
    payload_start = np.asarray(payload_start, np.int64)
    payload_len = np.asarray(payload_len, np.int64)
    src = np.asarray(src, np.uint32)
    dst = np.asarray(dst, np.uint32)
    sport = np.asarray(sport, np.uint16)
    dport = np.asarray(dport, np.uint16)
    if ip_id is None:
        ip_id = np.zeros(n, np.uint16)
    tos_arr = np.broadcast_to(np.asarray(tos, np.uint8), (n,))
    ttl_arr = np.broadcast_to(np.asarray(ttl, np.uint8), (n,))
    data = np.ascontiguousarray(data, np.uint8)

    header = np.zeros(6, "<u4")
    header[0] = PCAP_MAGIC_NS if nanosecond else PCAP_MAGIC_US
    header[1] = PCAP_VERSION[0] | (PCAP_VERSION[1] << 16)
    header[3] = 0  # sigfigs
    header[4] = 0x40000  # snaplen 262144, what tcpdump writes
    header[5] = LINKTYPE_ETHERNET
    written = 24
    with open(Path(path), "wb") as f:
        f.write(header.tobytes())
        for lo in range(0, n, _CHUNK):
            hi = min(n, lo + _CHUNK)
            block = _records(
                time_ns[lo:hi], src[lo:hi], dst[lo:hi], sport[lo:hi], dport[lo:hi],
                data, payload_start[lo:hi], payload_len[lo:hi],
                ip_id[lo:hi], tos_arr[lo:hi], ttl_arr[lo:hi], nanosecond,
            )
            f.write(block.data)
            written += block.size
    return written


def _records(
    time_ns: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    data: np.ndarray,
    payload_start: np.ndarray,
    payload_len: np.ndarray,
    ip_id: np.ndarray,
    tos: np.ndarray,
    ttl: np.ndarray,
    nanosecond: bool,
) -> np.ndarray:
    """One chunk of records, headers and payloads interleaved, as bytes."""
    m = time_ns.shape[0]
    rec = np.zeros(m, _RECORD_DTYPE)
    sec, frac = np.divmod(time_ns, 1_000_000_000)
    rec["ts_sec"] = sec
    rec["ts_frac"] = frac if nanosecond else frac // 1000
    frame_len = FRAME_HEADER_LEN + payload_len
    rec["incl_len"] = frame_len
    rec["orig_len"] = frame_len
    rec["eth_dst"] = _mac_of(dst)
    rec["eth_src"] = _mac_of(src)
    rec["ethertype"] = ETHERTYPE_IPV4
    rec["ver_ihl"] = (4 << 4) | IPV4_IHL_WORDS
    rec["tos"] = tos
    rec["ip_len"] = 20 + 8 + payload_len
    rec["ip_id"] = ip_id
    rec["frag"] = IPV4_DONT_FRAGMENT
    rec["ttl"] = ttl
    rec["proto"] = IPPROTO_UDP
    rec["ip_src"] = src
    rec["ip_dst"] = dst
    rec["sport"] = sport
    rec["dport"] = dport
    rec["udp_len"] = 8 + payload_len
    raw = rec.view(np.uint8).reshape(m, _FIXED)
    rec["ip_sum"] = ipv4_header_checksum(raw[:, _IP_OFFSET : _IP_OFFSET + 20])

    # Interleave [header_i, payload_i, ...]: a mask marks header bytes; the
    # payload bytes, gathered in record order, fill the rest.
    lengths = np.empty(2 * m, np.int64)
    lengths[0::2] = _FIXED
    lengths[1::2] = payload_len
    is_header = np.repeat(np.tile(np.array([True, False]), m), lengths)
    out = np.empty(is_header.size, np.uint8)
    out[is_header] = raw.ravel()
    total = int(payload_len.sum())
    if total:
        first = np.cumsum(payload_len) - payload_len
        gather = np.repeat(payload_start - first, payload_len) + np.arange(total, dtype=np.int64)
        out[~is_header] = data[gather]
    return out
