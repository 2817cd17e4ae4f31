"""Score many captures: find them, analyze them in parallel, judge them against gates.

The work unit is :func:`score_capture`: one capture in, one small
:class:`CaptureResult` out (never an exception: an unreadable capture becomes
a result with ``error`` set). :func:`run` feeds every capture to it on a local
pool of worker processes (one capture each at a time: a worker that dies costs
only its capture) or on an existing
Dask cluster (``distributed.Client.map`` / ``as_completed``) and yields the
results as they complete, so the caller can write them out one by one and
stop cleanly when interrupted. :class:`ResultCache` skips captures whose
content was already scored by the same callscope version with the same
analysis options.

>>> from callscope import batch
>>> from callscope.gates import Gates
>>> paths = batch.find_captures(["captures/"])                      # doctest: +SKIP
>>> for result in batch.run(paths, jobs=2):                         # doctest: +SKIP
...     outcome = batch.judge(result, Gates(min_mos=3.8))
...     print(outcome.result.path, outcome.status)
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import os
import shutil
import signal
import tempfile
import time
import warnings
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from callscope import __version__
from callscope.capture.files import CAPTURE_SUFFIXES, looks_like_capture
from callscope.errors import CallscopeError
from callscope.gates import (  # noqa: F401 - the outcome types are part of batch's API
    STATUS_ERROR,
    STATUS_FAIL,
    STATUS_PASS,
    CaptureResult,
    CaptureScore,
    FindingScore,
    Outcome,
    Totals,
    judge,
    totals,
)


class NoCapturesError(CallscopeError):
    """A path given to ``batch`` names nothing, or nothing under it is a capture."""


@dataclass(frozen=True)
class AnalyzeOptions:
    """The :func:`callscope.analyze` options a batch passes to every capture.

    They are part of the cache key: a result computed with other options is
    not reused.
    """

    window_s: float = 1.0
    decode_as: tuple[int, ...] = ()
    one_way_delay_ms: float | None = None
    decoder: str = "builtin"

    def token(self) -> str:
        """A stable text form, for the cache key."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def find_captures(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Every capture named by ``paths``: files, directories (recursively) and globs.

    A file named explicitly is always taken (if it is not a capture, analyzing
    it reports the error). Under a directory or through a glob, a file is
    taken when its name ends in one of :data:`~callscope.capture.files.CAPTURE_SUFFIXES` or its first
    bytes are a capture magic number, and never when it ends in one of
    :data:`~callscope.capture.files.SKIP_SUFFIXES`. Each file appears once, in the order found
    (directories sorted).

    Raises
    ------
    NoCapturesError
        A path or glob matches nothing, or no capture was found at all.
    """
    found: dict[Path, None] = {}
    for given in paths:
        text = os.fspath(given)
        path = Path(text)
        if path.is_file():
            found.setdefault(path, None)
        elif path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if looks_like_capture(child):
                    found.setdefault(child, None)
        elif glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise NoCapturesError(f"{text}: the pattern matches no file")
            for match in map(Path, matches):
                if match.is_dir():
                    found.update(dict.fromkeys(find_captures([match])))
                elif looks_like_capture(match):
                    found.setdefault(match, None)
        else:
            raise NoCapturesError(f"{text}: no such file or directory")
    if not found:
        shown = " ".join(os.fspath(p) for p in paths)
        raise NoCapturesError(
            f"no capture found in {shown} (looked for {', '.join(CAPTURE_SUFFIXES)} "
            "files and pcap/pcapng/gzip magic numbers)")
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def score_capture(path: str, options: AnalyzeOptions = AnalyzeOptions()) -> CaptureResult:
    """Analyze one capture and reduce it to its scores; never raises for a bad capture.

    This is what runs on a worker (a local process or a Dask worker). The
    full :func:`callscope.analyze` report stays on the worker; only the
    scores travel back.

    Parameters
    ----------
    path : str
        The capture (absolute when it runs on another machine's worker).
    options : AnalyzeOptions
        Passed to :func:`callscope.analyze`.

    Returns
    -------
    CaptureResult
        With ``error`` set when the capture could not be analyzed (any
        exception, not only :class:`~callscope.errors.CaptureError`: one
        capture that trips a bug must not stop a batch of thousands).
    """
    from callscope.analysis import analyze

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            report = analyze(path, window_s=options.window_s, decode_as=options.decode_as,
                             one_way_delay_ms=options.one_way_delay_ms, decoder=options.decoder)
            score = CaptureScore.from_report(report)
        except Exception as e:  # noqa: BLE001 - reported as this capture's error row
            message = str(e) if isinstance(e, CallscopeError) else f"{path}: {type(e).__name__}: {e}"
            return CaptureResult(path, None, error=message.splitlines()[0] if message else type(e).__name__,
                                 error_type=type(e).__name__,
                                 duration_s=time.perf_counter() - start)
    seen = dict.fromkeys(score.warnings)
    seen.update(dict.fromkeys(str(w.message) for w in caught))
    score = dataclasses.replace(score, warnings=tuple(seen))
    return CaptureResult(path, score, duration_s=time.perf_counter() - start)


class ResultCache:
    """Results on disk, keyed by capture content, callscope version and options.

    Each result is one JSON file ``DIR/ab/abcdef....json`` named after
    sha256(content digest, version, options). A capture that is renamed or
    moved is still found; one whose bytes change is analyzed again, and so is
    every capture after callscope is upgraded. Results of captures that failed
    for a reason other than their content (a bug, a worker lost) are not kept.
    """

    def __init__(self, directory: str | os.PathLike, options: AnalyzeOptions = AnalyzeOptions()):
        self.directory = Path(directory)
        self.options = options

    def _file(self, digest: str) -> Path:
        key = hashlib.sha256(f"{digest}\0{__version__}\0{self.options.token()}".encode()).hexdigest()
        return self.directory / key[:2] / f"{key}.json"

    def get(self, digest: str, path: str) -> CaptureResult | None:
        """The stored result for content ``digest``, reported under ``path``; None if absent.

        An entry that cannot be read or is not a result (truncated, edited,
        of another type, a directory in its place) counts as absent: the
        capture is analyzed again and the entry rewritten.
        """
        try:
            stored = json.loads(self._file(digest).read_text(encoding="utf-8"))
            result = _result_from_json(stored, path=path, sha256=digest)
        except Exception:  # noqa: BLE001 - any damage to a cache entry means "not cached"
            return None
        return result if _well_formed(result) else None

    def put(self, result: CaptureResult) -> None:
        """Store ``result`` (it must carry its ``sha256``), atomically; a cache that cannot
        be written only costs the next run a re-analysis (a warning, never a lost row)."""
        if result.sha256 is None or (result.score is None and result.error_type not in _CONTENT_ERRORS):
            return
        target = self._file(result.sha256)
        tmp = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)  # a damaged entry: a directory where a result belongs
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(dataclasses.asdict(result), allow_nan=False))
            os.replace(tmp, target)
        except (OSError, ValueError) as e:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            warnings.warn(f"{self.directory}: cannot store a result in the cache ({e})", CacheWarning, stacklevel=2)


class CacheWarning(UserWarning):
    """The result cache could not be written; results are still reported."""


def _typed(value: object, annotation: str) -> bool:
    """Whether ``value`` fits one of the simple annotations the score dataclasses use."""
    for alt in annotation.split(" | "):
        if alt == "None" and value is None:
            return True
        if alt == "str" and isinstance(value, str):
            return True
        if alt == "int" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if alt == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if alt.startswith("tuple[") and isinstance(value, tuple):
            inner = alt[len("tuple["):-len(", ...]")]
            return all(_well_formed_score(v) if inner == "FindingScore" else _typed(v, inner) for v in value)
    return False


def _well_formed_score(obj: CaptureScore | FindingScore) -> bool:
    return all(_typed(getattr(obj, f.name), str(f.type)) for f in dataclasses.fields(obj))


def _well_formed(r: CaptureResult) -> bool:
    """Whether a result read back from the cache has the types a fresh one has
    (a hand-edited or damaged entry must not stop the batch later, in the gates)."""
    if not _typed(r.duration_s, "float"):
        return False
    if r.score is None:
        return isinstance(r.error, str)
    return _well_formed_score(r.score)


#: Errors that depend only on a file's bytes, so may be cached with its digest.
_CONTENT_ERRORS = frozenset({
    "CaptureError", "NotACaptureError", "EmptyCaptureError", "UnsupportedLinkTypeError",
    "CorruptCaptureError",
})


def _result_from_json(d: dict, *, path: str, sha256: str) -> CaptureResult:
    score = d["score"]
    if score is not None:
        score = CaptureScore(**{
            **score,
            "findings": tuple(FindingScore(**{**f, "evidence": tuple(f["evidence"])})
                              for f in score["findings"]),
            "warnings": tuple(score["warnings"]),
        })
    return CaptureResult(path=path, score=score, error=d["error"], error_type=d["error_type"],
                         duration_s=d["duration_s"], sha256=sha256, cached=True)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's content."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def default_jobs() -> int:
    """The number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run(
    paths: Sequence[Path],
    options: AnalyzeOptions = AnalyzeOptions(),
    *,
    jobs: int | None = None,
    dask_address: str | None = None,
    cache: ResultCache | None = None,
) -> Generator[CaptureResult, None, None]:
    """Score every capture in ``paths``, yielding each result as soon as it is ready.

    Cached results come first, then fresh ones in completion order (not input
    order). Closing the generator early (or a KeyboardInterrupt while it
    waits) cancels what has not started and terminates the workers.

    Parameters
    ----------
    paths : sequence of Path
        Captures, e.g. from :func:`find_captures`.
    options : AnalyzeOptions
        Passed to :func:`callscope.analyze` for every capture.
    jobs : int, optional
        Local worker processes (default: every CPU). ``1`` analyzes in this
        process, one capture after the other.
    dask_address : str, optional
        Run on the Dask scheduler at this address (``tcp://host:8786``)
        instead of locally. Workers must be able to import callscope and
        read the captures at the same absolute paths (a shared filesystem).
    cache : ResultCache, optional
        Reuse and store results by content.

    Raises
    ------
    CallscopeError
        The Dask scheduler cannot be reached or dask.distributed is missing.
    """
    todo: list[tuple[Path, str | None]] = []
    for path in paths:
        digest = None
        if cache is not None:
            try:
                digest = file_sha256(path)
            except OSError as e:
                yield CaptureResult(str(path), None, error=f"{path}: {e.strerror or e}",
                                    error_type=type(e).__name__)
                continue
            hit = cache.get(digest, str(path))
            if hit is not None:
                yield hit
                continue
        todo.append((path, digest))
    if not todo:
        return
    if dask_address is not None:
        fresh = _run_dask(todo, options, dask_address)
    elif (jobs or default_jobs()) == 1 or len(todo) == 1:
        fresh = _run_here(todo, options)
    else:
        fresh = _run_pool(todo, options, jobs or default_jobs())
    try:
        for (path, digest), result in fresh:
            result = dataclasses.replace(result, path=str(path), sha256=digest)
            if cache is not None:
                cache.put(result)
            yield result
    finally:
        fresh.close()


Work = tuple[Path, str | None]


def _run_here(todo: list[Work], options: AnalyzeOptions) -> Generator[tuple[Work, CaptureResult], None, None]:
    for item in todo:
        yield item, score_capture(str(item[0].resolve()), options)


def _ignore_sigint() -> None:
    # The parent handles Ctrl-C (writes what finished, then stops the pool);
    # a worker interrupted mid-capture would only break the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool_worker(conn, options: AnalyzeOptions) -> None:
    """A local worker: score each path it is sent until it is sent None."""
    _ignore_sigint()
    while True:
        try:
            path = conn.recv()
        except (EOFError, OSError):
            return
        if path is None:
            return
        conn.send(score_capture(path, options))


class _Worker:
    """One worker process, the capture it holds, and the pipe to it."""

    def __init__(self, ctx, options: AnalyzeOptions) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_pool_worker, args=(child, options), daemon=True)
        self.proc.start()
        child.close()
        self.item: Work | None = None

    def give(self, item: Work | None) -> None:
        self.item = item
        if item is not None:
            self.conn.send(str(item[0].resolve()))

    def take(self) -> CaptureResult | None:
        """The result it sent, or None when it died instead."""
        try:
            return self.conn.recv() if self.conn.poll() else None
        except (EOFError, OSError):
            return None

    def stop(self, now: bool) -> None:
        if not now:
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _death(proc) -> str:
    proc.join(5)
    code = proc.exitcode
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def _run_pool(
    todo: list[Work], options: AnalyzeOptions, jobs: int
) -> Generator[tuple[Work, CaptureResult], None, None]:
    """Score ``todo`` on ``jobs`` worker processes, each holding one capture at a time.

    Because every worker holds exactly one capture, a worker that dies (the
    kernel's OOM killer, a ``kill -9``, a crash in a library) costs only that
    capture: it becomes an error row and a fresh worker takes its place.
    (``ProcessPoolExecutor`` instead breaks as a whole and fails every
    unfinished capture.)
    """
    import multiprocessing
    import multiprocessing.connection

    import callscope.analysis  # noqa: F401 - loaded once here, inherited by forked workers

    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    queue = list(reversed(todo))
    workers = [_Worker(ctx, options) for _ in range(min(jobs, len(todo)))]
    finished = False
    try:
        for w in workers:
            w.give(queue.pop() if queue else None)
        while True:
            busy = [w for w in workers if w.item is not None]
            if not busy:
                break
            ready = set(multiprocessing.connection.wait(
                [w.conn for w in busy] + [w.proc.sentinel for w in busy]))
            for k, w in enumerate(workers):
                if w.item is None or (w.conn not in ready and w.proc.sentinel not in ready):
                    continue
                item = w.item
                result = w.take()
                if result is None:
                    how = _death(w.proc)
                    result = CaptureResult(
                        str(item[0]), None, error_type="WorkerDied",
                        error=f"{item[0]}: the worker analyzing it died ({how}); the other captures are not affected")
                    w.stop(now=True)
                    w = workers[k] = _Worker(ctx, options)
                w.give(queue.pop() if queue else None)
                yield item, result
        finished = True
    finally:
        for w in workers:
            w.stop(now=not finished)


def _future_result(future, path: Path) -> CaptureResult:
    """The result of a finished Dask future; a worker that died becomes an error row."""
    try:
        return future.result()
    except Exception as e:  # noqa: BLE001 - the worker died; report, carry on
        return CaptureResult(str(path), None, error=f"{path}: worker failed: {type(e).__name__}: {e}",
                             error_type=type(e).__name__)


def _run_dask(
    todo: list[Work], options: AnalyzeOptions, address: str
) -> Generator[tuple[Work, CaptureResult], None, None]:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError as e:
        raise CallscopeError(
            "--dask needs dask.distributed: pip install 'callscope[dask]'") from e
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise CallscopeError(f"cannot reach the Dask scheduler at {address}: {e}") from e
    futures = []
    finished = False
    try:
        futures = client.map(score_capture, [str(p.resolve()) for p, _ in todo],
                             options=options, pure=False)
        items = {f.key: item for f, item in zip(futures, todo, strict=True)}
        for future in dask_completed(futures):
            item = items[future.key]
            yield item, _future_result(future, item[0])
            future.release()
        finished = True
    finally:
        if not finished and futures:
            client.cancel(futures)
        client.close()
