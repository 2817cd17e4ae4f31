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
@click.option("--received", type=click.Path(), default=None, metavar="CAPTURE",
              help="The other end's capture of the same call: adds two-point analysis (exact loss and delay).")
@decoder_option
def report(capture: str, output: str, stream_ids: tuple[str, ...], no_plots: bool, window_s: float,
           received: str | None, decoder: str) -> None:
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
        comparison = verdicts = None
        if received is not None:
            from callscope.twopoint import compare, diagnose_direction

            comparison = compare(capture, received)
            verdicts = [diagnose_direction(r, f"d{i + 1}") for i, r in enumerate(comparison.directions)]
        path = write_html(result, output, stream_ids=wanted, plots=not no_plots,
                          comparison=comparison, comparison_verdicts=verdicts)
    click.echo(f"{path}: verdict {result.verdict}")
