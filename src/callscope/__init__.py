"""callscope: offline analysis of voice calls in packet captures.

>>> import callscope
>>> report = callscope.analyze("fixtures/rtpproxy__lost.a.pcap")  # doctest: +SKIP
>>> report.verdict                                                # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Report", "__version__", "analyze"]


def __getattr__(name: str):
    # Lazy, so that `import callscope` (and the CLI's start-up) stays cheap.
    if name in ("analyze", "Report"):
        from callscope import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module 'callscope' has no attribute {name!r}")
