"""SRTP (RFC 3711) decryption of RTP payloads with keys the operator holds.

The RTP header of an SRTP packet is in the clear, so every header metric
works without keys; the payload (and RTP padding) is encrypted and an
authentication tag follows it. With the master key and salt, libsrtp
(through the ``pylibsrtp`` binding, the optional ``[audio]`` extra) decrypts
the payload and checks the tag: a packet that fails the check is counted as an
authentication failure and never decoded, so a wrong key is reported as such
rather than played as noise.

Keys come from three places:

- SDES ``a=crypto`` lines (RFC 4568 §9.1) of SDP that travelled in clear-text
  SIP (:func:`sdes_keys`);
- the command line, ``--srtp-key STREAM=SUITE:BASE64`` (:func:`parse_key_spec`);
- a keys file for batch use, one ``SELECTOR=SUITE:BASE64`` line per SSRC or
  5-tuple (:func:`load_keys_file`).

A key may carry a master key identifier (MKI, RFC 3711 §3.1), written as in
SDES after the key: ``BASE64|2^20|1:4`` (lifetime, then MKI value:length).
The MKI travels in every packet outside the authenticated portion (before
the tag for AES-CM, RFC 3711 §3.1 / §3.4; after the AEAD ciphertext and, for
SRTCP, after the index word, RFC 7714 §8.1 / §9.1), so it is checked against
the key's value and cut out before libsrtp sees the packet; packets naming
another MKI are counted, not decrypted.

libsrtp keeps the rollover counter (RFC 3711 §3.3.1, estimated from the
sequence numbers per §3.3.1 / Appendix A) and, with an "any inbound SSRC"
policy, opens a context for every SSRC it meets, so a sender that changes
SSRC mid-stream keeps decrypting. Its replay window is opened to the maximum
so that reordered packets in a capture are not rejected; duplicates still are
(and are counted as replays, not as authentication failures).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from callscope.errors import CallscopeError

#: Crypto suites (RFC 4568 §6.2, RFC 6188 §7.1, RFC 7714 §14.2): name ->
#: (libsrtp cipher type id, master key + salt octets, libsrtp auth type id,
#: auth key octets, RTP auth tag octets). The ids are libsrtp's
#: ``srtp_cipher_type_id_t`` / ``srtp_auth_type_id_t`` (crypto_types.h).
_AES_ICM_128, _AES_ICM_256, _AES_GCM_128, _AES_GCM_256 = 1, 5, 6, 7
_NULL_AUTH, _HMAC_SHA1 = 0, 3
SUITES: dict[str, tuple[int, int, int, int, int]] = {
    "AES_CM_128_HMAC_SHA1_80": (_AES_ICM_128, 30, _HMAC_SHA1, 20, 10),  # RFC 4568 §6.2.1
    "AES_CM_128_HMAC_SHA1_32": (_AES_ICM_128, 30, _HMAC_SHA1, 20, 4),  # RFC 4568 §6.2.2
    "AES_256_CM_HMAC_SHA1_80": (_AES_ICM_256, 46, _HMAC_SHA1, 20, 10),  # RFC 6188 §7.1
    "AES_256_CM_HMAC_SHA1_32": (_AES_ICM_256, 46, _HMAC_SHA1, 20, 4),  # RFC 6188 §7.1
    "AEAD_AES_128_GCM": (_AES_GCM_128, 28, _NULL_AUTH, 0, 16),  # RFC 7714 §14.2
    "AEAD_AES_256_GCM": (_AES_GCM_256, 44, _NULL_AUTH, 0, 16),  # RFC 7714 §14.2
}
#: Names some implementations (and RFC 7714's DTLS profiles) use for the same suites.
_ALIASES = {
    "AES_CM_256_HMAC_SHA1_80": "AES_256_CM_HMAC_SHA1_80",
    "AES_CM_256_HMAC_SHA1_32": "AES_256_CM_HMAC_SHA1_32",
    "AEAD_AES_128_GCM_16": "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM_16": "AEAD_AES_256_GCM",
    "SRTP_AES128_CM_HMAC_SHA1_80": "AES_CM_128_HMAC_SHA1_80",
    "SRTP_AES128_CM_HMAC_SHA1_32": "AES_CM_128_HMAC_SHA1_32",
    "SRTP_AEAD_AES_128_GCM": "AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM": "AEAD_AES_256_GCM",
}
SRTCP_TAG_LEN = 10  # RFC 3711 §4.2: SRTCP uses the 80-bit tag even with the _32 suites
#: libsrtp's largest replay window (srtp_stream_init rejects 0x8000 and more): reordered
#: packets within it are accepted.
REPLAY_WINDOW = 0x7FFF
#: Packets tried per candidate key when picking which of several keys a stream uses.
PROBE_PACKETS = 8
_SEC_SERV_CONF_AND_AUTH = 3  # libsrtp srtp_sec_serv_t sec_serv_conf_and_auth
_AUTH_FAIL = "authentication failure"
_REPLAY = "replay check failed"
_CRYPTO = re.compile(r"^(\d{1,9})\s+(\S+)\s+inline:([A-Za-z0-9+/=]+)(\|[^\s]*)?")
MAX_MKI_LEN = 128  # RFC 4568 §6.1: mki-length is 1 to 128 octets


@dataclass(frozen=True)
class SrtpKey:
    """A master key and salt for one crypto suite, and where it came from.

    Attributes
    ----------
    suite : str
        One of :data:`SUITES`.
    key : bytes
        Master key followed by master salt (RFC 4568 §6.1 ``inline:`` order).
    source : str
        ``"sdes"`` (an SDP ``a=crypto`` line), ``"option"`` or ``"file"``.
    mki_value, mki_len : int
        The master key identifier every packet carries (RFC 3711 §3.1) and
        its length in octets; ``mki_len`` 0: no MKI.
    """

    suite: str
    key: bytes
    source: str = "option"
    mki_value: int = 0
    mki_len: int = 0

    @property
    def mki(self) -> bytes:
        """The MKI as it appears on the wire (big-endian, ``mki_len`` octets)."""
        return self.mki_value.to_bytes(self.mki_len, "big") if self.mki_len else b""


@dataclass(frozen=True)
class KeySelector:
    """Which streams a key applies to: a stream id, an SSRC, or a 5-tuple (UDP)."""

    stream_id: str | None = None
    ssrc: int | None = None
    src: tuple[str, int] | None = None
    dst: tuple[str, int] | None = None

    def matches(self, stream) -> bool:
        if self.stream_id is not None:
            return stream.id == self.stream_id
        if self.ssrc is not None:
            return stream.ssrc == self.ssrc
        return (stream.src, stream.src_port) == self.src and (stream.dst, stream.dst_port) == self.dst


@dataclass(frozen=True)
class Decryption:
    """What SRTP decryption of one stream's packets gave.

    Attributes
    ----------
    plain : list of bytes or None
        Per packet: the RTP packet with its payload decrypted and tag removed;
        None where it failed.
    suite : str
    key_source : str
    decrypted, auth_failures, replays, other_failures : int
        Packets decrypted; failing the authentication check (wrong key,
        corruption, a truncated tag, a rollover counter out of step);
        rejected as replays (duplicates); failing for another reason (too
        short, or naming another key's MKI).
    rtcp : bool
        SRTCP packets (RFC 3711 §3.4) rather than SRTP.
    """

    plain: list
    suite: str
    key_source: str
    decrypted: int
    auth_failures: int
    replays: int
    other_failures: int
    rtcp: bool = False

    @property
    def packets(self) -> int:
        return len(self.plain)

    @property
    def auth_failure_fraction(self) -> float:
        return self.auth_failures / self.packets if self.packets else 0.0

    def finding(self) -> str | None:
        """A sentence when authentication failed on some packets, else None."""
        if not self.auth_failures:
            return None
        pct = 100 * self.auth_failure_fraction
        what = "SRTCP" if self.rtcp else "SRTP"
        if self.decrypted == 0:
            return (f"{what} authentication failed on {pct:.0f} % of packets ({self.auth_failures} of "
                    f"{self.packets}) with the {self.suite} key from {self.key_source}: wrong key?")
        later = "an index" if self.rtcp else "a rollover counter"
        return (f"{what} authentication failed on {pct:.1f} % of packets ({self.auth_failures} of {self.packets}): "
                f"corrupted packets, or {later} or key change the capture does not show")


def require_pylibsrtp():
    """The ``pylibsrtp`` module, or a CallscopeError saying how to install it."""
    try:
        import pylibsrtp
    except ImportError:
        raise CallscopeError(
            "SRTP decryption needs the pylibsrtp package: pip install 'callscope[audio]'"
        ) from None
    return pylibsrtp


def suite_name(name: str) -> str:
    """The canonical name of a crypto suite, or CallscopeError listing the known ones."""
    up = name.strip().upper()
    up = _ALIASES.get(up, up)
    if up not in SUITES:
        raise CallscopeError(f"unknown SRTP crypto suite {name!r}; known: {', '.join(SUITES)}")
    return up


def make_key(suite: str, key_b64: str, source: str = "option", mki: tuple[int, int] = (0, 0)) -> SrtpKey:
    """An :class:`SrtpKey` from a suite name, base64 master key || salt and (MKI value, length).

    The key is checked for length; an MKI must fit its length (RFC 4568 §6.1).
    """
    suite = suite_name(suite)
    value, length = mki
    if length and not (1 <= length <= MAX_MKI_LEN and 0 <= value < 1 << (8 * length)):
        raise CallscopeError(f"SRTP key for {suite}: MKI {value}:{length} does not fit; "
                             f"write VALUE:LENGTH with 1-{MAX_MKI_LEN} octets, e.g. |1:4")
    try:
        raw = base64.b64decode(key_b64.strip() + "=" * (-len(key_b64.strip()) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise CallscopeError(f"SRTP key for {suite} is not valid base64") from None
    need = SUITES[suite][1]
    if len(raw) != need:
        raise CallscopeError(
            f"SRTP key for {suite} has {len(raw)} octets; the suite needs {need} (master key and salt)"
        )
    return SrtpKey(suite=suite, key=raw, source=source, mki_value=value, mki_len=length)


def _endpoint(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` or ``[V6ADDR]:PORT``."""
    from ipaddress import ip_address

    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([0-9.]+):(\d{1,5})", text.strip())
    if not m:
        raise ValueError(text)
    addr, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if int(port) > 65535:
        raise ValueError(text)
    return str(ip_address(addr)), int(port)


def parse_selector(text: str) -> KeySelector:
    """``s3`` (stream id), ``0x1A2B3C4D`` (SSRC) or ``SRC:PORT>DST:PORT`` (5-tuple, UDP).

    IPv6 endpoints are written in brackets, ``[2001:db8::1]:5004``.
    """
    text = text.strip()
    if re.fullmatch(r"s\d+", text):
        return KeySelector(stream_id=text)
    if re.fullmatch(r"0[xX][0-9A-Fa-f]{1,8}", text):
        return KeySelector(ssrc=int(text, 16))
    src, sep, dst = text.partition(">")
    try:
        if not sep:
            raise ValueError(text)
        return KeySelector(src=_endpoint(src), dst=_endpoint(dst))
    except ValueError:
        raise CallscopeError(
            f"SRTP key selector {text!r}: write a stream id (s3), an SSRC (0x1A2B3C4D) "
            "or a 5-tuple (10.0.0.1:4000>10.0.0.2:5000)"
        ) from None


def parse_key_spec(spec: str, source: str = "option") -> tuple[KeySelector, SrtpKey]:
    """``STREAM=SUITE:BASE64KEY`` (as given to ``--srtp-key``) -> selector and key.

    The key may end in SDES's ``|LIFETIME|MKI:LENGTH`` (RFC 4568 §9.1), e.g.
    ``...KEY|2^31|1:4``, for a sender that puts an MKI in its packets.
    """
    sel, eq, rest = spec.partition("=")
    suite, colon, key = rest.partition(":")
    if not eq or not colon:
        raise CallscopeError(f"SRTP key {spec.split('=')[0]!r}...: write STREAM=SUITE:BASE64KEY, "
                             "e.g. s1=AES_CM_128_HMAC_SHA1_80:WVNfX19zZW...")
    key, _, tail = key.partition("|")
    return parse_selector(sel), make_key(suite, key, source, _mki_of(tail, suite))


def _mki_of(tail: str, suite: str) -> tuple[int, int]:
    """(value, length) of the ``MKI:LENGTH`` part of a key's ``|lifetime|MKI:length`` tail; (0, 0) if none."""
    for part in tail.split("|") if tail else ():
        if ":" in part:
            # 128 octets hold a value of up to 309 decimal digits (RFC 4568 §6.1)
            m = re.fullmatch(r"([0-9]{1,309}):([0-9]{1,3})", part)
            if m is None:
                raise CallscopeError(f"SRTP key for {suite}: MKI {part[:40]!r} is not VALUE:LENGTH (e.g. 1:4)")
            return int(m.group(1)), int(m.group(2))
    return 0, 0


def load_keys_file(path: str | os.PathLike) -> list[tuple[KeySelector, SrtpKey]]:
    """Keys for batch use: one ``SELECTOR=SUITE:BASE64KEY`` per line; ``#`` starts a comment."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CallscopeError(f"{os.fspath(path)}: cannot read the SRTP keys file ({exc})") from None
    out = []
    for n, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            out.append(parse_key_spec(line, "file"))
        except CallscopeError as exc:
            raise CallscopeError(f"{os.fspath(path)}: line {n}: {exc}") from None
    return out


def parse_crypto_attribute(value: str) -> tuple[int, str, str, tuple[int, int]] | None:
    """``a=crypto`` value (RFC 4568 §9.1) -> (tag, suite, base64 key||salt, (MKI value, length));
    None if unusable.

    Only the ``inline`` key method exists (RFC 4568 §6.1); the optional
    ``|lifetime|MKI:length`` after the key is read only for the MKI
    ((0, 0) when there is none).
    """
    m = _CRYPTO.match(value.strip())
    if not m:
        return None
    try:
        mki = _mki_of((m.group(4) or "").lstrip("|"), m.group(2))
    except CallscopeError:
        return None
    return int(m.group(1)), m.group(2), m.group(3), mki


def sdes_keys(sip, stream) -> list[SrtpKey]:
    """Every usable SDES key of the SIP signalling that could belong to ``stream``.

    The key of an ``a=crypto`` line is the one its SDP's sender encrypts with
    (RFC 4568 §6.1), and that sender's SDP names the address it receives on,
    usually also the one it sends from. Keys whose ``c=``/``m=`` endpoint is
    the stream's source come first, then the rest of its call (NAT and
    asymmetric ports), then all others: :func:`decrypt_stream` keeps the first
    key that authenticates.
    """
    first, second, rest = [], [], []
    for call in sip.calls:
        for media in call.media:
            for attribute in media.crypto:
                parsed = parse_crypto_attribute(attribute.value)
                if parsed is None:
                    continue
                _, suite, key, mki = parsed
                try:
                    k = make_key(suite, key, "sdes", mki)
                except CallscopeError:
                    continue
                if (media.address, media.port) == (stream.src, stream.src_port):
                    first.append(k)
                elif stream.call_id is not None and call.call_id == stream.call_id:
                    second.append(k)
                else:
                    rest.append(k)
    seen, out = set(), []
    for k in first + second + rest:
        if (k.suite, k.key) not in seen:
            seen.add((k.suite, k.key))
            out.append(k)
    return out


def keys_for(stream, given: Sequence[tuple[KeySelector, SrtpKey]], sip=None) -> list[SrtpKey]:
    """Candidate keys for a stream: those given for it (option, file), then SDES."""
    keys = [k for sel, k in given if sel.matches(stream)]
    if sip is not None:
        keys += [k for k in sdes_keys(sip, stream) if (k.suite, k.key) not in {(x.suite, x.key) for x in keys}]
    return keys


def _policy(key: SrtpKey, inbound: bool):
    """A libsrtp policy for every inbound (or outbound) SSRC with ``key``'s suite."""
    P = require_pylibsrtp()
    from pylibsrtp import ffi

    cipher, key_len, auth, auth_key_len, tag_len = SUITES[key.suite]
    ssrc_type = P.Policy.SSRC_ANY_INBOUND if inbound else P.Policy.SSRC_ANY_OUTBOUND
    gcm = {_AES_GCM_128: P.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, _AES_GCM_256: P.Policy.SRTP_PROFILE_AEAD_AES_256_GCM}
    if cipher in gcm:
        return P.Policy(key=key.key, ssrc_type=ssrc_type, srtp_profile=gcm[cipher])
    policy = P.Policy(key=key.key, ssrc_type=ssrc_type)
    # pylibsrtp names only the DTLS-SRTP profiles; the other SDES suites are
    # set in libsrtp's srtp_crypto_policy_t (cipher_type, cipher_key_len,
    # auth_type, auth_key_len, auth_tag_len, sec_serv), after reading back the
    # default profile's own values so that a different layout is refused, not
    # written over.
    for which, tag in (("rtp", tag_len), ("rtcp", SRTCP_TAG_LEN)):
        fields = ffi.cast("int *", ffi.addressof(getattr(policy._policy, which)))
        if [fields[i] for i in range(6)] != [_AES_ICM_128, 30, _HMAC_SHA1, 20, 10, _SEC_SERV_CONF_AND_AUTH]:
            raise CallscopeError("this libsrtp build lays out its crypto policy differently; "
                                 "install pylibsrtp 1.0 (pip install 'callscope[audio]')")
        for i, v in enumerate((cipher, key_len, auth, auth_key_len, tag)):
            fields[i] = v
    return policy


def _session(key: SrtpKey):
    """A libsrtp receive session for every inbound SSRC with ``key``."""
    P = require_pylibsrtp()
    policy = _policy(key, inbound=True)
    policy.window_size = REPLAY_WINDOW
    try:
        return P.Session(policy=policy)
    except P.Error as exc:
        raise CallscopeError(f"libsrtp refused the {key.suite} key: {exc}") from None


def _without_mki(packets: Sequence[bytes], key: SrtpKey, rtcp: bool) -> list[bytes | None]:
    """The packets with ``key``'s MKI cut out; None for a packet carrying another MKI (or too short).

    AES-CM puts the MKI just before the tag (RFC 3711 §3.1, §3.4), AEAD after
    everything else (RFC 7714 §8.1, §9.1); it is not authenticated, so
    without it the packet is what libsrtp checks.
    """
    n = key.mki_len
    aead = SUITES[key.suite][2] == _NULL_AUTH
    after = 0 if aead else (SRTCP_TAG_LEN if rtcp else SUITES[key.suite][4])
    want = key.mki
    out: list[bytes | None] = []
    for pkt in packets:
        end = len(pkt) - after
        start = end - n
        out.append(bytes(pkt[:start]) + bytes(pkt[end:]) if start >= 8 and pkt[start:end] == want else None)
    return out


def decrypt_packets(packets: Sequence[bytes], key: SrtpKey, rtcp: bool = False) -> Decryption:
    """Decrypt SRTP (or SRTCP) packets of one stream, in the order given.

    Parameters
    ----------
    packets : sequence of bytes
        Whole SRTP packets (RTP header included), in arrival order so that
        libsrtp's rollover-counter estimate follows the sender's.
    key : SrtpKey
    rtcp : bool
        SRTCP packets (RFC 3711 §3.4: the E flag and 31-bit SRTCP index, then
        the MKI if any and the 80-bit tag, follow the encrypted part) instead
        of SRTP.

    Returns
    -------
    Decryption
    """
    P = require_pylibsrtp()
    session = _session(key)
    unprotect = session.unprotect_rtcp if rtcp else session.unprotect
    inputs = _without_mki(packets, key, rtcp) if key.mki_len else packets
    plain: list = [None] * len(packets)
    auth = replay = other = 0
    for i, pkt in enumerate(inputs):
        if pkt is None:
            other += 1
            continue
        try:
            plain[i] = unprotect(bytes(pkt))
        except P.Error as exc:
            text = str(exc)
            if _AUTH_FAIL in text:
                auth += 1
            elif _REPLAY in text:
                replay += 1
            else:
                other += 1
        except ValueError:  # longer than libsrtp's buffer: not a packet it could have sent
            other += 1
    done = len(packets) - auth - replay - other
    return Decryption(plain=plain, suite=key.suite, key_source=key.source, decrypted=done,
                      auth_failures=auth, replays=replay, other_failures=other, rtcp=rtcp)


def decrypt_stream(packets: Sequence[bytes], keys: Iterable[SrtpKey], rtcp: bool = False) -> Decryption:
    """Decrypt with the first candidate key that authenticates the first packets.

    With several candidates (both sides' SDES keys, say) each is tried on the
    first :data:`PROBE_PACKETS` packets; the first that authenticates any of
    them decrypts the stream. When none does, the first candidate's result is
    returned: every packet an authentication failure, which is the finding.
    """
    keys = list(keys)
    if not keys:
        raise CallscopeError("no SRTP key for this stream")
    if len(keys) > 1:
        probe = list(packets[:PROBE_PACKETS])
        for k in keys:
            if decrypt_packets(probe, k, rtcp).decrypted:
                return decrypt_packets(packets, k, rtcp)
    return decrypt_packets(packets, keys[0], rtcp)


def tag_length(key: SrtpKey) -> int:
    """Octets of authentication tag at the end of each SRTP packet under ``key``."""
    return SUITES[key.suite][4]


def counts_dict(d: Decryption) -> dict:
    """The per-stream decryption numbers as plain values (for JSON and tables)."""
    return {
        "suite": d.suite,
        "key_source": d.key_source,
        "packets": d.packets,
        "decrypted": d.decrypted,
        "auth_failures": d.auth_failures,
        "replays": d.replays,
        "other_failures": d.other_failures,
        "auth_failure_pct": round(100 * d.auth_failure_fraction, 2),
        "finding": d.finding(),
    }


def protect_packets(packets: Sequence[bytes], key: SrtpKey, rtcp: bool = False) -> list[bytes]:
    """Encrypt RTP (or RTCP) packets with ``key``: what a sender does, for tests and synthesis."""
    P = require_pylibsrtp()
    policy = _policy(key, inbound=False)
    policy.allow_repeat_tx = True
    session = P.Session(policy=policy)
    protect = session.protect_rtcp if rtcp else session.protect
    out = [protect(bytes(p)) for p in packets]
    if key.mki_len:  # where _without_mki finds it
        after = 0 if SUITES[key.suite][2] == _NULL_AUTH else (SRTCP_TAG_LEN if rtcp else SUITES[key.suite][4])
        out = [p[: len(p) - after] + key.mki + p[len(p) - after :] for p in out]
    return out


__all__ = [
    "SUITES", "SrtpKey", "KeySelector", "Decryption", "make_key", "parse_key_spec", "parse_selector",
    "load_keys_file", "parse_crypto_attribute", "sdes_keys", "keys_for", "decrypt_packets",
    "decrypt_stream", "tag_length", "counts_dict", "protect_packets", "suite_name",
]
