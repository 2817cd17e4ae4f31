"""The ``callscope/1`` JSON document: the one place results become JSON.

The contract is the JSON Schema shipped beside this module,
``schema/callscope-1.schema.json`` (:func:`load_schema`); the document is
built key by key from the lists below, never by walking dataclass fields, so
a field added to a result class stays out of the document until it is added
here and to the schema. Within ``callscope/1`` keys are only added (every
object in the schema is closed, so each addition is deliberate); removing,
renaming or retyping a key makes ``callscope/2``.

- ``schema``: ``"callscope/1"``; ``callscope_version``.
- ``capture``: path, format, compressed, link_types, packets, udp_datagrams,
  first_time, last_time (s since the epoch), duration_s, truncated, warnings.
- ``verdict``: the capture's strongest finding (``pattern``, ``confidence``,
  ``summary``), ``clean`` when there is none.
- ``streams``: one object per media stream: identity (``id``, ``kind``,
  ``src``, ``src_port``, ``dst``, ``dst_port``, ``ssrc`` as an integer,
  ``payload_type``, ``codec``, ``clock_rate``, ``clock_source``, ``transport``,
  ``peer``, ``encrypted``, ``call_id``, ``notes``; the RTP-only keys ``ssrc``,
  ``ssrc_hex``, ``payload_type``, ``clock_rate`` and ``clock_source`` are
  absent for ``kind: "opaque"``), every scalar metric of
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
- ``notes``: what the diagnosis saw but did not call a finding.
- ``rtcp``, ``stun``, ``sip``: what the control protocols reported;
  ``rtcp.srtcp`` has one entry per SRTCP sender decrypted with a key
  (packets, decrypted, auth_failures, replays, finding).

Numbers that are undefined (NaN) or infinite are written ``null``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
from collections.abc import Mapping
from importlib.resources import files

import numpy as np

SCHEMA = "callscope/1"


def load_schema(name: str = "callscope-1") -> dict:
    """The JSON Schema (draft 2020-12) of a document callscope writes.

    Parameters
    ----------
    name : {"callscope-1", "batch-record-1"}
        ``callscope-1``: ``analyze --format json``; ``batch-record-1``: a line
        of ``batch --jsonl``.

    Examples
    --------
    >>> load_schema()["properties"]["schema"]
    {'const': 'callscope/1'}
    """
    resource = files("callscope.report").joinpath("schema", f"{name}.schema.json")
    return json.loads(resource.read_text(encoding="utf-8"))

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


#: The keys of each object in a ``callscope/1`` document, in the order they are
#: written. The document is built from these lists, never by walking dataclass
#: fields, so that adding a field to a result class does not change the
#: contract; ``schema/callscope-1.schema.json`` lists the same keys (a test
#: holds the two equal).
STREAM_METRICS = (
    "packets", "expected", "lost", "missing", "duplicates", "reordered", "sequence_restarts",
    "loss_fraction", "loss_inferred", "delta_min_ms", "delta_mean_ms", "delta_max_ms",
    "jitter_mean_ms", "jitter_max_ms", "jitter_p95_ms", "delay_p50_ms", "delay_p95_ms",
    "delay_max_ms", "delay_trend_ms_per_s", "clock_skew_ppm", "loss_runs", "burst_density",
    "gap_density", "burst_duration_ms", "gap_duration_ms", "ge_p", "ge_r", "ge_loss_good",
    "ge_loss_bad", "burst_ratio", "jb_late_fixed", "jb_late_adaptive", "jb_delay_fixed_ms",
    "jb_delay_adaptive_ms", "effective_loss_fraction", "r_factor", "mos", "bitrate_kbps",
    "duration_s", "first_time_s", "last_time_s", "ptime_ms",
)
EMODEL = ("codec", "codec_source", "ie", "bpl", "ppl_percent", "burst_r", "ta_ms", "ro", "is_", "id_",
          "ie_eff", "advantage")
#: per-window columns of a stream's ``series`` (after ``window_s``)
SERIES = ("start_s", "packets", "expected", "lost", "loss_fraction", "jitter_ms", "delay_ms",
          "bitrate_kbps", "mos")
CALL = ("id", "stream_ids", "call_id", "from_uri", "to_uri", "session_name")
FINDING = ("pattern", "confidence", "summary", "stream_id", "call_id")  # then evidence, audible, spans, params
EVIDENCE = ("name", "value", "unit")
SENDER_REPORT = ("frame", "time", "src", "src_port", "dst", "dst_port", "ssrc", "ntp", "rtp_ts",
                 "packet_count", "octet_count")
REPORT_BLOCK = ("frame", "time", "src", "src_port", "dst", "dst_port", "packet_type", "reporter_ssrc",
                "source_ssrc", "fraction_lost", "cumulative_lost", "highest_seq", "jitter", "lsr",
                "dlsr", "rtt_s")
VOIP_METRICS = (
    "frame", "time", "reporter_ssrc", "source_ssrc", "loss_rate", "discard_rate", "burst_density",
    "gap_density", "burst_duration_ms", "gap_duration_ms", "round_trip_delay_ms",
    "end_system_delay_ms", "signal_level_dbm", "noise_level_dbm", "rerl_db", "gmin", "r_factor",
    "ext_r_factor", "mos_lq", "mos_cq", "rx_config", "jb_nominal_ms", "jb_maximum_ms",
    "jb_abs_max_ms",
)
BYE = ("frame", "time", "ssrcs", "reason")
SRTCP_DECRYPTION = ("ssrc", "stream_ids", "suite", "key_source", "packets", "decrypted", "auth_failures", "replays",
                    "other_failures", "finding")
STUN_EXCHANGE_COUNTS = (
    "client", "client_port", "server", "server_port", "first_time", "last_time", "binding_requests",
    "binding_success", "binding_errors", "allocate_requests", "allocate_success", "allocate_errors",
    "other_requests", "other_success", "other_errors", "transactions", "answered",
    "retransmissions", "send_indications", "data_indications", "channel_data",
)  # then channel_bindings, error_codes, retried_after_answer
CHANNEL_BINDING = ("channel", "peer", "peer_port", "frame")
SIP_CALL = ("call_id", "from_uri", "to_uri", "session_name", "first_frame", "methods", "final_status")
SIP_CALL_TIMES = ("first_time", "last_time", "bye_time")  # after media
#: ``crypto`` is written as each attribute's tag and suite, never its key
SDP_MEDIA = ("media", "address", "port", "proto", "payload_types", "rtpmap", "rtcp_mux", "direction",
             "crypto")


def _value(v: object) -> object:
    """A plain JSON value for one scalar, or a sequence of scalars, of a result.

    Numpy scalars become Python numbers, NaN and infinities null, enums their
    value, text valid Unicode (:func:`text`); a key-withholding object (an SDES
    ``a=crypto`` attribute) its ``str``.
    """
    if isinstance(v, (tuple, list)):
        return [_value(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.item()) if v.ndim == 0 else _array_list(v)
    return jsonable(v)


def _pick(obj: object, keys: tuple[str, ...]) -> dict:
    """``{key: obj.key}`` for the listed keys, values made plain."""
    return {k: _value(getattr(obj, k)) for k in keys}


def stream_dict(stream, metrics, verdict: str | None) -> dict:
    """One stream's JSON object: identity, scalar metrics, verdict, series."""
    d = _pick(stream, STREAM_IDENTITY)
    if stream.ssrc is None:
        # Opaque media has no RTP header: the RTP-only keys are absent, not null.
        for k in RTP_ONLY:
            del d[k]
    else:
        d["ssrc_hex"] = f"0x{stream.ssrc:08X}"
    d.update(_pick(metrics, STREAM_METRICS))
    d["emodel"] = _pick(metrics.emodel, EMODEL)
    d["verdict"] = verdict or "clean"
    timeline = metrics.timeline
    if timeline is not None:
        d["series"] = {"window_s": _value(timeline.window_s), **_pick(timeline, SERIES)}
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


def finding_dict(f) -> dict:
    """One finding: what, how sure, where, the evidence, what it sounds like, when, the estimates."""
    return {
        **_pick(f, FINDING),
        "evidence": [_pick(e, EVIDENCE) for e in f.evidence],
        "audible": _value(f.audible),
        "spans": _value(f.spans),
        "params": [_pick(e, EVIDENCE) for e in f.params],
    }


def rtcp_dict(rtcp) -> dict:
    """What RTCP reported (RFC 3550 §6.4 SR/RR, RFC 3611 §4.7 VoIP metrics, §6.5 SDES, §6.6 BYE)."""
    return {
        "packets": _value(rtcp.packets),
        "encrypted": _value(rtcp.encrypted),
        "malformed": _value(rtcp.malformed),
        "sender_reports": [_pick(r, SENDER_REPORT) for r in rtcp.sender_reports],
        "report_blocks": [_pick(b, REPORT_BLOCK) for b in rtcp.report_blocks],
        "voip_metrics": [_pick(m, VOIP_METRICS) for m in rtcp.voip_metrics],
        "cnames": _value(rtcp.cnames),
        "byes": [_pick(b, BYE) for b in rtcp.byes],
        "encrypted_ssrcs": _value(rtcp.encrypted_ssrcs),
        "srtcp": [_pick(d, SRTCP_DECRYPTION) for d in rtcp.srtcp],
    }


def stun_dict(stun) -> dict:
    """Every STUN/TURN exchange (one per client/server 5-tuple)."""
    return {"exchanges": [{
        **_pick(x, STUN_EXCHANGE_COUNTS),
        "channel_bindings": [_pick(b, CHANNEL_BINDING) for b in x.channel_bindings],
        "error_codes": _value(x.error_codes),
        "retried_after_answer": _value(x.retried_after_answer),
    } for x in stun.exchanges]}


def sip_dict(sip) -> dict:
    """SIP message count and each call's dialogue and SDP media."""
    return {
        "messages": _value(sip.messages),
        "calls": [{
            **_pick(c, SIP_CALL),
            "media": [_pick(m, SDP_MEDIA) for m in c.media],
            **_pick(c, SIP_CALL_TIMES),
        } for c in sip.calls],
    }


def report_dict(report) -> dict:
    """The ``callscope/1`` document for one :class:`~callscope.analysis.Report`."""
    # here, not at the top: the escaping helpers of this module are imported by
    # commands that never diagnose (callscope info), and gates loads diagnose
    from callscope.gates import NO_FINDING_SUMMARY, verdict_finding

    diag = report.diagnosis
    verdicts = diag.stream_verdicts
    inv = report.inventory
    top = verdict_finding(diag)
    return {
        "schema": SCHEMA,
        "callscope_version": report.version,
        "capture": capture_dict(report.info),
        "verdict": {
            "pattern": diag.verdict,
            "confidence": _value(diag.verdict_confidence),
            "summary": text(top.summary) if top is not None else NO_FINDING_SUMMARY,
        },
        "streams": [stream_dict(s, report.metrics[s.id], verdicts.get(s.id)) for s in inv.streams],
        "calls": [_pick(c, CALL) for c in inv.calls],
        "findings": [finding_dict(f) for f in diag.findings],
        # What the diagnosis saw but did not call a finding, and why (a hang-up,
        # a stop at the capture's own host, a stream too short to judge).
        "notes": [text(n) for n in diag.notes],
        "rtcp": rtcp_dict(inv.rtcp),
        "stun": stun_dict(inv.stun),
        "sip": sip_dict(inv.sip),
    }
