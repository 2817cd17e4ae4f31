"""Quality gates: the thresholds that turn a capture's scores into pass or fail.

``callscope analyze`` and ``callscope batch`` share them. A capture is first
reduced to a :class:`CaptureScore` (its worst stream's MOS, largest loss
fraction and jitter, its verdict and findings), read from the typed
:class:`~callscope.analysis.Report` (:meth:`CaptureScore.from_report`) or
from a saved ``callscope/1`` document (:meth:`CaptureScore.from_document`).
Then each configured gate in :class:`Gates` is checked against it, giving an
:class:`Outcome` per capture and :class:`Totals` over a batch, which the
writers in :mod:`callscope.report` (JSONL, CSV, JUnit, Markdown) format.
Data flows one way: this module never imports :mod:`callscope.report`.

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
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from callscope.diagnose.findings import PATTERNS

if TYPE_CHECKING:
    from callscope.analysis import Report
    from callscope.diagnose.findings import Diagnosis, Finding

#: Streams with fewer packets are not scored by the MOS, loss and jitter gates
#: (one second of 20 ms voice frames; RFC 3551 §4.5 default packetisation).
MIN_SCORED_PACKETS = 20
#: The verdict summary of a capture with no finding.
NO_FINDING_SUMMARY = "no degradation found"


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
    def from_report(cls, report: Report) -> CaptureScore:
        """Reduce an analyzed capture (:func:`callscope.analyze`) to its scores."""
        diagnosis = report.diagnosis
        top = verdict_finding(diagnosis)
        streams = [(s.id, report.metrics[s.id]) for s in report.inventory.streams]
        return cls._reduce(
            verdict=diagnosis.verdict,
            confidence=diagnosis.verdict_confidence,
            summary=top.summary if top is not None else NO_FINDING_SUMMARY,
            findings=[FindingScore(
                pattern=str(f.pattern),
                confidence=_number(f.confidence),
                summary=str(f.summary or ""),
                stream=_stream_of(f.stream_id, f.call_id),
                evidence=tuple(_evidence_text(e.name, e.value, e.unit) for e in f.evidence),
            ) for f in diagnosis.findings],
            streams=[(i, m.packets, m.mos, m.loss_fraction, m.jitter_max_ms) for i, m in streams],
            warnings=report.info.warnings,
        )

    @classmethod
    def from_document(cls, doc: Mapping) -> CaptureScore:
        """Reduce a ``callscope/1`` document (``analyze --format json``, read back) to its scores.

        Tolerant of keys a document may lack (a stream kind with no MOS, an
        opaque stream with no jitter): missing numbers are simply not scored.
        """
        verdict = doc.get("verdict") or {}
        return cls._reduce(
            verdict=verdict.get("pattern"),
            confidence=verdict.get("confidence"),
            summary=verdict.get("summary"),
            findings=[_finding(f) for f in doc.get("findings") or ()],
            streams=[(s.get("id"), s.get("packets"), s.get("mos"), s.get("loss_fraction"),
                      s.get("jitter_max_ms")) for s in doc.get("streams") or ()],
            warnings=(doc.get("capture") or {}).get("warnings") or (),
        )

    @classmethod
    def _reduce(cls, *, verdict: object, confidence: object, summary: object,
                findings: list[FindingScore], streams: list[tuple], warnings: Iterable) -> CaptureScore:
        """The scores from the verdict, the findings and ``(id, packets, mos, loss, jitter)`` per stream."""
        scored = [s for s in streams if (_number(s[1]) or 0) >= MIN_SCORED_PACKETS]
        worst_mos = _extreme(scored, 2, min)
        max_loss = _extreme(scored, 3, max)
        max_jitter = _extreme(scored, 4, max)
        return cls(
            verdict=str(verdict or "clean"),
            verdict_confidence=_number(confidence),
            verdict_summary=str(summary or ""),
            findings=tuple(findings),
            streams=len(streams),
            scored_streams=len(scored),
            worst_mos=worst_mos[0],
            worst_mos_stream=worst_mos[1],
            max_loss_fraction=max_loss[0],
            max_loss_stream=max_loss[1],
            max_jitter_ms=max_jitter[0],
            max_jitter_stream=max_jitter[1],
            warnings=tuple(str(w) for w in warnings),
        )


def verdict_finding(diagnosis: Diagnosis) -> Finding | None:
    """The finding behind a capture's verdict: the most confident one of the verdict's pattern."""
    best = None
    for f in diagnosis.findings:
        if f.pattern == diagnosis.verdict and (best is None or f.confidence > best.confidence):
            best = f
    return best


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


#: What a capture's outcome is, in batch records and tables.
STATUS_PASS = "pass"
STATUS_FAIL = "fail"
STATUS_ERROR = "error"


@dataclass(frozen=True)
class CaptureResult:
    """What analyzing one capture gave: its scores, or the error that stopped it.

    Attributes
    ----------
    path : str
        The capture, as it was found (relative paths stay relative).
    score : CaptureScore or None
        None when the capture could not be analyzed.
    error, error_type : str or None
        The error message (one line, naming the file) and its exception class.
    duration_s : float
        Wall time of the analysis (of the original one, for a cached result).
    sha256 : str or None
        Hex digest of the file's content, when a cache was used.
    cached : bool
        Whether the result came from the cache rather than a fresh analysis.
    """

    path: str
    score: CaptureScore | None
    error: str | None = None
    error_type: str | None = None
    duration_s: float = 0.0
    sha256: str | None = None
    cached: bool = False


@dataclass(frozen=True)
class Outcome:
    """One capture's result judged against the gates."""

    result: CaptureResult
    gates: tuple[GateResult, ...]

    @property
    def status(self) -> str:
        """``"error"`` (not analyzed), ``"fail"`` (a gate crossed) or ``"pass"``."""
        if self.result.score is None:
            return STATUS_ERROR
        return STATUS_FAIL if any(not g.passed for g in self.gates) else STATUS_PASS

    @property
    def failures(self) -> tuple[GateResult, ...]:
        """The gates this capture crossed."""
        return tuple(g for g in self.gates if not g.passed)


@dataclass(frozen=True)
class Totals:
    """Counts over a batch, for the summary line and the exit code."""

    captures: int
    passed: int
    failed: int
    errors: int
    cached: int
    wall_s: float
    planned: int

    @property
    def analyzed(self) -> int:
        """Captures analyzed in this run (not taken from the cache)."""
        return self.captures - self.cached

    @property
    def complete(self) -> bool:
        """Whether every planned capture has a result (False after an interrupt)."""
        return self.captures == self.planned

    def exit_code(self, allow_errors: bool = False) -> int:
        """0 when every capture passed, 1 when a gate was crossed or a capture was unreadable."""
        if self.failed or (self.errors and not allow_errors):
            return 1
        return 0


def totals(outcomes: Sequence[Outcome], *, wall_s: float, planned: int) -> Totals:
    """Count passes, failures, errors and cache hits over ``outcomes``."""
    statuses = [o.status for o in outcomes]
    return Totals(
        captures=len(outcomes),
        passed=statuses.count(STATUS_PASS),
        failed=statuses.count(STATUS_FAIL),
        errors=statuses.count(STATUS_ERROR),
        cached=sum(o.result.cached for o in outcomes),
        wall_s=wall_s,
        planned=planned,
    )


def judge(result: CaptureResult, gates: Gates) -> Outcome:
    """Check ``gates`` against one result (an error result is judged by no gate)."""
    if result.score is None:
        return Outcome(result, ())
    return Outcome(result, check(result.score, gates))


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
    return FindingScore(
        pattern=str(f.get("pattern")),
        confidence=_number(f.get("confidence")),
        summary=str(f.get("summary") or ""),
        stream=_stream_of(f.get("stream_id"), f.get("call_id")),
        evidence=tuple(_evidence_text(e.get("name"), e.get("value"), e.get("unit"))
                       if isinstance(e, Mapping) else str(e) for e in f.get("evidence") or ()),
    )


def _stream_of(stream_id: object, call_id: object) -> str | None:
    """What a finding is about: its stream, else its call."""
    where = stream_id or call_id
    return str(where) if where is not None else None


def _evidence_text(name: object, value: object, unit: object) -> str:
    number = _number(value)
    shown = f"{number:.4g}" if number is not None else "n/a"
    return f"{name} = {shown}" + (f" {unit}" if unit else "")


def _extreme(streams: list[tuple], column: int, pick) -> tuple[float | None, str | None]:
    """The smallest or largest finite ``column`` over ``streams`` and the id of its stream."""
    candidates = [(_number(s[column]), s[0]) for s in streams]
    candidates = [(v, str(i) if i is not None else None) for v, i in candidates if v is not None]
    if not candidates:
        return None, None
    return pick(candidates, key=lambda c: c[0])


def _number(value: object) -> float | None:
    """A finite number as float (numpy scalars included); None for anything else, NaN and infinities."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _unknown_patterns(unknown: list[str]) -> str:
    return f"unknown pattern {', '.join(unknown)}; known patterns: {', '.join(PATTERNS)}"
