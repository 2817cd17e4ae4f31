"""What diagnose hands to the report: findings, their evidence, the verdicts.

A :class:`Finding` is one pattern from the taxonomy in docs/architecture.md (pattern table)
with a confidence in [0, 1], the evidence as named numbers with units that a
reader can check against the capture, the time spans it covers and, where the
mechanism has parameters (a policer's rate and burst, an outage period), the
estimates of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: Every pattern name diagnose can emit, in the order of docs/architecture.md's pattern table.
PATTERNS: tuple[str, ...] = (
    "clean",
    "random-loss",
    "bursty-loss",
    "congestion",
    "intermittent-outage",
    "policing",
    "shaping",
    "cutoff",
    "one-way",
    "setup-blocked",
    "jitter",
    "codec-downshift",
)

#: The patterns that look like deliberate interference rather than an ordinary
#: network: the ones whose false alarms on ordinary captures matter most.
THROTTLING: frozenset[str] = frozenset(
    {"policing", "shaping", "intermittent-outage", "cutoff", "one-way", "setup-blocked"}
)

#: What a listener hears, per pattern (packet-loss concealment turns frequent
#: evenly spaced single losses into a metallic sound; long gaps are dropouts).
AUDIBLE: Mapping[str, str] = {
    "clean": "no audible impairment",
    "random-loss": "occasional clicks or short smears where concealment fills single losses",
    "bursty-loss": "syllables cut out in short bursts",
    "congestion": "choppy bursts of lost speech together with growing delay",
    "intermittent-outage": "dropouts: the voice vanishes for whole fractions of a second, repeatedly",
    "policing": "metallic/robotic voice: frequent evenly spaced single losses filled by concealment",
    "shaping": "growing delay (talk-over, walkie-talkie effect), then choppy speech once the queue overflows",
    "cutoff": "dropout: the call goes silent for good",
    "one-way": "one party can no longer hear the other (dead air in one direction)",
    "setup-blocked": "silence: the call never connects",
    "jitter": "warbling or stretched speech as the playout buffer adapts; some late packets lost",
    "codec-downshift": "duller, narrower-band voice after the codec lowered its bitrate",
}


@dataclass(frozen=True)
class Evidence:
    """One named number a human can check against the capture.

    ``unit`` is a short SI-style unit (``"s"``, ``"ms"``, ``"B/s"``, ``"%"``,
    ``"packets"``) or ``""`` for dimensionless numbers.
    """

    name: str
    value: float
    unit: str = ""

    def __str__(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.name} = {self.value:.4g}{unit}"


@dataclass(frozen=True)
class Finding:
    """One diagnosed pattern on one stream (or one call).

    Attributes
    ----------
    pattern : str
        A name from :data:`PATTERNS`.
    confidence : float
        In [0, 1]: how well the capture supports the pattern (lower on opaque
        streams, where loss is inferred from cadence gaps).
    stream_id, call_id : str or None
        What the finding is about: a stream, or a call (both directions) for
        ``one-way`` and ``setup-blocked``.
    evidence : tuple of Evidence
        The numbers the verdict rests on.
    summary : str
        One plain-language sentence with the numbers.
    audible : str
        What a listener would have heard.
    spans : tuple of (start_s, end_s)
        Time spans (seconds since the capture's first frame) the finding covers.
    params : tuple of Evidence
        Estimated parameters of the mechanism (rate, burst, period, ...).
    """

    pattern: str
    confidence: float
    summary: str
    stream_id: str | None = None
    call_id: str | None = None
    evidence: tuple[Evidence, ...] = ()
    audible: str = ""
    spans: tuple[tuple[float, float], ...] = ()
    params: tuple[Evidence, ...] = ()

    def param(self, name: str) -> float | None:
        """The estimated parameter ``name``, or None when it was not estimated."""
        for p in self.params:
            if p.name == name:
                return p.value
        return None


@dataclass(frozen=True)
class Diagnosis:
    """Everything diagnose found in one capture.

    ``stream_verdicts`` maps each stream id to its primary pattern (``"clean"``
    when no finding reached the reporting threshold); ``verdict`` is the
    strongest finding over all streams and calls.
    """

    findings: tuple[Finding, ...]
    stream_verdicts: Mapping[str, str] = field(default_factory=dict)
    verdict: str = "clean"
    verdict_confidence: float = 1.0
    notes: tuple[str, ...] = ()

    @property
    def primary(self) -> Finding | None:
        """The finding behind :attr:`verdict` (None when the capture is clean)."""
        for f in self.findings:
            if f.pattern == self.verdict:
                return f
        return None
