"""metrics: one stream -> its numbers, each with a published definition.

Entry point :func:`measure`; results :class:`StreamMetrics` (scalars are the
JSON keys), :class:`PacketMetrics` (per-packet arrays), :class:`Timeline`
(per-window series) and :class:`EModelInputs`. Wireshark's ``rtp,streams``
figures are reproduced exactly (:mod:`callscope.metrics.wireshark_rtp`).
"""

from callscope.metrics.emodel import CODECS, CodecImpairment, EModelInputs
from callscope.metrics.measure import PacketMetrics, StreamMetrics, measure
from callscope.metrics.timeline import Timeline

__all__ = [
    "CODECS",
    "CodecImpairment",
    "EModelInputs",
    "PacketMetrics",
    "StreamMetrics",
    "Timeline",
    "measure",
]
