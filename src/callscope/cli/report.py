"""``callscope report``: one self-contained HTML file with the verdict, tables and plots."""

from __future__ import annotations

import click

from callscope.cli.audio import given_keys, srtp_options
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
@click.option("--plot-streams", type=click.IntRange(min=0), default=8, show_default=True, metavar="N",
              help="Without --stream: figures (and audio) for the N worst streams only; 0 for every stream.")
@srtp_options
@decoder_option
def report(capture: str, output: str, stream_ids: tuple[str, ...], no_plots: bool, window_s: float,
           received: str | None, plot_streams: int, srtp_keys: tuple[str, ...], srtp_keys_file: str | None,
           decoder: str) -> None:
    """Write one self-contained HTML report of CAPTURE.

    Verdict, findings with their evidence, per-call and per-stream tables and
    the plots embedded as PNG: no script, no network, opens in any browser.
    The worst decodable stream of each call is embedded as audio with its
    spectrogram under its timeline; SRTP streams are decrypted with SDES keys
    from the capture's SIP or the keys given.
    """
    from callscope.analysis import analyze as run
    from callscope.cli.plot import check_stream_ids
    from callscope.report.html import write_html

    keys = given_keys(srtp_keys, srtp_keys_file)
    with one_line_warnings():
        result = run(capture, window_s=window_s, decoder=decoder, srtp_keys=keys)
        wanted = check_stream_ids(result, stream_ids)
        comparison = verdicts = None
        if received is not None:
            from callscope.twopoint import compare, diagnose_direction

            comparison = compare(capture, received)
            verdicts = [diagnose_direction(r, f"d{i + 1}") for i, r in enumerate(comparison.directions)]
        path = write_html(result, output, stream_ids=wanted, plots=not no_plots,
                          comparison=comparison, comparison_verdicts=verdicts,
                          plot_streams=plot_streams, keys=keys)
    click.echo(f"{path}: verdict {result.verdict}")
