"""Reading pcap and pcapng files, plain or gzip-compressed, in bounded memory.

The format is detected from the magic number, never from the file name.
Records are walked in a tight loop that only collects offsets; every header
field is then extracted with numpy (:mod:`callscope.capture.decode`). The file
is read in chunks of ``chunk_bytes``, so memory does not grow with its size.

Formats
-------
- classic pcap: magic 0xA1B2C3D4 (µs) or 0xA1B23C4D (ns), either byte order
  (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html §4);
- pcapng: Section Header Blocks of either byte order, Interface Description
  Blocks with their own link type, ``if_tsresol`` and ``if_tsoffset``,
  Enhanced, Simple and obsolete Packet Blocks; other blocks are skipped
  (draft-ietf-opsawg-pcapng §4);
- either of them gzip-compressed (RFC 1952 magic 1F 8B).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import struct
import warnings
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from callscope.capture import linktypes as lt
from callscope.capture.datagrams import Datagrams
from callscope.capture.decode import OTHER_KINDS, decode_frames
from callscope.capture.fragments import Reassembler
from callscope.errors import (
    CaptureError,
    CorruptCaptureError,
    EmptyCaptureError,
    NotACaptureError,
    TruncatedCaptureWarning,
    UnreadableCaptureError,
    UnsupportedLinkTypeError,
)

DEFAULT_CHUNK_BYTES = 8 << 20

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAP_HEADER = 24
PCAP_RECORD = 16
#: Largest record Wireshark accepts for ordinary link types (WTAP_MAX_PACKET_SIZE_STANDARD)
MAX_RECORD = 262144
#: after this many records of one length in a row, check a run of them at once
RUN_AFTER = 4
RUN_MAX = 1 << 14

PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 0x00000001
PCAPNG_OPB = 0x00000002  # obsolete Packet Block
PCAPNG_SPB = 0x00000003
PCAPNG_EPB = 0x00000006
PCAPNG_BOM = 0x1A2B3C4D
#: pcapng blocks larger than this are treated as corrupt rather than buffered
MAX_BLOCK = 16 << 20
OPT_IF_TSRESOL = 9
#: finest if_tsresol whose unit count per second fits the 64-bit timestamp
MAX_TSRESOL_POW10 = 19
MAX_TSRESOL_POW2 = 63
#: marks a Simple Packet Block row, which has no timestamp (a high word cannot exceed 2^32 - 1)
SPB_NO_TIME = -1
NS_PER_S = 1_000_000_000
#: binary fractions of up to this many bits convert exactly (2^34 * 10^9 < 2^64)
EXACT_POW2 = 34
#: whole seconds either side of the epoch that int64 nanoseconds can hold
MAX_NS_SECONDS = (2**63 - 1) // NS_PER_S - 1
OPT_IF_TSOFFSET = 14

GZIP_MAGIC = b"\x1f\x8b"
#: Decompression budget: a gzip capture may expand to this many times the
#: compressed bytes read so far (captures compress 1.2-4x; silence-heavy
#: G.711 perhaps 10x), or to GZIP_FREE_BYTES whatever its ratio. Beyond that
#: it is a decompression bomb, not a capture, and reading stops at once.
GZIP_MAX_RATIO = 50
GZIP_FREE_BYTES = 64 << 20


@dataclass
class CaptureInfo:
    """What a capture holds, filled in as it is read."""

    path: str
    format: str = ""  # "pcap", "pcap-ns", "pcapng"
    compressed: bool = False
    byte_order: str = ""
    link_types: list[str] = field(default_factory=list)
    packets: int = 0
    udp_datagrams: int = 0
    first_time_ns: int | None = None
    last_time_ns: int | None = None
    other: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OTHER_KINDS, 0))
    snaplen_truncated: int = 0  # UDP datagrams whose payload was cut by snaplen
    reassembled: int = 0  # UDP datagrams rebuilt from IP fragments
    truncated: bool = False  # the file ends mid-record
    warnings: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        if self.first_time_ns is None or self.last_time_ns is None:
            return 0.0
        return (self.last_time_ns - self.first_time_ns) / 1e9


@dataclass(frozen=True)
class Capture:
    """A whole capture read into memory: its UDP datagrams and what else it held."""

    datagrams: Datagrams
    info: CaptureInfo
    tcp_signalling: tuple[tuple, ...]

    @property
    def start_ns(self) -> int:
        """Time of the capture's first frame (Wireshark's time reference)."""
        return int(self.info.first_time_ns or 0)


class _CountingReader:
    """A binary file that counts the bytes read from it (the compressed side of a gzip capture)."""

    mode = "rb"

    def __init__(self, fh) -> None:
        self._fh = fh
        self.consumed = 0

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self.consumed += len(data)
        return data

    def close(self) -> None:
        pass  # the underlying file is closed by its owner

    def seek(self, offset: int, whence: int = 0, /) -> int:
        # GzipFile seeks only to rewind, which the reader never asks for; pipes cannot anyway
        raise io.UnsupportedOperation("a capture is read front to back")


def _open(path: Path):
    """Open ``path`` for binary reading; also whether it is gzip-compressed (by magic).

    The magic is peeked, not read, so that pipes (``<(zcat ...)``) work too.
    """
    try:
        if path.is_dir():
            raise UnreadableCaptureError(
                "is a directory, not a capture file (pass the files in it, or use `callscope batch`)",
                str(path),
            )
        fh = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise UnreadableCaptureError("no such file", str(path)) from None
    except PermissionError:
        raise UnreadableCaptureError("permission denied", str(path)) from None
    except OSError as e:
        raise UnreadableCaptureError(f"cannot open ({e.strerror})", str(path)) from None
    try:
        head = fh.peek(len(GZIP_MAGIC))[: len(GZIP_MAGIC)]
    except OSError as e:
        fh.close()
        raise UnreadableCaptureError(f"cannot read ({e.strerror})", str(path)) from None
    return fh, head == GZIP_MAGIC


class CaptureReader:
    """Iterate over a capture's UDP datagrams in chunks.

    Examples
    --------
    >>> reader = CaptureReader("call.pcap")          # doctest: +SKIP
    >>> for chunk in reader:                          # doctest: +SKIP
    ...     print(len(chunk))
    >>> reader.info.udp_datagrams                     # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES):
        self.path = Path(path)
        self.chunk_bytes = max(int(chunk_bytes), 1 << 16)
        self.info = CaptureInfo(path=str(path))
        self.tcp_signalling: list[tuple] = []
        self._reassembler = Reassembler()
        self._unsupported: dict[int, int] = {}
        self._compressed_in: _CountingReader | None = None
        self._decompressed = 0

    def __iter__(self) -> Iterator[Datagrams]:
        raw, compressed = _open(self.path)
        self.info.compressed = compressed
        counting = self._compressed_in = _CountingReader(raw) if compressed else None
        self._decompressed = 0
        with raw, (gzip.GzipFile(fileobj=counting, mode="rb") if counting is not None
                   else contextlib.nullcontext(raw)) as fh:
            head = self._read(fh, 4)
            if not head:
                raise EmptyCaptureError("empty file (0 bytes): not a capture", str(self.path))
            magic_le = struct.unpack("<I", head.ljust(4, b"\0"))[0]
            magic_be = struct.unpack(">I", head.ljust(4, b"\0"))[0]
            if magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS) or magic_be in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
                yield from self._pcap(fh, head)
            elif magic_le == PCAPNG_SHB:
                yield from self._pcapng(fh, head)
            else:
                raise NotACaptureError(_not_a_capture(head), str(self.path))
        self._finish()

    # -- shared machinery -------------------------------------------------

    def _chunks(self, fh, head: bytes) -> Generator[tuple[memoryview, bool], int, None]:
        """Yield (buffer, at_eof); the walker returns how many bytes it consumed.

        Every buffer is a new one: the bytes the walker left, then the next
        chunk read straight into it (uninitialised memory: nothing is written
        twice). Datagrams keep pointing into the buffer they came from, so a
        buffer is never reused.
        """
        left = memoryview(head)
        while True:
            buf = np.empty(len(left) + self.chunk_bytes, np.uint8).data
            buf[: len(left)] = left
            got = self._readinto(fh, buf[len(left):])
            eof = got < self.chunk_bytes
            if eof:
                buf = buf[: len(left) + got]
            consumed = yield buf, eof
            if eof:
                return
            left = buf[consumed:]

    def _read(self, fh, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at the end of the file."""
        buf = bytearray(n)
        with memoryview(buf) as view:
            got = self._readinto(fh, view)
        return bytes(buf[:got])

    def _readinto(self, fh, view: memoryview) -> int:
        """Fill ``view`` from the file; the number of bytes read, fewer only at its end.

        A gzip stream cut short raises EOFError from ``read``, discarding what
        that call had already decompressed; reading piecewise with
        ``readinto1`` keeps every byte before the cut.
        """
        got, n = 0, len(view)
        while got < n:
            try:
                k = fh.readinto1(view[got:])
            except EOFError:
                self._warn_truncated(None, "compressed stream ends early")
                break
            except (OSError, zlib.error) as e:
                raise CorruptCaptureError(f"cannot decompress ({e})", str(self.path)) from None
            if not k:
                break
            got += k
        if self._compressed_in is not None:
            self._decompressed += got
            self._check_ratio(self._compressed_in)
        return got

    def _check_ratio(self, compressed_in: _CountingReader) -> None:
        budget = max(GZIP_FREE_BYTES, GZIP_MAX_RATIO * compressed_in.consumed)
        if self._decompressed > budget:
            raise CorruptCaptureError(
                f"gzip data expands more than {GZIP_MAX_RATIO} times ({compressed_in.consumed} bytes "
                f"read became over {self._decompressed} bytes): a decompression bomb, not a capture; "
                "decompress it yourself if it is genuine",
                str(self.path),
            )

    def _warn_truncated(self, offset: int | None, what: str) -> None:
        if self.info.truncated:
            return
        self.info.truncated = True
        where = f" at byte {offset}" if offset is not None else ""
        msg = f"{self.path}: capture is cut off{where} ({what}); analyzed everything before the cut"
        self.info.warnings.append(msg)
        warnings.warn(msg, TruncatedCaptureWarning, stacklevel=3)

    def _emit(self, buf: memoryview, starts, caplens, origlens, ts_ns, linktype) -> Datagrams:
        n = len(starts)
        first = self.info.packets + 1
        self.info.packets += n
        if n == 0:
            return Datagrams.empty()
        ts = np.asarray(ts_ns, np.int64)
        if self.info.first_time_ns is None:
            self.info.first_time_ns = int(ts[0])
        self.info.last_time_ns = int(ts[-1])
        arr = np.frombuffer(buf, np.uint8)
        linktype = np.asarray(linktype, np.int64)
        supported = np.isin(linktype, list(lt.SUPPORTED))
        if not supported.all():
            for t, c in zip(*np.unique(linktype[~supported], return_counts=True), strict=True):
                self._unsupported[int(t)] = self._unsupported.get(int(t), 0) + int(c)
        dec = decode_frames(
            arr,
            np.asarray(starts, np.int64),
            np.asarray(caplens, np.int64),
            np.asarray(origlens, np.int64),
            np.where(supported, linktype, -1),
            np.arange(first, first + n, dtype=np.int64),
            ts,
        )
        for k, v in dec.counts.items():
            self.info.other[k] += v
        self.tcp_signalling.extend(dec.tcp_sip)
        out = dec.datagrams
        if dec.fragments:
            whole = self._reassembler.add(dec.fragments)
            if len(whole):
                out = Datagrams.concat([out, whole])
                order = np.argsort(out.frame, kind="stable")
                out = out.take(order)
        self.info.udp_datagrams += len(out)
        self.info.snaplen_truncated += int(np.count_nonzero(out.payload_caplen < out.udp_payload_len))
        return out

    def _finish(self) -> None:
        self.info.reassembled = self._reassembler.reassembled
        if self._unsupported:
            names = ", ".join(f"{lt.name(t)}: {c} packets" for t, c in sorted(self._unsupported.items()))
            self.info.other["unsupported-link"] = sum(self._unsupported.values())
            if self.info.packets == sum(self._unsupported.values()):
                raise UnsupportedLinkTypeError(
                    f"unsupported link type {names}; the built-in reader decodes {lt.supported_list()} "
                    "(try --decoder wireshark)",
                    str(self.path),
                )
            self.info.warnings.append(f"{self.path}: packets on unsupported link types skipped ({names})")

    # -- classic pcap -----------------------------------------------------

    def _pcap(self, fh, head: bytes) -> Iterator[Datagrams]:
        rest = self._read(fh, PCAP_HEADER - 4)
        header = head + rest
        if len(header) < PCAP_HEADER:
            raise CorruptCaptureError(
                f"file ends inside the pcap file header ({len(header)} of {PCAP_HEADER} bytes)", str(self.path)
            )
        endian = "<" if struct.unpack("<I", head)[0] in (PCAP_MAGIC_US, PCAP_MAGIC_NS) else ">"
        magic, _major, _minor, _tz, _sig, snaplen, network = struct.unpack(endian + "IHHiIII", header)
        nano = magic == PCAP_MAGIC_NS
        linktype = network & 0x0FFFFFFF  # upper bits: FCS length flags (pcap draft §4)
        self.info.format = "pcap-ns" if nano else "pcap"
        self.info.byte_order = "little" if endian == "<" else "big"
        self.info.link_types = [lt.name(linktype)]
        if linktype not in lt.SUPPORTED:
            raise UnsupportedLinkTypeError(
                f"unsupported link type {lt.name(linktype)}; the built-in reader decodes "
                f"{lt.supported_list()} (try --decoder wireshark)",
                str(self.path),
            )
        limit = max(MAX_RECORD, snaplen if snaplen < (1 << 26) else 0)
        incl_at = struct.Struct(endian + "I")
        file_pos = PCAP_HEADER
        gen = self._chunks(fh, b"")
        buf, eof = next(gen)
        while True:
            runs: list[np.ndarray] = []
            offs: list[int] = []
            append = offs.append
            off, size = 0, len(buf)
            same, last = 0, -1
            while off + PCAP_RECORD <= size:
                incl = incl_at.unpack_from(buf, off + 8)[0]
                if incl > limit:
                    raise CorruptCaptureError(
                        f"impossible record length {incl} (more than {limit}); the file is corrupt",
                        str(self.path),
                        file_pos + off,
                    )
                if off + PCAP_RECORD + incl > size:
                    break
                append(off)
                off += PCAP_RECORD + incl
                same = same + 1 if incl == last else 0
                last = incl
                if same >= RUN_AFTER:
                    # Constant-bitrate voice repeats one record length: confirm a
                    # whole run of them at once instead of record by record.
                    run = _equal_run(buf, off, size, incl, endian)
                    if run.size:
                        if offs:
                            runs.append(np.asarray(offs, np.int64))
                            offs = []
                            append = offs.append
                        runs.append(run)
                        off = int(run[-1]) + PCAP_RECORD + incl
                    same = 0
            if offs:
                runs.append(np.asarray(offs, np.int64))
            if runs:
                yield self._pcap_batch(buf, np.concatenate(runs), endian, nano, linktype)
            if eof:
                if off < size:
                    self._warn_truncated(file_pos + off, "last record incomplete")
                return
            file_pos += off
            buf, eof = gen.send(off)

    def _pcap_batch(self, buf: memoryview, offs: np.ndarray, endian: str, nano: bool, linktype: int) -> Datagrams:
        # one copy of each 16-byte record header through a view with a record at every byte offset
        at = np.ndarray((len(buf) - PCAP_RECORD + 1,), dtype=f"V{PCAP_RECORD}", buffer=buf, strides=(1,))
        hdr = at[offs].view(_pcap_record(endian))
        sec, frac = hdr["ts_sec"].astype(np.int64), hdr["ts_frac"].astype(np.int64)
        ts = sec * 1_000_000_000 + (frac if nano else frac * 1000)
        return self._emit(
            buf, offs + PCAP_RECORD, hdr["incl_len"].astype(np.int64), hdr["orig_len"].astype(np.int64), ts,
            np.full(offs.size, linktype),
        )

    # -- pcapng -----------------------------------------------------------

    def _pcapng(self, fh, head: bytes) -> Iterator[Datagrams]:
        self.info.format = "pcapng"
        endian = "<"
        # Interface ids are per section: ``section`` maps them to rows of ``ifaces``,
        # which holds every interface of the file (linktype, resol, resol_is_pow2, offset_s).
        ifaces: list[tuple[int, int, int, int]] = []
        snaplens: list[int] = []  # per row of ``ifaces``; 0 means no limit
        section: list[int] = []
        all_types: list[str] = []
        file_pos = 0
        gen = self._chunks(fh, head)
        buf, eof = next(gen)
        first = True
        while True:
            rows: list[tuple] = []  # (data offset, caplen, origlen, iface, ts_raw)
            off, size = 0, len(buf)
            while off + 12 <= size:
                btype = struct.unpack_from(endian + "I", buf, off)[0]
                if btype == PCAPNG_SHB or first:
                    if struct.unpack_from("<I", buf, off)[0] != PCAPNG_SHB:
                        raise CorruptCaptureError("pcapng does not start with a Section Header Block",
                                                  str(self.path), file_pos + off)
                    bom = buf[off + 8:off + 12]
                    if bom == b"\x4d\x3c\x2b\x1a":
                        endian = "<"
                    elif bom == b"\x1a\x2b\x3c\x4d":
                        endian = ">"
                    else:
                        raise CorruptCaptureError("pcapng section header has no valid byte-order magic",
                                                  str(self.path), file_pos + off)
                    if first:
                        self.info.byte_order = "little" if endian == "<" else "big"
                    first = False
                    btype = PCAPNG_SHB
                blen = struct.unpack_from(endian + "I", buf, off + 4)[0]
                if blen < 12 or blen % 4 or blen > MAX_BLOCK:
                    raise CorruptCaptureError(
                        f"impossible pcapng block length {blen} (block type 0x{btype:08X})",
                        str(self.path), file_pos + off,
                    )
                if off + blen > size:
                    break
                body = off + 8
                if btype == PCAPNG_SHB:
                    section = []
                elif btype == PCAPNG_IDB and blen >= 20:
                    ifaces.append(_idb(buf, body, off + blen - 4, endian))
                    snaplens.append(struct.unpack_from(endian + "I", buf, body + 4)[0])
                    if ifaces[-1][1] > (MAX_TSRESOL_POW2 if ifaces[-1][2] else MAX_TSRESOL_POW10):
                        raise CorruptCaptureError(
                            f"impossible if_tsresol {'2' if ifaces[-1][2] else '10'}^-{ifaces[-1][1]}"
                            " (a 64-bit timestamp would not hold one second)", str(self.path), file_pos + off,
                        )
                    section.append(len(ifaces) - 1)
                    all_types.append(lt.name(ifaces[-1][0]))
                elif btype == PCAPNG_EPB and blen >= 32:
                    iface, th, tl, cap, orig = struct.unpack_from(endian + "IIIII", buf, body)
                    if cap > blen - 32:
                        raise CorruptCaptureError(
                            f"packet length {cap} exceeds its block ({blen} bytes)", str(self.path), file_pos + off
                        )
                    rows.append((body + 20, cap, orig, self._iface(section, iface, file_pos + off), th, tl))
                elif btype == PCAPNG_SPB and blen >= 16:
                    orig = struct.unpack_from(endian + "I", buf, body)[0]
                    first_iface = self._iface(section, 0, file_pos + off)
                    # The packet is the first min(original, snaplen) bytes of the
                    # padded data (pcapng §4.4): the padding is not packet data.
                    cap = min(orig, blen - 16, snaplens[first_iface] or orig)
                    rows.append((body + 4, cap, orig, first_iface, SPB_NO_TIME, 0))
                elif btype == PCAPNG_OPB and blen >= 32:
                    iface, _drops, th, tl, cap, orig = struct.unpack_from(endian + "HHIIII", buf, body)
                    if cap > blen - 32:
                        raise CorruptCaptureError(
                            f"packet length {cap} exceeds its block ({blen} bytes)", str(self.path), file_pos + off
                        )
                    rows.append((body + 20, cap, orig, self._iface(section, iface, file_pos + off), th, tl))
                off += blen
            if rows:
                yield self._pcapng_batch(buf, rows, ifaces)
            if eof:
                if off < size:
                    self._warn_truncated(file_pos + off, "last block incomplete")
                self.info.link_types = list(dict.fromkeys(all_types))
                return
            file_pos += off
            buf, eof = gen.send(off)

    def _iface(self, section: list[int], iface: int, offset: int) -> int:
        """File-wide row of a packet block's section-local interface id."""
        if iface >= len(section):
            raise CorruptCaptureError(
                f"packet block refers to interface {iface} but its section describes {len(section)}",
                str(self.path), offset,
            )
        return section[iface]

    def _pcapng_batch(self, buf: memoryview, rows: list[tuple], ifaces) -> Datagrams:
        data_off, caplen, origlen, iface, ts_high, ts_low = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
        linktype = np.array([i[0] for i in ifaces], np.int64)[iface]
        timed = ts_high != SPB_NO_TIME
        raw = (np.where(timed, ts_high, 0).astype(np.uint64) << np.uint64(32)) | ts_low.astype(np.uint64)
        ts = _pcapng_ns(raw, iface, ifaces)
        if ts is None:
            raise CorruptCaptureError(
                "a packet timestamp lies outside 1678-2262 (not representable in ns)",
                str(self.path), None,
            )
        # Simple Packet Blocks carry no timestamp: reuse the last known one.
        if not timed.all():
            idx = np.maximum.accumulate(np.where(timed, np.arange(ts.size), -1))
            before = self.info.last_time_ns if self.info.last_time_ns is not None else 0
            ts = np.where(timed, ts, np.where(idx >= 0, ts[np.maximum(idx, 0)], before))
        return self._emit(buf, data_off, caplen, origlen, ts, linktype)


def _pcap_record(endian: str) -> np.dtype:
    """The classic pcap record header (draft-ietf-opsawg-pcap §5) in one byte order."""
    return np.dtype([(name, endian + "u4") for name in ("ts_sec", "ts_frac", "incl_len", "orig_len")])


def _equal_run(buf: memoryview, off: int, size: int, incl: int, endian: str) -> np.ndarray:
    """Offsets of the consecutive records from ``off`` whose length is ``incl``."""
    stride = PCAP_RECORD + incl
    k = min((size - off) // stride, RUN_MAX)
    if k <= 0:
        return np.zeros(0, np.int64)
    # the length field of every record of the run, read in place (records are stride bytes apart)
    lengths = np.ndarray((k,), dtype=endian + "u4", buffer=buf, offset=off + 8, strides=(stride,))
    bad = np.flatnonzero(lengths != incl)
    return off + stride * np.arange(bad[0] if bad.size else k, dtype=np.int64)


def _idb(buf: memoryview, body: int, end: int, endian: str) -> tuple[int, int, int, int]:
    """Link type, timestamp resolution and offset of an Interface Description Block."""
    linktype = struct.unpack_from(endian + "H", buf, body)[0]
    resol, pow2, offset = 6, 0, 0  # default resolution: microseconds
    pos = body + 8
    while pos + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", buf, pos)
        if code == 0:
            break
        value = buf[pos + 4:pos + 4 + length]
        if code == OPT_IF_TSRESOL and length >= 1:
            resol, pow2 = value[0] & 0x7F, value[0] >> 7
        elif code == OPT_IF_TSOFFSET and length == 8:
            offset = struct.unpack(endian + "q", value)[0]
        pos += 4 + ((length + 3) & ~3)
    return linktype, resol, pow2, offset


def _pcapng_ns(raw: np.ndarray, iface: np.ndarray, ifaces: list[tuple[int, int, int, int]]) -> np.ndarray | None:
    """Raw 64-bit pcapng timestamps -> ns since the epoch, per interface (floor).

    Each interface has its ``if_tsresol`` (units of 10^-r or 2^-r s) and
    ``if_tsoffset`` (whole seconds added), draft-ietf-opsawg-pcapng §4.2.
    Exact for every decimal resolution and binary ones up to 2^-34 s; finer
    binary ones keep 34 bits of the fraction (within 1 ns). None if a time
    does not fit int64 ns.
    """
    out = np.zeros(raw.size, np.int64)
    for i in np.unique(iface).tolist():
        m = iface == i
        _, resol, pow2, offset_s = ifaces[i]
        per_s = (2 if pow2 else 10) ** resol
        v = raw[m]
        sec, frac = v // np.uint64(per_s), v % np.uint64(per_s)
        if per_s <= NS_PER_S or (pow2 and resol <= EXACT_POW2):  # frac * 10^9 < 2^64
            ns = frac * np.uint64(NS_PER_S) // np.uint64(per_s)
        elif not pow2:
            ns = frac // np.uint64(per_s // NS_PER_S)
        else:
            shift = np.uint64(resol - EXACT_POW2)
            ns = ((frac >> shift) * np.uint64(NS_PER_S)) >> np.uint64(EXACT_POW2)
        if int(sec.max()) + offset_s >= MAX_NS_SECONDS or int(sec.min()) + offset_s < -MAX_NS_SECONDS:
            return None
        out[m] = (sec.astype(np.int64) + offset_s) * NS_PER_S + ns.astype(np.int64)
    return out


def _not_a_capture(head: bytes) -> str:
    hexed = head.hex(" ")
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"not a pcap or pcapng capture (starts with text {head!r}); give a .pcap/.pcapng file"
    return f"not a pcap or pcapng capture (magic bytes {hexed}); give a .pcap/.pcapng file"


def iter_datagrams(path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[Datagrams]:
    """Yield the UDP datagrams of a capture chunk by chunk (bounded memory)."""
    yield from CaptureReader(path, chunk_bytes)


def read_capture(path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Capture:
    """Read a whole capture: its UDP datagrams, info and SIP-over-TCP segments.

    Raises
    ------
    CaptureError
        Not a capture, unreadable, unsupported link type or corrupt. A file cut
        off mid-record is read up to the cut with a
        :class:`~callscope.errors.TruncatedCaptureWarning`.
    """
    reader = CaptureReader(path, chunk_bytes)
    try:
        parts = list(reader)
    except CaptureError:
        raise
    except (MemoryError, RecursionError) as e:  # pragma: no cover - hostile input guard
        raise CorruptCaptureError(f"cannot be read ({type(e).__name__})", str(path)) from None
    return Capture(Datagrams.concat(parts), reader.info, tuple(reader.tcp_signalling))


def read_datagrams(path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Datagrams:
    """The UDP datagrams of a capture as one table."""
    return read_capture(path, chunk_bytes).datagrams
