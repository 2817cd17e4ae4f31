"""``callscope compare SENT RECEIVED``: two-point analysis of one call."""

from __future__ import annotations

import click

from callscope.cli.common import check_output_file, echo_json, echo_text, one_line_warnings


@click.command()
@click.argument("sent", type=click.Path())
@click.argument("received", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--map", "flow_map", multiple=True, metavar="SRC:PORT>DST:PORT=SRC:PORT>DST:PORT",
              help="Pair a flow of SENT with a flow of RECEIVED by hand (repeatable).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also write the delay-and-loss figure (PNG or SVG by the file's suffix).")
def compare(sent: str, received: str, fmt: str, flow_map: tuple[str, ...], plot_path: str | None) -> None:
    """Follow every media packet from SENT to RECEIVED: exact loss and one-way delay.

    SENT and RECEIVED are captures of the same call taken at its two ends.
    Packets are matched by their payload, so NAT and encrypted media are fine.
    """
    from callscope.report.compare import compare_dict, compare_text
    from callscope.twopoint import compare as run
    from callscope.twopoint import diagnose_direction

    pairs = []
    for m in flow_map:
        left, sep, right = m.partition("=")
        if not sep:
            raise click.UsageError(f"--map {m!r}: expected SRC:PORT>DST:PORT=SRC:PORT>DST:PORT")
        pairs.append((left, right))
    if plot_path is not None:
        check_output_file(plot_path)
    with one_line_warnings():
        result = run(sent, received, flow_map=pairs)
    verdicts = [diagnose_direction(r, f"d{i + 1}") for i, r in enumerate(result.directions)]
    if plot_path is not None:
        from callscope.report.plots import save_figure, two_point_figure
        from callscope.report.text import terminal_safe

        with one_line_warnings():
            save_figure(two_point_figure(result, verdicts), plot_path)
        click.echo(f"wrote {terminal_safe(plot_path)}", err=True)
    if fmt == "json":
        echo_json(compare_dict(result, verdicts))
    else:
        echo_text(compare_text(result, verdicts), nl=False)
