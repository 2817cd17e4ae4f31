"""JUnit XML for CI systems: one test case per capture.

The layout is the one Jenkins, GitLab, GitHub Actions reporters and Azure
Pipelines read (Jenkins' ``junit-10.xsd``, itself Ant's
``XMLJUnitResultFormatter`` output): ``<testsuites>`` holding one
``<testsuite>`` with ``tests`` / ``failures`` / ``errors`` / ``skipped`` /
``time`` / ``timestamp`` / ``hostname`` attributes, ``<properties>``, then
one ``<testcase name classname file time>`` per capture:

- a capture that crossed a gate holds one ``<failure message=... type=...>``
  per gate crossed; ``type`` is the gate (``fail-under-mos``, ``max-loss``,
  ``max-jitter-ms``, ``fail-on``), ``message`` the one-line result and the
  element's text the evidence (the findings' numbers);
- a capture that could not be analyzed holds ``<error message type>``;
- every test case's ``<system-out>`` holds the verdict and the findings.
"""

from __future__ import annotations

import re
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING

from callscope import __version__

if TYPE_CHECKING:
    from callscope.gates import Gates, Outcome, Totals

SUITE_NAME = "callscope batch"

#: Characters XML 1.0 cannot carry (XML 1.0 §2.2 Char production), even escaped.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


#: a file-name byte that was not UTF-8, as Python holds it (PEP 383)
_SURROGATE_BYTE = re.compile("[\udc80-\udcff]")


def junit_xml(outcomes: Sequence[Outcome], totals: Totals, gates: Gates, *,
              timestamp: float | None = None) -> str:
    """The JUnit XML document for a batch, as text (UTF-8 declaration included).

    Parameters
    ----------
    outcomes : sequence of Outcome
        One per capture, in the order the test cases should appear.
    totals : Totals
        The batch's counts (``time`` is its wall time).
    gates : Gates
        Recorded as a suite property.
    timestamp : float, optional
        When the batch started (seconds since the epoch; default now).
    """
    started = time.gmtime(time.time() if timestamp is None else timestamp)
    counts = {
        "tests": str(totals.captures),
        "failures": str(totals.failed),
        "errors": str(totals.errors),
        "skipped": "0",
        "time": f"{totals.wall_s:.3f}",
    }
    root = ET.Element("testsuites", {"name": "callscope", **counts})
    suite = ET.SubElement(root, "testsuite", {
        "name": SUITE_NAME, **counts,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", started),
        "hostname": socket.gethostname(),
    })
    props = ET.SubElement(suite, "properties")
    for name, value in (("callscope_version", __version__), ("gates", gates.describe()),
                        ("from_cache", str(totals.cached))):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for o in outcomes:
        _testcase(suite, o)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _testcase(suite: ET.Element, o: Outcome) -> None:
    path = PurePath(o.result.path)
    case = ET.SubElement(suite, "testcase", {
        "name": _clean(path.name),
        "classname": _clean(_classname(path)),
        "file": _clean(o.result.path),
        "time": f"{o.result.duration_s:.3f}",
    })
    if o.result.error is not None:
        err = ET.SubElement(case, "error", {"message": _clean(o.result.error),
                                            "type": _clean(o.result.error_type or "error")})
        err.text = _clean(o.result.error)
    diagnosis = _diagnosis_text(o)
    for g in o.failures:
        lines = g.message.splitlines() or [g.gate]
        first = lines[0] + (f" (+{len(lines) - 1} more)" if len(lines) > 1 else "")
        fail = ET.SubElement(case, "failure", {"message": _clean(first), "type": g.gate})
        fail.text = _clean(g.message + ("\n\n" + diagnosis if diagnosis else ""))
    if diagnosis:
        ET.SubElement(case, "system-out").text = _clean(diagnosis)


def _diagnosis_text(o: Outcome) -> str:
    """The verdict, each finding with its evidence, and the reader's warnings."""
    s = o.result.score
    if s is None:
        return ""
    out = [f"verdict: {s.verdict}"
           + (f" (confidence {s.verdict_confidence:.2f})" if s.verdict_confidence is not None else "")
           + (f": {s.verdict_summary}" if s.verdict_summary else "")]
    for f in s.findings:
        out.append(f"finding: {f.pattern}"
                   + (f" {f.confidence:.2f}" if f.confidence is not None else "")
                   + (f" on {f.stream}" if f.stream else "") + f": {f.summary}")
        out.extend(f"  {e}" for e in f.evidence)
    out.extend(f"warning: {w}" for w in s.warnings)
    if o.result.cached:
        out.append("result taken from the cache")
    return "\n".join(out)


def _classname(path: PurePath) -> str:
    """Dotted directory of the capture (``captures.nightly``): how CI groups test cases."""
    parts = [p for p in path.parent.parts if p not in ("/", ".", "..")]
    return ".".join(p.replace(".", "_") for p in parts) or "callscope"


def _clean(text: str) -> str:
    """Text XML 1.0 can carry: undecodable file-name bytes as ``\\xNN``, other impossible characters U+FFFD."""
    return _NOT_XML.sub("\ufffd", _SURROGATE_BYTE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text))
