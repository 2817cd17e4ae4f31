"""The whole pipeline behind ``callscope.analyze(path) -> Report``.

capture -> media -> metrics -> diagnose; the report stage only formats the
:class:`Report` this returns.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from callscope import __version__
from callscope.capture.reader import CaptureInfo, read_capture


@dataclass(frozen=True)
class Report:
    """Everything callscope found in one capture.

    Attributes
    ----------
    path : str
        The capture analysed.
    info : CaptureInfo
        Format, link types, packet counts, warnings.
    inventory : MediaInventory
        Streams, calls, RTCP, STUN/TURN and SIP found (``callscope.media``).
    metrics : Mapping[str, StreamMetrics]
        Per-stream metrics keyed by stream id (``callscope.metrics``).
    diagnosis : Diagnosis
        Findings and verdicts (``callscope.diagnose``).
    version : str
        callscope version that produced it.
    """

    path: str
    info: CaptureInfo
    inventory: object
    metrics: Mapping[str, object]
    diagnosis: object
    version: str = __version__

    @property
    def streams(self):
        return self.inventory.streams

    @property
    def verdict(self) -> str:
        return self.diagnosis.verdict


def analyze(
    path: str | os.PathLike,
    *,
    window_s: float = 1.0,
    decode_as: Sequence[int] = (),
    one_way_delay_ms: float | None = None,
    decoder: str = "builtin",
) -> Report:
    """Analyse one capture: find its media streams, measure them, diagnose them.

    Parameters
    ----------
    path : path-like
        A pcap or pcapng file, optionally gzip-compressed.
    window_s : float
        Width of the per-window time series, seconds.
    decode_as : sequence of int
        UDP ports whose traffic is RTP whatever the heuristic says.
    one_way_delay_ms : float, optional
        A one-way delay known from elsewhere, for the E-model delay term.
    decoder : {"builtin", "wireshark"}
        Which decoder produces the datagram table.

    Returns
    -------
    Report

    Raises
    ------
    CaptureError
        The capture cannot be read (see :mod:`callscope.errors`).

    Examples
    --------
    >>> report = callscope.analyze("fixtures/rtpproxy__lost.a.pcap")  # doctest: +SKIP
    >>> report.verdict                                                # doctest: +SKIP
    """
    from callscope.diagnose import diagnose
    from callscope.media import discover
    from callscope.metrics import measure

    if decoder == "wireshark":
        from callscope.capture.wireshark import read_capture_wireshark

        capture = read_capture_wireshark(path)
    else:
        capture = read_capture(path)
    inventory = discover(
        capture.datagrams,
        capture_start_ns=capture.start_ns,
        tcp_signalling=capture.tcp_signalling,
        decode_as=tuple(decode_as),
    )
    rtt_by_ssrc = _rtt_by_ssrc(inventory)
    metrics = {
        s.id: measure(
            s,
            window_s=window_s,
            one_way_delay_ms=one_way_delay_ms,
            rtt_ms=rtt_by_ssrc.get(s.ssrc) if s.ssrc is not None else None,
        )
        for s in inventory.streams
    }
    return Report(
        path=str(path),
        info=capture.info,
        inventory=inventory,
        metrics=metrics,
        diagnosis=diagnose(inventory, metrics),
    )


def _rtt_by_ssrc(inventory) -> dict[int, float]:
    """Median RTCP round-trip time per media SSRC, where RTCP reported one (RFC 3550 §6.4.1)."""
    fn = getattr(inventory, "rtt_by_ssrc", None)
    return dict(fn()) if callable(fn) else {}
