"""Score the diagnosis against labelled captures (``NAME.truth.json`` sidecars).

Every capture ``NAME.pcap`` (or ``.pcapng``) with a ``NAME.truth.json`` beside
it, ``{"label": "<pattern>", "params": {...}}``, is diagnosed and its verdict
compared with the label. The scores are the usual multi-class ones:
a confusion matrix, per-pattern precision, recall and F1, and their unweighted
mean over the patterns present in the ground truth (macro-F1). Where the label
comes with mechanism parameters (a policer's rate, a cut-off time), the
estimate of the diagnosed finding is compared with them. The false-alarm rate
is the fraction of ordinary captures (clean, random or bursty loss, congestion)
whose verdict is a throttling pattern.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from callscope.capture.files import is_capture_name, truth_path
from callscope.diagnose.findings import PATTERNS, THROTTLING, Diagnosis
from callscope.errors import CallscopeError

if TYPE_CHECKING:
    from callscope.analysis import Report

#: Captures whose ground truth is an ordinary network: a throttling verdict on
#: one of them is a false alarm.
ORDINARY: frozenset[str] = frozenset({"clean", "random-loss", "bursty-loss", "congestion", "jitter"})


@dataclass(frozen=True)
class ParamCheck:
    """How one ground-truth parameter is compared with its estimate.

    ``relative`` errors are ``(estimate - truth) / truth`` in percent;
    absolute ones are ``estimate - truth`` in the parameter's unit.
    ``min_packets`` skips captures too short for the estimate to be meaningful;
    ``when`` restricts the check to captures whose truth has that parameter
    value (e.g. a period exists only for periodic outages).
    ``per_direction`` truths are stored per direction of the call
    (``NAME_a_to_b``, ``NAME_b_to_a``): the one of the direction of the
    stream the finding is about is compared (no check when that is unknown).
    """

    pattern: str
    truth_name: str
    estimate_name: str
    relative: bool
    tolerance: float
    unit: str
    min_packets: int = 0
    when: tuple[str, str | float] | None = None
    per_direction: bool = False
    #: The truth is multiplied by this first (a truth in kB/s against an estimate in B/s).
    scale: float = 1.0


#: The parameter estimates the evaluation scores, with the accuracy targets.
PARAM_CHECKS: tuple[ParamCheck, ...] = (
    ParamCheck("policing", "rate_Bps", "rate_Bps", True, 5.0, "%"),
    # A constant-rate stream shows the bucket depth only as the excess sent
    # from the policer's start to the first drop: identifiable when the policer
    # acts from the start of media (otherwise its start time is unknown).
    ParamCheck("policing", "burst_bytes", "burst_bytes", True, 25.0, "%", when=("start_s", 0.0)),
    ParamCheck("shaping", "rate_Bps", "rate_Bps", True, 10.0, "%"),
    # Kernel-made impairments meter IP packets (nftables `limit rate ...
    # bytes/second` and `quota` count the IP length): lab-v1's names, and the
    # issue's tolerances (rate +-10 % once the bucket has drained, bytes +-5 %).
    ParamCheck("policing", "rate_kbytes_s", "rate_ip_Bps", True, 10.0, "%", scale=1000.0),
    ParamCheck("cutoff", "blackhole_at_s", "time_s", False, 0.5, "s"),
    ParamCheck("cutoff", "quota_bytes", "ip_bytes", True, 5.0, "%"),
    ParamCheck("cutoff", "time_s", "time_s", False, 0.5, "s"),
    ParamCheck("cutoff", "bytes", "bytes", True, 5.0, "%"),
    ParamCheck("intermittent-outage", "period_s", "period_s", True, 10.0, "%", when=("mode", "periodic")),
    # Gilbert-Elliott p and r are scored against the transitions the hidden
    # chain made in the captured run (p_chain, r_chain), not the nominal p, r
    # the simulator drew: a 90 s call holds only some 10-60 bad-state visits,
    # so the run's own frequencies stray from the nominal ones by 15-30 %
    # (binomial spread), which no estimator working from one capture can
    # undo. Nor against p_observed, r_observed, the simple Gilbert count of
    # the losses as they fell: that is a different model (a loss-only chain,
    # every bad-state packet lost) and the count merely repeats the losses.
    ParamCheck("bursty-loss", "p_chain", "p", True, 15.0, "%", min_packets=2000, per_direction=True),
    ParamCheck("bursty-loss", "r_chain", "r", True, 15.0, "%", min_packets=2000, per_direction=True),
)


@dataclass(frozen=True)
class Truth:
    """A ``NAME.truth.json`` sidecar: the label and the simulator's parameters."""

    label: str
    params: tuple[tuple[str, float], ...]
    text: tuple[tuple[str, str], ...] = ()
    #: (src, src_port, dst, dst_port, direction) of each stream the simulator sent.
    streams: tuple[tuple[str, int, str, int, str], ...] = ()
    #: Every verdict that is a correct reading of the capture from where it was
    #: taken (a cut of one direction seen past the cut is also ``one-way``);
    #: the label alone when the sidecar gives no ``accept`` list.
    accept: tuple[str, ...] = ()
    #: The readings in ``accept`` that the capture shows rather than the
    #: mechanism (a lab truth's ``readings.also``, :mod:`callscope.lab.readings`).
    readings: tuple[str, ...] = ()

    def accepts(self, verdict: str) -> bool:
        """Whether ``verdict`` is a correct reading of this capture."""
        return verdict == self.label or verdict in self.accept

    def mechanism_only(self) -> Truth:
        """The same truth accepting only the mechanism's readings."""
        return dataclasses.replace(self, accept=tuple(a for a in self.accept if a not in self.readings), readings=())

    def param(self, name: str) -> float | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    def matches(self, condition: tuple[str, str | float] | None) -> bool:
        """Whether the truth has ``condition = (name, value)`` (always true for None)."""
        if condition is None:
            return True
        name, value = condition
        have = dict(self.text).get(name) if isinstance(value, str) else self.param(name)
        return have == value

    def direction(self, endpoints: tuple[str, int, str, int] | None) -> str | None:
        """The direction (``"a->b"``, ``"b->a"``) of the stream with these endpoints."""
        for *ends, direction in self.streams:
            if tuple(ends) == endpoints:
                return direction
        return None


@dataclass(frozen=True)
class Case:
    """One scored capture."""

    path: Path
    truth: Truth
    predicted: str
    confidence: float
    estimates: tuple[tuple[str, float], ...] = ()
    packets: int = 0
    error: str | None = None
    #: Direction, in the truth's terms, of the stream the primary finding is about.
    direction: str | None = None

    @property
    def correct(self) -> bool:
        """The verdict is the label or another reading the truth accepts."""
        return self.error is None and self.truth.accepts(self.predicted)

    @property
    def scored(self) -> str:
        """The verdict as the confusion matrix counts it: an accepted reading
        counts as the label, so a capture has one right answer in the scores."""
        return self.truth.label if self.correct else self.predicted


@dataclass(frozen=True)
class ParamError:
    """One parameter estimate set against the truth."""

    path: Path
    check: ParamCheck
    truth: float
    estimate: float | None

    @property
    def error(self) -> float | None:
        if self.estimate is None:
            return None
        if self.check.relative:
            return 100.0 * (self.estimate - self.truth) / self.truth
        return self.estimate - self.truth

    @property
    def within(self) -> bool:
        e = self.error
        return e is not None and abs(e) <= self.check.tolerance


#: Confidence bins of the reliability table (the last one includes 1.0).
RELIABILITY_EDGES: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 1.0 + 1e-9)


@dataclass(frozen=True)
class ReliabilityBin:
    """Verdicts whose confidence lies in ``[low, high)`` and how many were right."""

    low: float
    high: float
    count: int
    right: int

    @property
    def accuracy(self) -> float:
        return self.right / self.count if self.count else math.nan


@dataclass(frozen=True)
class Evaluation:
    """Scores of a diagnosis over a labelled corpus.

    ``confusion[i, j]`` counts captures labelled ``labels[i]`` diagnosed as
    ``labels[j]``; ``labels`` holds the ground-truth patterns and then any
    other pattern that was predicted. Precision, recall and F1 are per
    ground-truth pattern (``labels[:n_truth]``).
    """

    cases: tuple[Case, ...]
    labels: tuple[str, ...]
    n_truth: int
    confusion: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    macro_f1: float
    param_errors: tuple[ParamError, ...]
    false_alarms: int
    ordinary: int

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.ordinary if self.ordinary else 0.0

    @property
    def accuracy(self) -> float:
        n = int(self.confusion.sum())
        return float(np.trace(self.confusion[: self.n_truth, : self.n_truth])) / n if n else 0.0

    def reliability(self, edges: Sequence[float] = RELIABILITY_EDGES) -> tuple[ReliabilityBin, ...]:
        """Verdict confidence against how often the verdict was right, per confidence bin.

        A calibrated diagnosis is right about as often as it is confident; the
        bin from 0.8 up is the one the design promises: right >= 95 % of the time.
        """
        out = []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            inside = [c for c in self.cases if c.error is None and lo <= c.confidence < hi]
            right = sum(c.correct for c in inside)
            out.append(ReliabilityBin(lo, hi, len(inside), right))
        return tuple(out)


class TruthError(CallscopeError):
    """A ``NAME.truth.json`` sidecar that is not a ground truth callscope can score against."""


#: A sidecar larger than this is not a ground truth (they are a few hundred bytes).
MAX_TRUTH_BYTES = 1 << 20


def read_truth(path: Path) -> Truth:
    """Parse a ``NAME.truth.json`` sidecar (numeric and text params are kept).

    Raises
    ------
    TruthError
        The file cannot be read, is not JSON, or lacks a text ``label``;
        ``params`` must be an object and ``streams`` a list of objects.
    """
    def bad(what: str) -> TruthError:
        return TruthError(f"{path}: not a ground-truth sidecar ({what}); expected "
                          '{"label": "<pattern>", "params": {...}}')

    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_TRUTH_BYTES + 1)
    except OSError as e:
        raise TruthError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(raw) > MAX_TRUTH_BYTES:
        raise bad(f"larger than {MAX_TRUTH_BYTES} bytes")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise bad("not UTF-8 text") from None
    except (ValueError, RecursionError) as e:
        raise bad(f"invalid JSON: {str(e)[:80]}") from None
    if not isinstance(doc, dict):
        raise bad(f"a JSON {type(doc).__name__}, not an object")
    if not isinstance(doc.get("label"), str) or not doc["label"]:
        raise bad('no text "label"')
    raw_params = doc.get("params") or {}
    if not isinstance(raw_params, dict):
        raise bad('"params" is not an object')
    params, text = [], []
    for key, value in raw_params.items():
        if isinstance(value, str):
            text.append((str(key), value))
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            params.append((str(key), float(value)))
    raw_streams = doc.get("streams") or []
    if not isinstance(raw_streams, list):
        raise bad('"streams" is not a list')
    keys = ("src", "src_port", "dst", "dst_port", "direction")
    streams = []
    for st in raw_streams:
        if not isinstance(st, dict) or not set(keys) <= st.keys():
            continue
        if not all(isinstance(st[k], int) and not isinstance(st[k], bool) for k in ("src_port", "dst_port")):
            raise bad("a stream's port is not an integer")
        streams.append((str(st["src"]), int(st["src_port"]), str(st["dst"]), int(st["dst_port"]),
                        str(st["direction"])))
    accept = doc.get("accept") or ()
    if isinstance(accept, str):
        accept = (accept,)
    if not isinstance(accept, list | tuple):
        raise bad('"accept" is not a list')
    readings = doc.get("readings")
    also = readings.get("also") if isinstance(readings, dict) else None
    also = tuple(str(a) for a in also) if isinstance(also, list) else ()
    return Truth(label=doc["label"], params=tuple(sorted(params)), text=tuple(sorted(text)),
                 streams=tuple(streams), accept=tuple(str(a) for a in accept), readings=also)


def find_cases(paths: Iterable[Path | str]) -> list[Path]:
    """Every capture under ``paths`` (files or directories) that has a sidecar."""
    found: list[Path] = []
    for p in map(Path, paths):
        candidates = sorted(p.rglob("*")) if p.is_dir() else [p]
        found.extend(
            c
            for c in candidates
            if c.is_file() and is_capture_name(c) and truth_path(c).is_file()
        )
    return found


def evaluate_case(
    path: Path, diagnose_capture: Callable[[Path], Diagnosis | Report], mechanism_only: bool = False
) -> Case:
    """Diagnose one labelled capture and keep what the scores need.

    ``diagnose_capture`` may return the whole :class:`~callscope.analysis.Report`,
    whose streams tell which direction the primary finding is about, or just
    the :class:`~callscope.diagnose.Diagnosis`. ``mechanism_only`` scores
    against the mechanism's readings alone (:meth:`Truth.mechanism_only`).
    """
    truth = read_truth(truth_path(path))
    if mechanism_only:
        truth = truth.mechanism_only()
    try:
        result = diagnose_capture(path)
    except Exception as e:  # one bad capture is an error row, never stops the evaluation
        return Case(path, truth, "error", 0.0, error=f"{type(e).__name__}: {e}")
    diagnosis = result if isinstance(result, Diagnosis) else result.diagnosis
    primary = diagnosis.primary
    estimates = () if primary is None else tuple((p.name, p.value) for p in primary.params)
    packets = 0 if primary is None else int(primary.param("packets_expected") or 0)
    direction = None
    if primary is not None and primary.stream_id is not None and not isinstance(result, Diagnosis):
        ends = [(s.src, s.src_port, s.dst, s.dst_port) for s in result.streams if s.id == primary.stream_id]
        direction = truth.direction(ends[0]) if ends else None
    return Case(path, truth, diagnosis.verdict, diagnosis.verdict_confidence, estimates, packets,
                direction=direction)


def score(cases: Sequence[Case]) -> Evaluation:
    """Confusion matrix, per-pattern P/R/F1, macro-F1, parameter errors, false alarms."""
    order = {p: i for i, p in enumerate(PATTERNS)}
    truth_labels = sorted({c.truth.label for c in cases}, key=lambda p: order.get(p, len(order)))
    extra = sorted(
        {c.scored for c in cases} - set(truth_labels), key=lambda p: order.get(p, len(order))
    )
    labels = tuple(truth_labels + extra)
    index = {p: i for i, p in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for c in cases:
        confusion[index[c.truth.label], index[c.scored]] += 1
    k = len(truth_labels)
    tp = np.diag(confusion)[:k].astype(float)
    predicted = confusion.sum(axis=0)[:k].astype(float)
    actual = confusion.sum(axis=1)[:k].astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros(k), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    macro = float(f1.mean()) if k else 0.0

    errors = []
    for c in cases:
        if c.predicted != c.truth.label:
            continue  # an accepted other reading has other parameters
        est = dict(c.estimates)
        for check in PARAM_CHECKS:
            name = check.truth_name
            if check.per_direction:
                name = f"{name}_{c.direction.replace('->', '_to_')}" if c.direction else ""
            t = c.truth.param(name)
            if t is not None:
                t *= check.scale
            if check.pattern != c.truth.label or t is None or (check.relative and t == 0):
                continue
            if not c.truth.matches(check.when):
                continue
            if check.min_packets and est.get("packets_expected", math.inf) < check.min_packets:
                continue
            errors.append(ParamError(c.path, check, t, est.get(check.estimate_name)))

    ordinary = [c for c in cases if c.truth.label in ORDINARY]
    alarms = sum(c.predicted in THROTTLING and not c.correct for c in ordinary)
    return Evaluation(
        cases=tuple(cases),
        labels=labels,
        n_truth=k,
        confusion=confusion,
        precision=precision,
        recall=recall,
        f1=f1,
        macro_f1=macro,
        param_errors=tuple(errors),
        false_alarms=alarms,
        ordinary=len(ordinary),
    )


def evaluate(
    paths: Iterable[Path | str], diagnose_capture: Callable[[Path], Diagnosis | Report] | None = None,
    mechanism_only: bool = False,
) -> Evaluation:
    """Diagnose every labelled capture under ``paths`` and score the verdicts.

    Parameters
    ----------
    paths : iterable of path
        Capture files or directories searched recursively for captures with a
        ``NAME.truth.json`` beside them.
    diagnose_capture : callable, optional
        Path -> :class:`~callscope.analysis.Report` or
        :class:`~callscope.diagnose.Diagnosis`. The default runs the whole
        pipeline (:func:`callscope.analyze`).
    mechanism_only : bool
        Accept only the readings of the mechanism the truth names, not those
        its ``readings`` add (what a faint impairment left the capture showing).
    """
    if diagnose_capture is None:
        diagnose_capture = analyze_capture
    return score([evaluate_case(p, diagnose_capture, mechanism_only) for p in find_cases(paths)])


def pair_capture(path: Path) -> Diagnosis:
    """Two-point diagnosis of a labelled capture from its two endpoint captures.

    The truth sidecar names them (``captures.a``, ``captures.b``, as the lab
    writes it); ``NAME.a.pcap`` and ``NAME.b.pcap`` beside the capture otherwise.
    """
    from callscope.twopoint import pair_diagnosis

    sidecar = truth_path(path)
    try:
        caps = json.loads(sidecar.read_text()).get("captures") or {}
    except (OSError, ValueError):
        caps = {}
    stem = sidecar.name[: -len(".truth.json")]
    a = path.with_name(str(caps.get("a") or f"{stem}.a.pcap"))
    b = path.with_name(str(caps.get("b") or f"{stem}.b.pcap"))
    if not (a.is_file() and b.is_file()):
        raise TruthError(f"{path}: no endpoint captures {a.name} and {b.name} beside it for two-point scoring")
    return pair_diagnosis(a, b)


def analyze_capture(path: Path) -> Report:
    """The whole analysis (:func:`callscope.analyze`) of one capture."""
    from callscope.analysis import analyze

    return analyze(path)


@dataclass(frozen=True)
class ParamSummary:
    """Accuracy of one parameter estimate over the corpus."""

    check: ParamCheck
    n: int
    missing: int
    median_abs_error: float
    p90_abs_error: float
    within: int


def summarize_params(evaluation: Evaluation) -> tuple[ParamSummary, ...]:
    """Median / p90 absolute error and the count within tolerance, per check."""
    out = []
    for check in PARAM_CHECKS:
        rows = [e for e in evaluation.param_errors if e.check == check]
        if not rows:
            continue
        errs = np.array([abs(e.error) for e in rows if e.error is not None])
        out.append(
            ParamSummary(
                check=check,
                n=len(rows),
                missing=sum(e.error is None for e in rows),
                median_abs_error=float(np.median(errs)) if errs.size else math.nan,
                p90_abs_error=float(np.percentile(errs, 90)) if errs.size else math.nan,
                within=sum(e.within for e in rows),
            )
        )
    return tuple(out)
