"""``callscope plot``: timeline, loss structure, distributions and spectrograms as files."""

from __future__ import annotations

import click

from callscope.cli.common import WINDOW_SECONDS, check_output_dir, decoder_option, one_line_warnings


@click.command()
@click.argument("capture", type=click.Path())
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the plot files (created if missing).")
@click.option("--stream", "stream_ids", multiple=True, metavar="ID",
              help="Only this stream (repeatable; ids as `callscope analyze` prints them).")
@click.option("--format", "fmt", type=click.Choice(["png", "svg"]), default="png", show_default=True)
@click.option("--window", "window_s", type=WINDOW_SECONDS, default=1.0, show_default=True,
              help="Width of the per-window series (loss, bitrate, MOS), seconds.")
@decoder_option
def plot(capture: str, out_dir: str, stream_ids: tuple[str, ...], fmt: str, window_s: float,
         decoder: str) -> None:
    """Plot every media stream of CAPTURE into a directory.

    Per stream: a timeline (inter-arrival delta, jitter, relative delay, loss,
    bitrate and MOS with the findings shaded), the loss run-length histogram
    with its Gilbert-Elliott fit, and for G.711 the spectrogram of the decoded
    audio; per call: delta, jitter and delay CDFs of both directions.
    """
    from callscope.analysis import analyze as run
    from callscope.report.plots import save_plots
    from callscope.report.text import terminal_safe

    check_output_dir(out_dir)
    with one_line_warnings():
        report = run(capture, window_s=window_s, decoder=decoder)
        wanted = check_stream_ids(report, stream_ids)
        written = save_plots(report, out_dir, fmt, wanted)
    for f in written:
        click.echo(terminal_safe(str(f.path)))


def check_stream_ids(report, stream_ids: tuple[str, ...]) -> list[str] | None:
    """The requested stream ids, or None for all; CallscopeError naming the valid ones."""
    from callscope.errors import CallscopeError

    if not stream_ids:
        return None
    known = [s.id for s in report.inventory.streams]
    unknown = [s for s in stream_ids if s not in known]
    if unknown:
        have = ", ".join(known) if known else "none"
        raise CallscopeError(f"{report.path}: no stream {', '.join(unknown)} (streams: {have})")
    return list(stream_ids)
