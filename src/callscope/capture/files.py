"""Which files are captures, and where a capture's ground-truth sidecar lives.

One list of capture names for everything that searches directories
(``callscope batch``, ``callscope evaluate``) and one sidecar rule for
everything that writes or reads ``NAME.truth.json`` (``callscope synth``,
``callscope lab``, ``callscope evaluate``).
"""

from __future__ import annotations

import os
from pathlib import Path

from callscope.capture.reader import GZIP_MAGIC, PCAP_MAGIC_NS, PCAP_MAGIC_US, PCAPNG_SHB

#: File names taken as captures when a directory is searched, whatever their magic.
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".gz", ".cap")
#: File names never taken as captures: ground-truth sidecars and tool output.
SKIP_SUFFIXES = (".truth.json", ".txt")
#: What a capture starts with (draft-ietf-opsawg-pcap §4, draft-ietf-opsawg-pcapng
#: §4.1 Section Header Block type, RFC 1952 §2.3.1 gzip ID1 ID2).
_MAGICS = tuple(
    [m.to_bytes(4, order) for m in (PCAP_MAGIC_US, PCAP_MAGIC_NS) for order in ("little", "big")]
    + [PCAPNG_SHB.to_bytes(4, "little")]
)
#: Extensions a sidecar's name replaces, longest first (``call.pcap.gz`` -> ``call.truth.json``).
_SIDECAR_REPLACES = (".pcap.gz", ".pcapng.gz", ".cap.gz", ".pcap", ".pcapng", ".cap")


def is_capture_name(path: Path) -> bool:
    """Whether a file name says capture (``.pcap``, ``.pcapng``, ``.gz``, ``.cap``)."""
    return path.name.lower().endswith(CAPTURE_SUFFIXES)


def has_capture_magic(path: Path) -> bool:
    """Whether a file starts with a pcap, pcapng or gzip magic number."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head in _MAGICS or head[:2] == GZIP_MAGIC


def looks_like_capture(path: Path) -> bool:
    """Whether a file found under a directory is taken as a capture: never a sidecar
    or tool output (:data:`SKIP_SUFFIXES`), else by its name or its magic number."""
    if path.name.lower().endswith(SKIP_SUFFIXES):
        return False
    return is_capture_name(path) or has_capture_magic(path)


def truth_path(capture: str | os.PathLike[str]) -> Path:
    """The sidecar of ``capture``: its name with the capture extension replaced by ``.truth.json``.

    ``call.pcap``, ``call.pcapng``, ``call.cap`` and their ``.gz`` forms all
    give ``call.truth.json``; any other name loses its last extension.

    Examples
    --------
    >>> truth_path("out/call.pcap.gz")
    PosixPath('out/call.truth.json')
    """
    p = Path(capture)
    name = p.name
    for suffix in _SIDECAR_REPLACES:
        if name.lower().endswith(suffix):
            return p.with_name(name[: -len(suffix)] + ".truth.json")
    return p.with_name(p.stem + ".truth.json")
