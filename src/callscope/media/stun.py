"""STUN (RFC 5389) and TURN (RFC 5766) messages: decode and summarise per 5-tuple.

STUN and TURN control traffic is rare (a few messages a second at most), so
each message is decoded in Python. What media needs from it: the relayed
peer of TURN Send/Data indications and channel bindings, and for diagnosis
whether requests were answered (``setup-blocked``: requests repeated with no
success response).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from callscope.media.demux import STUN_HEADER_LEN, STUN_MAGIC_COOKIE

# RFC 5389 §6: message type = method bits interleaved with two class bits.
CLASS_REQUEST = 0b00
CLASS_INDICATION = 0b01
CLASS_SUCCESS = 0b10
CLASS_ERROR = 0b11
CLASS_NAMES = {0: "request", 1: "indication", 2: "success", 3: "error"}

METHOD_BINDING = 0x001  # RFC 5389 §18.1
METHOD_ALLOCATE = 0x003  # RFC 5766 §13
METHOD_REFRESH = 0x004  # RFC 5766 §13
METHOD_SEND = 0x006  # RFC 5766 §13
METHOD_DATA = 0x007  # RFC 5766 §13
METHOD_CREATE_PERMISSION = 0x008  # RFC 5766 §13
METHOD_CHANNEL_BIND = 0x009  # RFC 5766 §13
METHOD_NAMES = {
    METHOD_BINDING: "binding",
    METHOD_ALLOCATE: "allocate",
    METHOD_REFRESH: "refresh",
    METHOD_SEND: "send",
    METHOD_DATA: "data",
    METHOD_CREATE_PERMISSION: "create-permission",
    METHOD_CHANNEL_BIND: "channel-bind",
}

ATTR_ERROR_CODE = 0x0009  # RFC 5389 §15.6
ATTR_CHANNEL_NUMBER = 0x000C  # RFC 5766 §14.1
ATTR_XOR_PEER_ADDRESS = 0x0012  # RFC 5766 §14.3
ATTR_DATA = 0x0013  # RFC 5766 §14.4
ATTR_MESSAGE_INTEGRITY = 0x0008  # RFC 5389 §15.4
FAMILY_IPV4 = 0x01  # RFC 5389 §15.1
FAMILY_IPV6 = 0x02  # RFC 5389 §15.1
SEND_INDICATION = 0x0016  # method Send, class indication
DATA_INDICATION = 0x0017  # method Data, class indication


@dataclass(frozen=True)
class StunMessage:
    """One decoded STUN/TURN message (the attributes media and diagnosis use)."""

    method: int
    cls: int
    transaction: bytes
    peer: tuple[str, int] | None = None
    channel: int | None = None
    data_offset: int | None = None  # offset of the DATA attribute value in the message
    data_len: int = 0
    error_code: int | None = None

    @property
    def method_name(self) -> str:
        return METHOD_NAMES.get(self.method, f"0x{self.method:03x}")


def message_type(method: int, cls: int) -> int:
    """The 14-bit STUN message type for a method and class (RFC 5389 §6, Figure 3)."""
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((cls & 0b01) << 4)
        | ((cls & 0b10) << 7)
    )


def _split_type(msg_type: int) -> tuple[int, int]:
    method = (msg_type & 0x000F) | ((msg_type & 0x00E0) >> 1) | ((msg_type & 0x3E00) >> 2)
    cls = ((msg_type & 0x0010) >> 4) | ((msg_type & 0x0100) >> 7)
    return method, cls


def _xor_address(value: bytes, transaction: bytes) -> tuple[str, int] | None:
    """Decode an XOR-*-ADDRESS attribute value (RFC 5389 §15.2)."""
    if len(value) < 8:
        return None
    family = value[1]
    port = struct.unpack_from("!H", value, 2)[0] ^ (STUN_MAGIC_COOKIE >> 16)
    cookie = struct.pack("!I", STUN_MAGIC_COOKIE)
    if family == FAMILY_IPV4:
        raw = bytes(a ^ b for a, b in zip(value[4:8], cookie, strict=True))
        return str(ipaddress.IPv4Address(raw)), port
    if family == FAMILY_IPV6 and len(value) >= 20:
        key = cookie + transaction
        raw = bytes(a ^ b for a, b in zip(value[4:20], key, strict=True))
        return str(ipaddress.IPv6Address(raw)), port
    return None


def parse_stun(buf: bytes) -> StunMessage | None:
    """Decode a STUN message, or None when ``buf`` is not one (RFC 5389 §6, §15).

    Parameters
    ----------
    buf : bytes
        The UDP payload, starting with the STUN header.
    """
    if len(buf) < STUN_HEADER_LEN:
        return None
    msg_type, length, cookie = struct.unpack_from("!HHI", buf, 0)
    # RFC 5389 §6 wants a length that is a multiple of 4; WhatsApp's TURN
    # messages are not padded, so only the two zero bits and the cookie decide.
    if msg_type & 0xC000 or cookie != STUN_MAGIC_COOKIE:
        return None
    method, cls = _split_type(msg_type)
    transaction = buf[8:20]
    end = min(len(buf), STUN_HEADER_LEN + length)
    off = STUN_HEADER_LEN
    peer = channel = data_offset = error_code = None
    data_len = 0
    while off + 4 <= end:
        a_type, a_len = struct.unpack_from("!HH", buf, off)
        value = buf[off + 4 : off + 4 + a_len]
        if a_type == ATTR_XOR_PEER_ADDRESS and peer is None:
            peer = _xor_address(value, transaction)
        elif a_type == ATTR_CHANNEL_NUMBER and len(value) >= 2:
            channel = struct.unpack_from("!H", value, 0)[0]
        elif a_type == ATTR_DATA:
            data_offset, data_len = off + 4, min(a_len, len(buf) - off - 4)
        elif a_type == ATTR_ERROR_CODE and len(value) >= 4:
            error_code = (value[2] & 0x07) * 100 + value[3]  # RFC 5389 §15.6
        off += 4 + a_len + (-a_len % 4)  # RFC 5389 §15: values padded to 32 bits
    return StunMessage(method, cls, transaction, peer, channel, data_offset, data_len, error_code)


@dataclass(frozen=True)
class ChannelBinding:
    """A TURN channel bound to a peer on one client/server 5-tuple (RFC 5766 §11)."""

    channel: int
    peer: str
    peer_port: int
    frame: int


@dataclass(frozen=True)
class StunExchange:
    """STUN/TURN traffic between one client and one server 5-tuple.

    The client is the side that sends requests (or, with no request seen, the
    sender of the first message). Request counts include retransmissions
    (the same transaction ID sent again, RFC 5389 §7.2.1); ``transactions``
    counts distinct IDs and ``answered`` those that got a success response.
    """

    client: str
    client_port: int
    server: str
    server_port: int
    first_time: float
    last_time: float
    binding_requests: int
    binding_success: int
    binding_errors: int
    allocate_requests: int
    allocate_success: int
    allocate_errors: int
    other_requests: int  # refresh, create-permission, channel-bind, ...
    other_success: int
    other_errors: int
    transactions: int
    answered: int
    retransmissions: int
    send_indications: int
    data_indications: int
    channel_data: int
    channel_bindings: tuple[ChannelBinding, ...] = ()
    error_codes: tuple[int, ...] = ()
    #: Requests sent again after their transaction's success response went by:
    #: the response never reached the client (RFC 5389 §7.2.1: a client that
    #: got its response stops retransmitting).
    retried_after_answer: int = 0

    @property
    def requests(self) -> int:
        return self.binding_requests + self.allocate_requests + self.other_requests

    @property
    def success_responses(self) -> int:
        return self.binding_success + self.allocate_success + self.other_success

    @property
    def unanswered(self) -> bool:
        """Requests were sent, more than once, and not one got a success response."""
        return self.requests >= 2 and self.success_responses == 0


@dataclass(frozen=True)
class StunSummary:
    """Every STUN/TURN exchange of a capture (one per client/server 5-tuple)."""

    exchanges: tuple[StunExchange, ...] = ()

    @property
    def requests(self) -> int:
        return sum(e.requests for e in self.exchanges)

    @property
    def success_responses(self) -> int:
        return sum(e.success_responses for e in self.exchanges)

    @property
    def unanswered(self) -> tuple[StunExchange, ...]:
        """Exchanges whose requests were repeated with no success response."""
        return tuple(e for e in self.exchanges if e.unanswered)
