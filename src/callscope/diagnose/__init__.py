"""diagnose: what degraded each stream and call (patterns, evidence, verdicts).

``diagnose(inventory, metrics) -> Diagnosis`` is the entry point; the pattern
taxonomy is the pattern table of docs/architecture.md.
"""

from __future__ import annotations

from callscope.diagnose.engine import diagnose
from callscope.diagnose.findings import AUDIBLE, PATTERNS, THROTTLING, Diagnosis, Evidence, Finding

__all__ = ["AUDIBLE", "PATTERNS", "THROTTLING", "Diagnosis", "Evidence", "Finding", "diagnose"]
