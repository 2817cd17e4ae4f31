"""``callscope report``: one self-contained HTML file with the verdict, tables and plots."""

from __future__ import annotations

import click

from callscope.cli.common import decoder_option, one_line_warnings


@click.command()
@click.argument("capture", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="HTML file to write.")
@click.option("--stream", "stream_ids", multiple=True, metavar="ID",
              help="Plot only this stream (repeatable); the tables always list every stream.")
@click.option("--no-plots", is_flag=True, help="Tables and findings only (a small file).")
@click.option("--window", "window_s", type=float, default=1.0, show_default=True,
              help="Width of the per-window series, seconds.")
@decoder_option
def report(capture: str, output: str, stream_ids: tuple[str, ...], no_plots: bool, window_s: float,
           decoder: str) -> None:
    """Write one self-contained HTML report of CAPTURE.

    Verdict, findings with their evidence, per-call and per-stream tables and
    the plots embedded as PNG: no script, no network, opens in any browser.
    """
    from callscope.analysis import analyze as run
    from callscope.cli.plot import check_stream_ids
    from callscope.report.html import write_html

    with one_line_warnings():
        result = run(capture, window_s=window_s, decoder=decoder)
        wanted = check_stream_ids(result, stream_ids)
        path = write_html(result, output, stream_ids=wanted, plots=not no_plots)
    click.echo(f"{path}: verdict {result.verdict}")
