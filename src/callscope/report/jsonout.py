"""The ``callscope/1`` JSON document: the one place results become JSON.

Schema (stable keys; additions only within ``callscope/1``):

- ``schema``: ``"callscope/1"``; ``callscope_version``.
- ``capture``: path, format, link_types, packets, udp_datagrams, first_time,
  last_time (s since the epoch), duration_s, truncated, warnings.
- ``verdict``: the capture's strongest finding (``pattern``, ``confidence``,
  ``summary``), ``clean`` when there is none.
- ``streams``: one object per media stream: identity (``id``, ``kind``,
  ``src``, ``src_port``, ``dst``, ``dst_port``, ``ssrc`` as an integer,
  ``payload_type``, ``codec``, ``clock_rate``, ``clock_source``, ``transport``,
  ``peer``, ``encrypted``, ``call_id``; the RTP-only keys ``ssrc``,
  ``payload_type``, ``clock_rate`` and ``clock_source`` are absent for
  ``kind: "opaque"``), every scalar metric of
  :class:`callscope.metrics.StreamMetrics` under its own name (units in the
  name: ``delta_max_ms``, ``loss_fraction`` ...), ``emodel`` (every E-model
  input next to ``r_factor`` / ``mos``), ``verdict`` (the stream's primary
  pattern) and ``series`` (the per-window time series, one list per column;
  ``series.window_s`` is the width used, wider than asked when a stream's
  packets are spread over more windows than its budget allows -- see
  :func:`callscope.metrics.timeline.window_width` -- so that the document
  grows with packets, never with time spans). Text from the capture
  (file names, Call-IDs, codec names) is valid Unicode: file-name bytes that
  were not UTF-8 appear as ``\\xNN``.
- ``calls``: the streams of each call, both directions.
- ``findings``: pattern, confidence, stream or call, evidence (name, value,
  unit), summary, audible effect, time spans, estimated parameters.
- ``rtcp``, ``stun``, ``sip``: what the control protocols reported.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SCHEMA = "callscope/1"

#: MediaStream fields that are part of a stream's identity in JSON
STREAM_IDENTITY = (
    "id", "kind", "src", "src_port", "dst", "dst_port", "ssrc", "payload_type", "codec",
    "clock_rate", "clock_source", "transport", "peer", "encrypted", "call_id", "notes",
)
#: identity keys that only RTP streams have (left out for ``kind: opaque``)
RTP_ONLY = ("ssrc", "payload_type", "clock_rate", "clock_source")


#: a file-name byte that was not UTF-8, as Python holds it (PEP 383 surrogateescape)
_SURROGATE = re.compile("[\ud800-\udfff]")


def text(value: str) -> str:
    """``value`` as valid Unicode: undecodable file-name bytes written ``\\xNN`` (JSON must be UTF-8)."""
    if value.isascii():
        return value
    return _SURROGATE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}" if 0xDC80 <= ord(m.group()) <= 0xDCFF
                          else f"\\u{ord(m.group()):04x}", value)


def jsonable(obj: object, *, arrays: bool = True) -> object:
    """Plain JSON value for results: dataclasses, numpy scalars/arrays, NaN -> null.

    With ``arrays=False`` numpy arrays of one dimension or more are left out
    (per-packet detail does not belong in the document).
    """
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, str):
        return text(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        if obj.ndim == 0:
            return jsonable(obj.item())
        return _array_list(obj) if arrays else _SKIP
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for fld in dataclasses.fields(obj):
            v = jsonable(getattr(obj, fld.name), arrays=arrays)
            if v is not _SKIP:
                out[fld.name] = v
        return out
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, arrays=arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [v for v in (jsonable(x, arrays=arrays) for x in obj) if v is not _SKIP]
    return str(obj)


def _array_list(a: np.ndarray) -> list:
    """A numpy array as nested lists of plain values, NaN and infinities as null.

    One ``tolist`` for the whole array; only the non-finite entries of a float
    array are visited in Python (per-window series hold thousands of values).
    """
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            a = a.astype(object)
            a[bad] = None
        return a.tolist()
    if a.dtype.kind in "biu":
        return a.tolist()
    return [jsonable(v) for v in a.tolist()]


class _Skip:
    pass


_SKIP = _Skip()


def _scalars(obj: DataclassInstance) -> dict:
    """The scalar and small fields of a metrics dataclass (no per-packet arrays)."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray) and v.ndim > 0:
            continue
        if dataclasses.is_dataclass(v) and _has_arrays(v):
            continue
        out[f.name] = jsonable(v, arrays=False)
    return out


def _has_arrays(obj: DataclassInstance | type[DataclassInstance]) -> bool:
    return any(isinstance(getattr(obj, f.name), np.ndarray) for f in dataclasses.fields(obj))


def stream_dict(stream, metrics, verdict: str | None) -> dict:
    """One stream's JSON object: identity, scalar metrics, verdict, series."""
    d = {k: jsonable(getattr(stream, k, None)) for k in STREAM_IDENTITY}
    if stream.ssrc is None:
        # Opaque media has no RTP header: the RTP-only keys are absent, not null.
        for k in RTP_ONLY:
            d.pop(k, None)
    else:
        d["ssrc_hex"] = f"0x{stream.ssrc:08X}"
    d.update(_scalars(metrics))
    d["verdict"] = verdict or "clean"
    timeline = getattr(metrics, "timeline", None)
    if timeline is not None:
        d["series"] = jsonable(timeline)
    return d


def capture_dict(info) -> dict:
    return {
        "path": text(info.path),
        "format": info.format,
        "compressed": info.compressed,
        "link_types": list(info.link_types),
        "packets": info.packets,
        "udp_datagrams": info.udp_datagrams,
        "first_time": info.first_time_ns / 1e9 if info.first_time_ns is not None else None,
        "last_time": info.last_time_ns / 1e9 if info.last_time_ns is not None else None,
        "duration_s": info.duration_s,
        "truncated": info.truncated,
        "warnings": [text(w) for w in info.warnings],
    }


def report_dict(report) -> dict:
    """The ``callscope/1`` document for one :class:`~callscope.analysis.Report`."""
    diag = report.diagnosis
    verdicts = getattr(diag, "stream_verdicts", {}) or {}
    inv = report.inventory
    top = _verdict_finding(diag)
    return {
        "schema": SCHEMA,
        "callscope_version": report.version,
        "capture": capture_dict(report.info),
        "verdict": {
            "pattern": diag.verdict,
            "confidence": jsonable(getattr(diag, "verdict_confidence", None)),
            "summary": top.summary if top is not None else "no degradation found",
        },
        "streams": [stream_dict(s, report.metrics[s.id], verdicts.get(s.id)) for s in inv.streams],
        "calls": jsonable(getattr(inv, "calls", ()), arrays=False),
        "findings": jsonable(diag.findings, arrays=False),
        # What the diagnosis saw but did not call a finding, and why (a hang-up,
        # a stop at the capture's own host, a stream too short to judge).
        "notes": list(getattr(diag, "notes", ())),
        "rtcp": jsonable(getattr(inv, "rtcp", ()), arrays=True),
        "stun": jsonable(getattr(inv, "stun", None), arrays=False),
        "sip": jsonable(getattr(inv, "sip", None), arrays=False),
    }


def _verdict_finding(diag):
    best = None
    for f in diag.findings:
        if f.pattern == diag.verdict and (best is None or f.confidence > best.confidence):
            best = f
    return best
