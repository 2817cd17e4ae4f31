"""Link-layer header types the built-in reader decodes.

Numbers are the LINKTYPE_ values of the tcpdump.org registry (also used in
pcapng Interface Description Blocks, draft-ietf-opsawg-pcaplinktype).
"""

from __future__ import annotations

NULL = 0  # BSD loopback: 4-byte address family in the capturing host's byte order
ETHERNET = 1
RAW_BSD = 12  # DLT_RAW on most BSDs
RAW_OPENBSD = 14  # DLT_RAW on OpenBSD
RAW = 101  # LINKTYPE_RAW: raw IPv4 or IPv6, version from the first nibble
LOOP = 108  # OpenBSD loopback: 4-byte address family, network byte order
LINUX_SLL = 113  # Linux "cooked" capture v1 (tcpdump -i any)
IPV4 = 228
IPV6 = 229
LINUX_SLL2 = 276  # Linux "cooked" capture v2 (tcpdump -i any since 4.99, Android)

NAMES: dict[int, str] = {
    NULL: "NULL (BSD loopback)",
    ETHERNET: "Ethernet",
    RAW_BSD: "Raw IP",
    RAW_OPENBSD: "Raw IP",
    RAW: "Raw IP",
    LOOP: "OpenBSD loopback",
    LINUX_SLL: "Linux cooked (SLL)",
    IPV4: "Raw IPv4",
    IPV6: "Raw IPv6",
    LINUX_SLL2: "Linux cooked v2 (SLL2)",
}

#: well-known link types we do NOT decode, named in the error message
OTHER_NAMES: dict[int, str] = {
    6: "Token Ring",
    9: "PPP",
    10: "FDDI",
    50: "PPP over HDLC",
    104: "Cisco HDLC",
    105: "IEEE 802.11",
    127: "IEEE 802.11 radiotap",
    147: "user 0",
    187: "Bluetooth HCI H4",
    189: "USB Linux",
    192: "PPI",
    195: "IEEE 802.15.4",
    201: "Bluetooth HCI H4 with phdr",
    220: "USB Linux mmapped",
    249: "netfilter NFLOG",
    252: "Wireshark upper PDU",
    263: "Bluetooth LE LL",
}

SUPPORTED = frozenset(NAMES)


def name(linktype: int) -> str:
    """Human name of a link type, e.g. ``"Ethernet (1)"``."""
    known = NAMES.get(linktype) or OTHER_NAMES.get(linktype) or "unknown"
    return f"{known} ({linktype})"


def supported_list() -> str:
    """The decoded link types, for error messages."""
    seen: dict[str, list[int]] = {}
    for number, text in NAMES.items():
        seen.setdefault(text, []).append(number)
    return ", ".join(f"{t} ({'/'.join(map(str, n))})" for t, n in seen.items())
