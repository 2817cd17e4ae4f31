"""``callscope info``: what is in a capture."""

from __future__ import annotations

import click

from callscope.capture.contents import summarize
from callscope.cli.common import decoder_option, echo_json, echo_text, one_line_warnings
from callscope.report.info import info_dict, info_text


@click.command()
@click.argument("captures", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True, help="How many of the busiest UDP flows to list.")
@decoder_option
def info(captures: tuple[str, ...], fmt: str, top: int, decoder: str) -> None:
    """What is in each CAPTURE: format, link types, packets, time span, UDP flows."""
    with one_line_warnings():
        summaries = [summarize(path, top=top, decoder=decoder) for path in captures]
    if fmt == "json":
        echo_json([info_dict(s) for s in summaries])
    else:
        echo_text("\n\n".join(info_text(s) for s in summaries))
