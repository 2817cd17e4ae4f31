"""``callscope batch``: score many captures for CI, locally or on a Dask cluster.

Also home of the gate options ``callscope analyze`` shares
(:func:`gate_options`, :func:`gates_from_options`).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable

import click

from callscope.cli.common import (
    DELAY_MS,
    UDP_PORT,
    check_output_dir,
    check_output_file,
    decoder_option,
    write_atomically,
)
from callscope.gates import MIN_SCORED_PACKETS, Gates, parse_patterns
from callscope.report.text import terminal_safe


def _patterns_option(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> frozenset[str]:
    try:
        return parse_patterns(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from e


def gate_options(command: Callable) -> Callable:
    """Add ``--fail-under-mos``, ``--max-loss``, ``--max-jitter-ms``, ``--fail-on`` to a command."""
    options = [
        click.option("--fail-under-mos", "min_mos", type=click.FloatRange(1.0, 5.0), default=None,
                     metavar="MOS",
                     help=f"Fail when the worst stream (of >= {MIN_SCORED_PACKETS} packets) scores "
                          "below this MOS, or no stream can be scored."),
        click.option("--max-loss", type=click.FloatRange(0.0, 1.0), default=None, metavar="FRACTION",
                     help="Fail when a stream lost more than this fraction of its packets (0.02 = 2 %)."),
        click.option("--max-jitter-ms", type=click.FloatRange(min=0.0), default=None, metavar="MS",
                     help="Fail when a stream's RFC 3550 jitter exceeded this many ms."),
        click.option("--fail-on", "fail_on", multiple=True, callback=_patterns_option,
                     metavar="PATTERN[,PATTERN...]",
                     help="Fail when any of these patterns is diagnosed (e.g. policing,cutoff)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def gates_from_options(min_mos: float | None, max_loss: float | None, max_jitter_ms: float | None,
                       fail_on: frozenset[str]) -> Gates:
    """The :class:`Gates` the gate options describe."""
    return Gates(min_mos=min_mos, max_loss=max_loss, max_jitter_ms=max_jitter_ms, fail_on=fail_on)


class Progress:
    """A progress bar on a terminal; one plain line per capture otherwise (CI logs)."""

    def __init__(self, total: int, enabled: bool = True):
        self.total = total
        self.done = 0
        self.enabled = enabled
        self.bar = None
        if enabled and sys.stderr.isatty():
            self.bar = click.progressbar(length=total, label="scoring", file=sys.stderr,
                                         show_pos=True, show_eta=True)
            self.bar.__enter__()

    def update(self, outcome) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled:
            r = outcome.result
            what = r.score.verdict if r.score is not None else "error"
            source = "cache" if r.cached else f"{r.duration_s:.2f} s"
            click.echo(terminal_safe(f"[{self.done}/{self.total}] {r.path}: {outcome.status} ({what}, {source})"),
                       err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Local worker processes [default: every CPU]; 1 runs in this process.")
@click.option("--dask", "dask_address", metavar="ADDRESS", default=None,
              help="Run on an existing Dask cluster (scheduler address, e.g. tcp://10.0.0.5:8786).")
@click.option("--jsonl", "jsonl_path", type=click.Path(dir_okay=False), default=None,
              help="Write one JSON record per capture, as each finishes.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Write one CSV row per capture.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), default=None,
              help="Write JUnit XML: one test case per capture.")
@click.option("--summary", "summary_path", type=click.Path(dir_okay=False), default=None,
              help="Write a Markdown summary (e.g. for $GITHUB_STEP_SUMMARY).")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Keep results here; captures already scored (same content, version, options) are not re-analyzed.")
@click.option("--allow-errors", is_flag=True,
              help="Unreadable captures are reported but do not make the exit code 1.")
@click.option("--decode-as", "decode_as", type=UDP_PORT, multiple=True, metavar="PORT",
              help="Treat UDP traffic on PORT as RTP (repeatable).")
@click.option("--delay-ms", "one_way_delay_ms", type=DELAY_MS, default=None,
              help="Known one-way delay for the E-model delay term.")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no table; files and exit code only.")
@decoder_option
@gate_options
def batch(paths: tuple[str, ...], jobs: int | None, dask_address: str | None, jsonl_path: str | None,
          csv_path: str | None, junit_path: str | None, summary_path: str | None, cache_dir: str | None,
          allow_errors: bool, decode_as: tuple[int, ...], one_way_delay_ms: float | None, quiet: bool,
          decoder: str,
          min_mos: float | None, max_loss: float | None, max_jitter_ms: float | None,
          fail_on: frozenset[str]) -> None:
    """Score every capture under PATH... (files, directories, globs) against quality gates.

    Exit codes: 0 every capture passed; 1 a capture crossed a gate or could
    not be read (unless --allow-errors); 2 usage error; 130 interrupted (the
    output files then hold every capture that finished).
    """
    from callscope import batch as core

    if jobs is not None and dask_address is not None:
        raise click.UsageError("--jobs and --dask are exclusive: Dask decides the parallelism")
    gates = gates_from_options(min_mos, max_loss, max_jitter_ms, fail_on)
    options = core.AnalyzeOptions(decode_as=decode_as, one_way_delay_ms=one_way_delay_ms, decoder=decoder)
    captures = core.find_captures(paths)
    # Every output is checked before the first capture is analyzed: a batch
    # must not run for an hour and then fail to write its report.
    for out in (jsonl_path, csv_path, junit_path, summary_path):
        if out:
            check_output_file(out, create_parents=True)
    if cache_dir is not None:
        check_output_dir(cache_dir)
    cache = core.ResultCache(cache_dir, options) if cache_dir is not None else None
    order = {str(p): i for i, p in enumerate(captures)}

    started_at = time.time()
    start = time.perf_counter()
    outcomes = []
    interrupted = False
    progress = Progress(len(captures), enabled=not quiet)
    # JSONL is written as each capture finishes (readable during the run), so
    # straight to its path -- which check_output_file made sure is a regular file or new.
    jsonl = open(jsonl_path, "w", encoding="utf-8") if jsonl_path else None  # noqa: SIM115
    try:
        with contextlib.closing(core.run(captures, options, jobs=jobs, dask_address=dask_address,
                                         cache=cache)) as results:
            for result in results:
                outcome = core.judge(result, gates)
                outcomes.append(outcome)
                if jsonl is not None:
                    jsonl.write(json.dumps(_record(outcome), allow_nan=False) + "\n")
                    jsonl.flush()
                progress.update(outcome)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # A second Ctrl-C must not cut the reports in half.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            progress.close()
            if jsonl is not None:
                jsonl.close()
            outcomes.sort(key=lambda o: order.get(o.result.path, len(order)))
            totals = core.totals(outcomes, wall_s=time.perf_counter() - start, planned=len(captures))
            _write_reports(outcomes, totals, gates, csv_path, junit_path, summary_path, started_at)
            if not quiet:
                from callscope.report.batch_results import text_table

                click.echo(text_table(outcomes, totals), nl=False)
        finally:
            signal.signal(signal.SIGINT, previous)
    if interrupted:
        click.echo(f"callscope: interrupted after {totals.captures} of {totals.planned} captures",
                   err=True)
        sys.exit(130)
    sys.exit(totals.exit_code(allow_errors))


def _record(outcome) -> dict:
    from callscope.report.batch_results import record

    return record(outcome)


def _write_reports(outcomes, totals, gates: Gates, csv_path: str | None, junit_path: str | None,
                   summary_path: str | None, started_at: float) -> None:
    from callscope.report import batch_results
    from callscope.report.junit import junit_xml

    if csv_path:
        write_atomically(csv_path, batch_results.csv_text(outcomes))
    if junit_path:
        write_atomically(junit_path, junit_xml(outcomes, totals, gates, timestamp=started_at))
    if summary_path:
        write_atomically(summary_path, batch_results.markdown_summary(outcomes, totals, gates))
