"""Quality gates: the thresholds that turn a capture's scores into pass or fail.

``callscope analyze`` and ``callscope batch`` share them. A capture is first
reduced to a :class:`CaptureScore` (its worst stream's MOS, largest loss
fraction and jitter, its verdict and findings), read from the ``callscope/1``
document (:func:`callscope.report.jsonout.report_dict`), the stable interface
between the pipeline and everything that consumes its results. Then each
configured gate in :class:`Gates` is checked against it.

Streams with fewer than :data:`MIN_SCORED_PACKETS` packets do not drive the
MOS, loss and jitter gates: a few stray packets (a comfort-noise burst, the
tail of a call captured mid-way, a probe) give a loss fraction of 1/3 or an
E-model score from three samples that says nothing about the call. They are
still counted in the number of streams and still diagnosed. A capture with
no stream long enough to score fails ``--fail-under-mos`` (silence is not
quality) and passes the loss and jitter gates (nothing to measure); the
``setup-blocked`` / ``one-way`` patterns are how to gate on missing media.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from callscope.diagnose.findings import PATTERNS

#: Streams with fewer packets are not scored by the MOS, loss and jitter gates
#: (one second of 20 ms voice frames; RFC 3551 §4.5 default packetisation).
MIN_SCORED_PACKETS = 20


@dataclass(frozen=True)
class FindingScore:
    """One finding as a gate and a CI report need it.

    ``evidence`` holds the finding's evidence as ``"name = value unit"`` text.
    """

    pattern: str
    confidence: float | None
    summary: str
    stream: str | None = None
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaptureScore:
    """A capture reduced to the numbers quality gates compare.

    Attributes
    ----------
    verdict, verdict_confidence, verdict_summary
        The capture's verdict (its strongest finding, ``clean`` when none).
    findings : tuple of FindingScore
        Every finding diagnose reported.
    streams : int
        Media streams found (all of them, scored or not).
    scored_streams : int
        Streams with at least :data:`MIN_SCORED_PACKETS` packets.
    worst_mos, worst_mos_stream
        Lowest E-model MOS (ITU-T G.107 Annex B) of the scored streams and
        which stream it was; None when no scored stream has a MOS.
    max_loss_fraction, max_loss_stream
        Largest loss fraction (RFC 3550 §6.4.1 loss over expected packets)
        of the scored streams.
    max_jitter_ms, max_jitter_stream
        Largest RFC 3550 §6.4.1 interarrival jitter estimate reached by any
        scored stream (Wireshark's "Max Jitter"), in milliseconds.
    warnings : tuple of str
        What the reader warned about (a capture cut mid-record, ...).
    """

    verdict: str
    verdict_confidence: float | None
    verdict_summary: str
    findings: tuple[FindingScore, ...]
    streams: int
    scored_streams: int
    worst_mos: float | None
    worst_mos_stream: str | None
    max_loss_fraction: float | None
    max_loss_stream: str | None
    max_jitter_ms: float | None
    max_jitter_stream: str | None
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_document(cls, doc: Mapping) -> CaptureScore:
        """Reduce a ``callscope/1`` document to its scores.

        Tolerant of keys a document may lack (a stream kind with no MOS, an
        opaque stream with no jitter): missing numbers are simply not scored.
        """
        verdict = doc.get("verdict") or {}
        streams = doc.get("streams") or []
        scored = [s for s in streams if (_number(s.get("packets")) or 0) >= MIN_SCORED_PACKETS]
        worst_mos = _extreme(scored, "mos", min)
        max_loss = _extreme(scored, "loss_fraction", max)
        max_jitter = _extreme(scored, "jitter_max_ms", max)
        return cls(
            verdict=str(verdict.get("pattern") or "clean"),
            verdict_confidence=_number(verdict.get("confidence")),
            verdict_summary=str(verdict.get("summary") or ""),
            findings=tuple(_finding(f) for f in doc.get("findings") or ()),
            streams=len(streams),
            scored_streams=len(scored),
            worst_mos=worst_mos[0],
            worst_mos_stream=worst_mos[1],
            max_loss_fraction=max_loss[0],
            max_loss_stream=max_loss[1],
            max_jitter_ms=max_jitter[0],
            max_jitter_stream=max_jitter[1],
            warnings=tuple(str(w) for w in (doc.get("capture") or {}).get("warnings") or ()),
        )


@dataclass(frozen=True)
class Gates:
    """The thresholds a capture must meet; None (or empty) disables a gate.

    Attributes
    ----------
    min_mos : float, optional
        Fail when the worst scored stream's MOS is below this.
    max_loss : float, optional
        Fail when a scored stream lost more than this fraction (0..1).
    max_jitter_ms : float, optional
        Fail when a scored stream's jitter estimate exceeded this many ms.
    fail_on : frozenset of str
        Fail when diagnose reports any of these patterns, as the verdict or as
        any other finding (``clean`` matches a capture whose verdict is clean).
    """

    min_mos: float | None = None
    max_loss: float | None = None
    max_jitter_ms: float | None = None
    fail_on: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.fail_on) - set(PATTERNS))
        if unknown:
            raise ValueError(_unknown_patterns(unknown))
        if self.max_loss is not None and not 0.0 <= self.max_loss <= 1.0:
            raise ValueError(f"--max-loss is a fraction between 0 and 1, not {self.max_loss:g}")

    @property
    def active(self) -> bool:
        """Whether any gate is configured."""
        return bool(
            self.min_mos is not None or self.max_loss is not None
            or self.max_jitter_ms is not None or self.fail_on
        )

    def describe(self) -> str:
        """The configured gates as the command-line options that set them."""
        parts = []
        if self.min_mos is not None:
            parts.append(f"--fail-under-mos {self.min_mos:g}")
        if self.max_loss is not None:
            parts.append(f"--max-loss {self.max_loss:g}")
        if self.max_jitter_ms is not None:
            parts.append(f"--max-jitter-ms {self.max_jitter_ms:g}")
        if self.fail_on:
            parts.append("--fail-on " + ",".join(p for p in PATTERNS if p in self.fail_on))
        return " ".join(parts) if parts else "none"


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate on one capture.

    ``message`` says what was measured against what threshold, with the
    evidence (which stream, the finding's numbers) when the gate is crossed.
    """

    gate: str
    passed: bool
    message: str


def parse_patterns(text: str | Iterable[str]) -> frozenset[str]:
    """Pattern names from ``"policing,cutoff"`` (or several such strings).

    Raises
    ------
    ValueError
        A name is not in the taxonomy (:data:`callscope.diagnose.findings.PATTERNS`).
    """
    items = [text] if isinstance(text, str) else list(text)
    names = {n.strip() for item in items for n in item.split(",") if n.strip()}
    unknown = sorted(names - set(PATTERNS))
    if unknown:
        raise ValueError(_unknown_patterns(unknown))
    return frozenset(names)


def check(score: CaptureScore, gates: Gates) -> tuple[GateResult, ...]:
    """Check every configured gate against one capture's scores.

    Returns one :class:`GateResult` per configured gate, in the order
    MOS, loss, jitter, patterns.
    """
    results = []
    if gates.min_mos is not None:
        results.append(_check_mos(score, gates.min_mos))
    if gates.max_loss is not None:
        results.append(_check_upper(
            "max-loss", score.max_loss_fraction, score.max_loss_stream, gates.max_loss,
            "loss", lambda v: f"{v:.2%}"))
    if gates.max_jitter_ms is not None:
        results.append(_check_upper(
            "max-jitter-ms", score.max_jitter_ms, score.max_jitter_stream, gates.max_jitter_ms,
            "jitter", lambda v: f"{v:.1f} ms"))
    if gates.fail_on:
        results.append(_check_patterns(score, gates.fail_on))
    return tuple(results)


def _check_mos(score: CaptureScore, threshold: float) -> GateResult:
    if score.worst_mos is None:
        return GateResult(
            "fail-under-mos", False,
            f"no stream with >= {MIN_SCORED_PACKETS} packets and a MOS to score "
            f"({score.streams} stream(s) found; verdict {score.verdict})")
    passed = score.worst_mos >= threshold
    relation = ">=" if passed else "<"
    return GateResult(
        "fail-under-mos", passed,
        f"worst MOS {score.worst_mos:.2f} {relation} {threshold:g} (stream {score.worst_mos_stream})")


def _check_upper(gate: str, value: float | None, stream: str | None, limit: float, what: str,
                 fmt) -> GateResult:
    if value is None:
        return GateResult(gate, True, f"no scored stream with a {what} figure")
    passed = value <= limit
    relation = "<=" if passed else ">"
    return GateResult(gate, passed, f"{what} {fmt(value)} {relation} {fmt(limit)} (stream {stream})")


def _check_patterns(score: CaptureScore, patterns: frozenset[str]) -> GateResult:
    hits = [f for f in score.findings if f.pattern in patterns]
    if score.verdict in patterns and not any(f.pattern == score.verdict for f in hits):
        hits.insert(0, FindingScore(score.verdict, score.verdict_confidence, score.verdict_summary))
    if not hits:
        return GateResult("fail-on", True, f"none of {', '.join(sorted(patterns))} found")
    lines = []
    for f in hits:
        confidence = f" (confidence {f.confidence:.2f})" if f.confidence is not None else ""
        where = f" on {f.stream}" if f.stream else ""
        evidence = f"; evidence: {', '.join(f.evidence)}" if f.evidence else ""
        lines.append(f"{f.pattern}{confidence}{where}: {f.summary}{evidence}")
    return GateResult("fail-on", False, "\n".join(lines))


def _finding(f: Mapping) -> FindingScore:
    stream = f.get("stream_id") or f.get("call_id")
    return FindingScore(
        pattern=str(f.get("pattern")),
        confidence=_number(f.get("confidence")),
        summary=str(f.get("summary") or ""),
        stream=str(stream) if stream is not None else None,
        evidence=tuple(_evidence_text(e) for e in f.get("evidence") or ()),
    )


def _evidence_text(e: object) -> str:
    if not isinstance(e, Mapping):
        return str(e)
    value = _number(e.get("value"))
    shown = f"{value:.4g}" if value is not None else "n/a"
    unit = f" {e['unit']}" if e.get("unit") else ""
    return f"{e.get('name')} = {shown}{unit}"


def _extreme(streams: list[Mapping], key: str, pick) -> tuple[float | None, str | None]:
    """The smallest or largest finite ``key`` over ``streams`` and the id of its stream."""
    candidates = [(_number(s.get(key)), s.get("id")) for s in streams]
    candidates = [(v, str(i) if i is not None else None) for v, i in candidates if v is not None]
    if not candidates:
        return None, None
    return pick(candidates, key=lambda c: c[0])


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _unknown_patterns(unknown: list[str]) -> str:
    return f"unknown pattern {', '.join(unknown)}; known patterns: {', '.join(PATTERNS)}"
