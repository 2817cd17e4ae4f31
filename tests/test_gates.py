"""Quality gates on hand-made callscope/1 documents: which streams count, what fails, messages."""

from __future__ import annotations

import pytest

from callscope.gates import MIN_SCORED_PACKETS, CaptureScore, Gates, check, parse_patterns


def stream(id: str, packets: int, mos: float | None, loss: float | None, jitter: float | None) -> dict:
    return {"id": id, "packets": packets, "mos": mos, "loss_fraction": loss, "jitter_max_ms": jitter}


def document(*streams: dict, verdict: str = "clean", findings: tuple = ()) -> dict:
    return {
        "verdict": {"pattern": verdict, "confidence": 0.9, "summary": f"{verdict} summary"},
        "streams": list(streams),
        "findings": list(findings),
        "capture": {"warnings": ["cut at byte 99"]},
    }


POLICING = {
    "pattern": "policing", "confidence": 0.82, "summary": "clamped at 5.1 kB/s", "stream_id": "s1",
    "evidence": [{"name": "drop_spacing_cv", "value": 0.2034, "unit": ""},
                 {"name": "send_rate", "value": 8618.0, "unit": "B/s"}],
}


def test_short_streams_do_not_drive_the_worst_mos_loss_or_jitter():
    doc = document(stream("s1", 500, 4.1, 0.01, 12.0),
                   stream("s2", MIN_SCORED_PACKETS - 1, 1.0, 0.5, 300.0),
                   stream("s3", MIN_SCORED_PACKETS, 3.2, 0.03, 40.0))
    score = CaptureScore.from_document(doc)
    assert (score.streams, score.scored_streams) == (3, 2)
    assert (score.worst_mos, score.worst_mos_stream) == (3.2, "s3")
    assert (score.max_loss_fraction, score.max_loss_stream) == (0.03, "s3")
    assert (score.max_jitter_ms, score.max_jitter_stream) == (40.0, "s3")
    assert score.warnings == ("cut at byte 99",)


def test_missing_and_null_metrics_are_not_scored():
    doc = {"streams": [{"id": "s1", "packets": 100, "mos": None}, {"id": "s2", "packets": 80}]}
    score = CaptureScore.from_document(doc)
    assert score.verdict == "clean" and score.worst_mos is None and score.max_jitter_ms is None
    assert score.scored_streams == 2


def test_mos_gate_fails_below_the_threshold_and_when_nothing_can_be_scored():
    score = CaptureScore.from_document(document(stream("s1", 500, 3.79, 0.0, 5.0)))
    (result,) = check(score, Gates(min_mos=3.8))
    assert not result.passed and result.message == "worst MOS 3.79 < 3.8 (stream s1)"
    assert check(score, Gates(min_mos=3.79))[0].passed
    silent = CaptureScore.from_document(document(stream("s1", 5, 4.4, 0.0, 1.0)))
    (result,) = check(silent, Gates(min_mos=1.0))
    assert not result.passed and f">= {MIN_SCORED_PACKETS} packets" in result.message


def test_loss_and_jitter_gates_compare_the_worst_stream():
    score = CaptureScore.from_document(document(stream("s1", 500, 4.0, 0.021, 31.0),
                                                stream("s2", 500, 4.2, 0.001, 2.0)))
    loss, jitter = check(score, Gates(max_loss=0.02, max_jitter_ms=30.0))
    assert (loss.gate, loss.passed, loss.message) == ("max-loss", False, "loss 2.10% > 2.00% (stream s1)")
    assert (jitter.gate, jitter.passed) == ("max-jitter-ms", False)
    assert jitter.message == "jitter 31.0 ms > 30.0 ms (stream s1)"
    assert all(r.passed for r in check(score, Gates(max_loss=0.05, max_jitter_ms=31.0)))


def test_pattern_gate_matches_any_finding_with_its_evidence_not_only_the_verdict():
    doc = document(stream("s1", 500, 2.0, 0.4, 1.0), verdict="cutoff",
                   findings=({"pattern": "cutoff", "confidence": 0.95, "summary": "silent after 30 s"}, POLICING))
    (result,) = check(CaptureScore.from_document(doc), Gates(fail_on=frozenset({"policing"})))
    assert not result.passed
    assert result.message == ("policing (confidence 0.82) on s1: clamped at 5.1 kB/s; "
                              "evidence: drop_spacing_cv = 0.2034, send_rate = 8618 B/s")
    assert check(CaptureScore.from_document(doc), Gates(fail_on=frozenset({"shaping"})))[0].passed


def test_clean_in_fail_on_matches_a_clean_verdict():
    score = CaptureScore.from_document(document(stream("s1", 500, 4.4, 0.0, 1.0)))
    (result,) = check(score, Gates(fail_on=frozenset({"clean"})))
    assert not result.passed and result.message.startswith("clean (confidence 0.90): clean summary")


def test_unknown_patterns_and_out_of_range_loss_are_rejected():
    assert parse_patterns(("policing, cutoff", "one-way")) == {"policing", "cutoff", "one-way"}
    with pytest.raises(ValueError, match="unknown pattern metallic, throttle"):
        parse_patterns("policing,throttle,metallic")
    with pytest.raises(ValueError, match="unknown pattern"):
        Gates(fail_on=frozenset({"bogus"}))
    with pytest.raises(ValueError, match="fraction between 0 and 1"):
        Gates(max_loss=2.0)


def test_no_gates_means_no_results_and_describe_names_the_options():
    score = CaptureScore.from_document(document(stream("s1", 500, 1.0, 0.9, 500.0)))
    assert check(score, Gates()) == () and not Gates().active
    gates = Gates(min_mos=3.8, max_loss=0.02, fail_on=frozenset({"cutoff", "policing"}))
    assert gates.describe() == "--fail-under-mos 3.8 --max-loss 0.02 --fail-on policing,cutoff"


def test_scores_from_the_typed_report_equal_those_from_its_document():
    from callscope.analysis import analyze
    from callscope.report.jsonout import report_dict
    from conftest import FIXTURES

    report = analyze(FIXTURES / "twopoint-policed.b.pcap")
    score = CaptureScore.from_report(report)
    assert score == CaptureScore.from_document(report_dict(report))
    assert score.verdict == "policing" and len(score.findings) == 2
    assert all(" = " in e for f in score.findings for e in f.evidence)
    assert score.worst_mos == min(m.mos for m in report.metrics.values() if m.packets >= MIN_SCORED_PACKETS)


def test_report_writers_never_import_batch_and_gates_never_import_report():
    import ast
    from pathlib import Path

    import callscope

    src = Path(callscope.__file__).parent

    def imports(path: Path) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        return names

    for module in sorted((src / "report").glob("*.py")):
        assert not {n for n in imports(module) if n.startswith(("callscope.batch", "callscope.cli"))}, module
    assert not {n for n in imports(src / "gates.py") if n.startswith(("callscope.report", "callscope.batch"))}
