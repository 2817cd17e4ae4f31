"""media: which datagrams are voice (RTP, SRTP, RTP in TURN, opaque encrypted media),
plus the RTCP, STUN/TURN and SIP/SDP around them.

``discover(datagrams, capture_start_ns=...)`` is the entry point; for captures
read in chunks, reduce each chunk with ``extract`` and join the results with
``MediaColumns.concat`` before ``discover_columns``.
"""

from callscope.media.columns import MediaColumns, extract
from callscope.media.discover import Call, MediaInventory, discover, discover_columns
from callscope.media.rtcp import Bye, ReportBlock, RtcpSummary, SenderReport, VoipMetrics
from callscope.media.sip import SdpMedia, SipCall, SipSummary
from callscope.media.stream import MediaStream, PacketSeries
from callscope.media.stun import ChannelBinding, StunExchange, StunSummary

__all__ = [
    "Bye",
    "Call",
    "ChannelBinding",
    "MediaColumns",
    "MediaInventory",
    "MediaStream",
    "PacketSeries",
    "ReportBlock",
    "RtcpSummary",
    "SdpMedia",
    "SenderReport",
    "SipCall",
    "SipSummary",
    "StunExchange",
    "StunSummary",
    "VoipMetrics",
    "discover",
    "discover_columns",
    "extract",
]
