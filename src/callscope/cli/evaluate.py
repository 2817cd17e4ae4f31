"""``callscope evaluate``: score the diagnosis against ``*.truth.json`` sidecars."""

from __future__ import annotations

import math

import click

from callscope.cli.common import echo_json, echo_text, one_line_warnings
from callscope.errors import CallscopeError
from callscope.evaluate import Evaluation, find_cases, pair_capture, summarize_params
from callscope.evaluate import evaluate as run_evaluation


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


def evaluation_dict(ev: Evaluation) -> dict:
    """The evaluation as JSON-ready data (stable keys)."""
    k = ev.n_truth
    return {
        "captures": len(ev.cases),
        "labels": list(ev.labels),
        "confusion": {
            truth: {pred: int(ev.confusion[i, j]) for j, pred in enumerate(ev.labels)}
            for i, truth in enumerate(ev.labels[:k])
        },
        "per_pattern": {
            p: {
                "precision": _num(ev.precision[i]),
                "recall": _num(ev.recall[i]),
                "f1": _num(ev.f1[i]),
                "support": int(ev.confusion[i].sum()),
            }
            for i, p in enumerate(ev.labels[:k])
        },
        "macro_f1": _num(ev.macro_f1),
        "accuracy": _num(ev.accuracy),
        "false_alarms": {"throttling_on_ordinary": ev.false_alarms, "ordinary": ev.ordinary,
                         "rate": _num(ev.false_alarm_rate)},
        "parameters": [
            {
                "pattern": s.check.pattern,
                "parameter": s.check.truth_name,
                "error_unit": s.check.unit,
                "tolerance": s.check.tolerance,
                "n": s.n,
                "missing": s.missing,
                "median_abs_error": _num(s.median_abs_error),
                "p90_abs_error": _num(s.p90_abs_error),
                "within_tolerance": s.within,
            }
            for s in summarize_params(ev)
        ],
        "errors": [{"path": str(c.path), "error": c.error} for c in ev.cases if c.error],
        "reliability": [
            {"confidence_min": b.low, "confidence_max": min(b.high, 1.0), "verdicts": b.count,
             "right": b.right, "accuracy": _num(b.accuracy)}
            for b in ev.reliability()
        ],
        "misclassified": [
            {"path": str(c.path), "truth": c.truth.label, "accept": list(c.truth.accept),
             "predicted": c.predicted, "confidence": _num(c.confidence)}
            for c in ev.cases
            if not c.correct
        ],
    }


def evaluation_text(ev: Evaluation) -> str:
    """Confusion matrix, per-pattern scores, parameter errors, false alarms."""
    k = ev.n_truth
    short = [p[:10] for p in ev.labels]
    width = max(len(p) for p in ev.labels) if ev.labels else 5
    lines = [f"{len(ev.cases)} labelled captures", "", "confusion (rows: truth, columns: diagnosed)"]
    lines.append(" " * (width + 2) + " ".join(f"{s:>10}" for s in short))
    for i, p in enumerate(ev.labels[:k]):
        lines.append(f"{p:<{width}}  " + " ".join(f"{int(v):>10}" for v in ev.confusion[i]))
    lines += ["", f"{'pattern':<{width}}  precision  recall     F1  support"]
    for i, p in enumerate(ev.labels[:k]):
        lines.append(
            f"{p:<{width}}  {ev.precision[i]:>9.2f}  {ev.recall[i]:>6.2f}  {ev.f1[i]:>5.2f}  "
            f"{int(ev.confusion[i].sum()):>7}"
        )
    params = summarize_params(ev)
    if params:
        lines += ["", "parameter estimates (correctly diagnosed captures)"]
        for s in params:
            c = s.check
            lines.append(
                f"  {c.pattern} {c.truth_name}: median |error| {s.median_abs_error:.2f} {c.unit}, "
                f"p90 {s.p90_abs_error:.2f} {c.unit}, {s.within}/{s.n} within ±{c.tolerance:g} {c.unit}"
                + (f", {s.missing} not estimated" if s.missing else "")
            )
    lines += [
        "",
        f"throttling verdicts on ordinary captures (clean/random/bursty/congestion/jitter): "
        f"{ev.false_alarms}/{ev.ordinary} ({100 * ev.false_alarm_rate:.1f} %)",
    ]
    lines += ["", "reliability (verdict confidence -> how often right)"]
    for b in ev.reliability():
        acc = f"{100 * b.accuracy:5.1f} %" if b.count else "    -  "
        lines.append(f"  [{b.low:.1f}, {min(b.high, 1.0):.1f}{']' if b.high > 1 else ')'}  "
                     f"{b.right:>4}/{b.count:<4} right  {acc}")
    wrong = [c for c in ev.cases if not c.correct and not c.error]
    if wrong:
        lines += ["", "misdiagnosed"]
        lines += [f"  {c.path.name}: {c.truth.label} diagnosed {c.predicted} ({c.confidence:.2f})"
                  for c in wrong]
    errors = [c for c in ev.cases if c.error]
    if errors:
        lines.append(f"{len(errors)} captures could not be analyzed:")
        lines += [f"  {c.path}: {c.error}" for c in errors]
    lines.append(f"accuracy {ev.accuracy:.3f}")
    lines.append(f"macro-F1 {ev.macro_f1:.2f}")
    return "\n".join(lines)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--two-point", "two_point", is_flag=True,
              help="Score the diagnosis from both ends of each call (the endpoint captures NAME.a.pcap "
                   "and NAME.b.pcap the truth names) instead of the single capture.")
@click.option("--mechanism-only", "mechanism_only", is_flag=True,
              help="Accept only the readings of the mechanism a lab truth names, not the clean / jitter "
                   "readings its `readings` add where the impairment left too little trace.")
def evaluate(paths: tuple[str, ...], fmt: str, two_point: bool, mechanism_only: bool) -> None:
    """Diagnose every capture under PATHS that has a NAME.truth.json beside it and score the verdicts.

    Prints the confusion matrix, per-pattern precision / recall / F1, the
    parameter-estimate errors, the false-alarm rate of throttling verdicts on
    ordinary captures, and last `macro-F1 X.XX`.
    """
    if not find_cases(paths):
        raise CallscopeError(f"no capture with a NAME.truth.json sidecar under {', '.join(paths)}")
    with one_line_warnings():
        ev = run_evaluation(paths, pair_capture if two_point else None, mechanism_only)
    if fmt == "json":
        echo_json(evaluation_dict(ev))
    else:
        echo_text(evaluation_text(ev))
