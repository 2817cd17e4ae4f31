"""``callscope analyze``: streams, calls, metrics, findings, verdict."""

from __future__ import annotations

import click

from callscope.cli.common import echo_json, one_line_warnings


@click.command()
@click.argument("capture", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown", "csv"]), default="text",
              show_default=True)
@click.option("--window", "window_s", type=float, default=1.0, show_default=True,
              help="Width of the per-window time series, seconds.")
@click.option("--decode-as", "decode_as", type=int, multiple=True, metavar="PORT",
              help="Treat UDP traffic on PORT as RTP (repeatable).")
@click.option("--delay-ms", "one_way_delay_ms", type=float, default=None,
              help="Known one-way delay for the E-model delay term.")
@click.option("--decoder", type=click.Choice(["builtin", "wireshark"]), default="builtin", show_default=True,
              help="Which decoder builds the datagram table.")
def analyze(capture: str, fmt: str, window_s: float, decode_as: tuple[int, ...],
            one_way_delay_ms: float | None, decoder: str) -> None:
    """Find every media stream in CAPTURE, measure it and say what degraded it."""
    from callscope.analysis import analyze as run
    from callscope.report import text

    with one_line_warnings():
        report = run(capture, window_s=window_s, decode_as=decode_as,
                     one_way_delay_ms=one_way_delay_ms, decoder=decoder)
    if fmt == "json":
        from callscope.report.jsonout import report_dict

        echo_json(report_dict(report))
    elif fmt == "markdown":
        click.echo(text.markdown_report(report), nl=False)
    elif fmt == "csv":
        click.echo(text.csv_report(report), nl=False)
    else:
        click.echo(text.text_report(report), nl=False)
