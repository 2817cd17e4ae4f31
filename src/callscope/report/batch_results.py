"""What ``callscope batch`` writes per capture: JSONL records, CSV rows, tables.

One record per capture (:func:`record`), with the same fields in every
format (the JSONL record's JSON Schema is ``schema/batch-record-1.schema.json``
beside this module):

- ``path``, ``status`` (``pass`` / ``fail`` / ``error``);
- ``verdict``, ``verdict_confidence``, ``verdict_summary``;
- ``findings``: pattern, confidence, stream, summary and evidence of each;
- ``worst_mos`` (and ``worst_mos_stream``), ``max_loss_fraction``,
  ``max_jitter_ms``: over the streams with enough packets to score
  (:data:`callscope.gates.MIN_SCORED_PACKETS`); ``streams`` and
  ``scored_streams``;
- ``gates``: each configured gate's name, whether it passed, and the message;
- ``error`` and ``error_type`` for a capture that could not be analyzed;
- ``duration_s`` (analysis wall time), ``cached``, ``sha256`` (with a cache),
  ``warnings`` from the reader.

The Markdown summary (:func:`markdown_summary`) is meant for a CI job
summary (``$GITHUB_STEP_SUMMARY``); :func:`text_table` is the compact table
``callscope batch`` prints on stdout.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from callscope.report.jsonout import jsonable, text
from callscope.report.text import csv_safe, markdown_safe, terminal_safe

if TYPE_CHECKING:
    from callscope.gates import CaptureScore, FindingScore, Gates, Outcome, Totals

#: Columns of ``--csv``, in order (findings and gates flattened to text).
CSV_COLUMNS = (
    "path", "status", "verdict", "verdict_confidence", "worst_mos", "worst_mos_stream",
    "max_loss_fraction", "max_jitter_ms", "streams", "scored_streams", "findings",
    "failed_gates", "error", "duration_s", "cached",
)

_STATUS_MARK = {"pass": "✅ pass", "fail": "❌ fail", "error": "⚠️ error"}


def record(outcome: Outcome) -> dict:
    """One capture's JSONL record (plain JSON values; see the module docstring)."""
    r = outcome.result
    s = r.score
    return {
        "path": text(r.path),
        "status": outcome.status,
        "verdict": s.verdict if s else None,
        "verdict_confidence": jsonable(s.verdict_confidence) if s else None,
        "verdict_summary": s.verdict_summary if s else None,
        "findings": [_finding(f) for f in s.findings] if s else [],
        "worst_mos": jsonable(s.worst_mos) if s else None,
        "worst_mos_stream": s.worst_mos_stream if s else None,
        "max_loss_fraction": jsonable(s.max_loss_fraction) if s else None,
        "max_jitter_ms": jsonable(s.max_jitter_ms) if s else None,
        "streams": s.streams if s else None,
        "scored_streams": s.scored_streams if s else None,
        "gates": [{"gate": text(g.gate), "passed": g.passed, "message": text(g.message)} for g in outcome.gates],
        "error": text(r.error) if r.error is not None else None,
        "error_type": r.error_type,
        "duration_s": round(r.duration_s, 6),
        "cached": r.cached,
        "sha256": r.sha256,
        "warnings": [text(w) for w in s.warnings] if s else [],
    }


def _finding(f: FindingScore) -> dict:
    return {
        "pattern": text(f.pattern),
        "confidence": jsonable(f.confidence),
        "summary": text(f.summary),
        "stream": text(f.stream) if f.stream is not None else None,
        "evidence": [text(e) for e in f.evidence],
    }


def csv_text(outcomes: Sequence[Outcome]) -> str:
    """The ``--csv`` file: a header of :data:`CSV_COLUMNS` and one row per capture."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for o in outcomes:
        rec = record(o)
        rec["findings"] = "; ".join(f"{f.pattern} {_num(f.confidence, '.2f')}"
                                    for f in (o.result.score.findings if o.result.score else ()))
        rec["failed_gates"] = "; ".join(g.message.replace("\n", " | ") for g in o.failures)
        writer.writerow(["" if rec[c] is None else csv_safe(rec[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def text_table(outcomes: Sequence[Outcome], totals: Totals) -> str:
    """The compact table ``callscope batch`` prints: one line per capture, then the counts."""
    header = ("capture", "verdict", "conf", "MOS", "loss", "jitter_ms", "streams", "result")
    rows: list[tuple[str, ...]] = [header]
    for o in outcomes:
        s = o.result.score
        rows.append((o.result.path, *_score_cells(s, "-"),
                     o.status.upper() if o.status != "pass" else "pass"))
    rows = [tuple(terminal_safe(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for o in outcomes:
        for g in o.failures:
            lines.append(terminal_safe(f"FAIL {o.result.path}: {g.gate}: {_first_line(g.message)}"))
        if o.result.error:
            lines.append(terminal_safe(f"ERROR {o.result.error}"))
    lines.append(counts_line(totals))
    return "\n".join(lines) + "\n"


def counts_line(totals: Totals) -> str:
    """``12 captures: 10 passed, 1 failed, 1 error (3 from cache, 9 analyzed) in 4.2 s``."""
    text = (f"{totals.captures} capture{'s' if totals.captures != 1 else ''}: "
            f"{totals.passed} passed, {totals.failed} failed, "
            f"{totals.errors} error{'s' if totals.errors != 1 else ''} "
            f"({totals.cached} from cache, {totals.analyzed} analyzed) in {totals.wall_s:.1f} s")
    if not totals.complete:
        text += f"; interrupted, {totals.planned - totals.captures} not scored"
    return text


def markdown_summary(outcomes: Sequence[Outcome], totals: Totals, gates: Gates) -> str:
    """A Markdown job summary: the counts, the gates, a table, then each failure's evidence."""
    lines = [
        "## callscope batch",
        "",
        f"**{counts_line(totals)}**",
        "",
        f"Gates: `{gates.describe()}`",
        "",
        "| capture | result | verdict | confidence | worst MOS | max loss | max jitter (ms) | streams |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        s = o.result.score
        cells = [f"`{_cell(o.result.path)}`", _STATUS_MARK[o.status], *_score_cells(s, "—")]
        lines.append("| " + " | ".join(cells) + " |")
    problems = [o for o in outcomes if o.status != "pass"]
    if problems:
        lines += ["", "### Failures and errors", ""]
        for o in problems:
            if o.result.error:
                lines.append(f"- `{_cell(o.result.path)}`: error: {markdown_safe(o.result.error)}")
            for g in o.failures:
                detail = "; ".join(markdown_safe(line) for line in g.message.splitlines())
                lines.append(f"- `{_cell(o.result.path)}`: **{g.gate}**: {detail}")
    return "\n".join(lines) + "\n"


def _score_cells(s: CaptureScore | None, absent: str) -> list[str]:
    """Verdict, confidence, worst MOS, max loss, max jitter and streams as table cells
    (``absent`` in each for a capture that was not analyzed)."""
    if s is None:
        return [absent] * 6
    return [s.verdict, _num(s.verdict_confidence, ".2f"), _num(s.worst_mos, ".2f"),
            _num(s.max_loss_fraction, ".1%"), _num(s.max_jitter_ms, ".1f"), str(s.streams)]


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _cell(text: str) -> str:
    """Text for a Markdown code span in a table cell or list item: literal there (no HTML,
    no emphasis), one line, controls escaped, pipes escaped for the table, no backticks."""
    return terminal_safe(text).replace("|", "\\|").replace("`", "'")


def _first_line(text: str) -> str:
    lines = text.splitlines()
    more = f" (+{len(lines) - 1} more)" if len(lines) > 1 else ""
    return (lines[0] if lines else "") + more
