"""``callscope analyze``: streams, calls, metrics, findings, verdict."""

from __future__ import annotations

import sys

import click

from callscope.cli import EXIT_GATE_FAILED
from callscope.cli.audio import given_keys, srtp_options
from callscope.cli.batch import gate_options, gates_from_options
from callscope.cli.common import (
    DELAY_MS,
    UDP_PORT,
    WINDOW_SECONDS,
    check_output_dir,
    echo_json,
    one_line_warnings,
)


@click.command()
@click.argument("capture", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown", "csv"]), default="text",
              show_default=True)
@click.option("--window", "window_s", type=WINDOW_SECONDS, default=1.0, show_default=True,
              help="Width of the per-window time series, seconds.")
@click.option("--decode-as", "decode_as", type=UDP_PORT, multiple=True, metavar="PORT",
              help="Treat UDP traffic on PORT as RTP (repeatable).")
@click.option("--delay-ms", "one_way_delay_ms", type=DELAY_MS, default=None,
              help="Known one-way delay for the E-model delay term.")
@click.option("--decoder", type=click.Choice(["builtin", "wireshark"]), default="builtin", show_default=True,
              help="Which decoder builds the datagram table.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False), default=None,
              help="Also write the plots of `callscope plot` (PNG) into this directory.")
@srtp_options
@gate_options
def analyze(capture: str, fmt: str, window_s: float, decode_as: tuple[int, ...],
            one_way_delay_ms: float | None, decoder: str, min_mos: float | None,
            max_loss: float | None, max_jitter_ms: float | None, fail_on: frozenset[str],
            plot_dir: str | None, srtp_keys: tuple[str, ...], srtp_keys_file: str | None) -> None:
    """Find every media stream in CAPTURE, measure it and say what degraded it.

    With gates (--fail-under-mos, --max-loss, --max-jitter-ms, --fail-on) the
    exit code is 1 when the capture crosses one; each crossed gate is one
    line on stderr. SRTCP is decrypted with the SRTP keys given and the SDES
    keys of the capture's SIP, and then feeds the RTCP numbers (round-trip
    time, reported loss and jitter) as plain RTCP does.
    """
    from callscope.analysis import analyze as run
    from callscope.report import text

    if plot_dir is not None:
        check_output_dir(plot_dir)
    keys = given_keys(srtp_keys, srtp_keys_file)
    with one_line_warnings():
        report = run(capture, window_s=window_s, decode_as=decode_as,
                     one_way_delay_ms=one_way_delay_ms, decoder=decoder, srtp_keys=keys)
    if fmt == "json":
        from callscope.report.jsonout import report_dict

        echo_json(report_dict(report))
    elif fmt == "markdown":
        click.echo(text.markdown_report(report), nl=False)
    elif fmt == "csv":
        click.echo(text.csv_report(report), nl=False)
    else:
        click.echo(text.text_report(report), nl=False)
    if plot_dir is not None:
        from callscope.report.plots import save_plots
        from callscope.report.text import terminal_safe

        with one_line_warnings():
            written = save_plots(report, plot_dir)
        for f in written:
            click.echo(f"callscope: wrote {terminal_safe(str(f.path))}", err=True)
    gates = gates_from_options(min_mos, max_loss, max_jitter_ms, fail_on)
    if gates.active:
        from callscope.gates import CaptureScore, check

        crossed = [g for g in check(CaptureScore.from_report(report), gates) if not g.passed]
        for g in crossed:
            click.echo(f"callscope: gate {g.gate} failed: {g.message}", err=True)
        if crossed:
            sys.exit(EXIT_GATE_FAILED)
