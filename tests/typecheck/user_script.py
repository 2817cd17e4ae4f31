"""A short program as a user of the library writes it, checked by mypy in
tests/test_typing.py and also run there.

Every ``assert_type`` fails the check when the public type it names changes or
decays to ``Any`` (as it would if ``callscope.analyze`` were reachable only
through the lazy module ``__getattr__``); every line marked ``type: ignore``
must stay an error (``warn_unused_ignores``), which it is only while the real
types are known.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, assert_type

import callscope
from callscope import Report
from callscope.capture.reader import CaptureInfo
from callscope.diagnose import Diagnosis, Finding
from callscope.media import MediaInventory, MediaStream
from callscope.metrics import StreamMetrics, Timeline


def worst_stream(report: Report) -> tuple[str, float] | None:
    """The stream with the lowest MOS, and that MOS."""
    worst: tuple[str, float] | None = None
    for sid, m in report.metrics.items():
        mos: float = m.mos
        if worst is None or mos < worst[1]:
            worst = (sid, mos)
    return worst


def main(path: str) -> int:
    report = callscope.analyze(path, window_s=1.0)
    assert_type(report, Report)
    assert_type(report.info, CaptureInfo)
    assert_type(report.inventory, MediaInventory)
    assert_type(report.metrics, Mapping[str, StreamMetrics])
    assert_type(report.diagnosis, Diagnosis)
    assert_type(report.streams, tuple[MediaStream, ...])
    assert_type(report.verdict, str)
    assert_type(report.version, str)
    assert_type(callscope.__version__, str)

    verdict: str = report.verdict
    print(f"{report.path}: {verdict} (callscope {report.version})")
    for stream in report.streams:
        assert_type(stream.ssrc, int | None)
        m = report.metrics[stream.id]
        loss: float = m.loss_fraction
        jitter: float | None = m.jitter_mean_ms
        packets: int = m.packets
        assert_type(m.timeline, Timeline)
        print(f"  {stream.id} {stream.kind} {stream.codec or '?'}: {packets} packets, "
              f"loss {loss:.1%}, jitter {jitter if jitter is not None else float('nan'):.1f} ms, "
              f"MOS {m.mos:.2f}")
        wrong: str = m.loss_fraction  # type: ignore[assignment]
        del wrong
    for finding in report.diagnosis.findings:
        assert_type(finding, Finding)
        confidence: float = finding.confidence
        print(f"  {finding.pattern} {confidence:.2f} {finding.stream_id or ''}: {finding.summary}")
    not_a_number: int = report.verdict  # type: ignore[assignment]
    del not_a_number
    if TYPE_CHECKING:  # a misspelt name stays an error: no module __getattr__ makes it Any
        callscope.analyse(path)  # type: ignore[attr-defined]
    print("worst:", worst_stream(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
