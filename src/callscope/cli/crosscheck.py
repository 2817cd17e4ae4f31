"""``callscope crosscheck``: our numbers beside Wireshark's, differences explained."""

from __future__ import annotations

import sys

import click

from callscope.cli import EXIT_GATE_FAILED
from callscope.cli.common import UDP_PORT, echo_json, echo_text, one_line_warnings

#: how each compared figure is headed in the text table
FIGURE_TITLES = {
    "packets": "packets",
    "lost": "lost",
    "delta_max_ms": "max delta ms",
    "jitter_mean_ms": "mean jitter ms",
    "jitter_max_ms": "max jitter ms",
}


@click.command()
@click.argument("capture", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--decode-as", "decode_as", type=UDP_PORT, multiple=True, metavar="PORT",
              help="Treat UDP traffic on PORT as RTP in both tools (repeatable).")
def crosscheck(capture: str, fmt: str, decode_as: tuple[int, ...]) -> None:
    """Compare callscope's streams in CAPTURE with Wireshark's `tshark -z rtp,streams`.

    Exit 1 when a difference has no known explanation, 0 otherwise.
    """
    from callscope.crosscheck import crosscheck as run

    with one_line_warnings():
        result = run(capture, decode_as=decode_as)
    if fmt == "json":
        from callscope.report.jsonout import jsonable

        doc = jsonable(result)
        assert isinstance(doc, dict)  # a dataclass becomes a JSON object
        doc["ok"] = result.ok
        doc["unexplained"] = result.unexplained
        echo_json(doc)
    else:
        echo_text(_text(result))
    if not result.ok:
        sys.exit(EXIT_GATE_FAILED)


def _value(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _text(result) -> str:
    from callscope.crosscheck import SAME, UNEXPLAINED

    decode = "".join(f" -d udp.port=={p},rtp" for p in result.decode_as)
    lines = [f"{result.path}: callscope beside tshark {result.tshark_version} "
             f"(-o rtp.heuristic_rtp:TRUE{decode} -z rtp,streams)"]
    for s in result.streams:
        who = f"callscope {s.stream_id}" if s.stream_id else "not in callscope"
        if s.wireshark is None:
            who += ", not in Wireshark"
        lines.append("")
        lines.append(f"{s.label}  [{who}]  {s.status.upper()}")
        if s.reason:
            lines.append(f"  {s.reason}")
        if s.figures:
            lines.append(f"  {'':<16}{'Wireshark':>14}{'callscope':>14}")
        for f in s.figures:
            mark = "" if f.status == SAME else f"  {f.status}" + (f": {f.reason}" if f.reason else "")
            lines.append(f"  {FIGURE_TITLES[f.name]:<16}{_value(f.wireshark):>14}{_value(f.callscope):>14}{mark}")
    counts = {k: sum(s.status == k for s in result.streams) for k in ("same", "explained", UNEXPLAINED)}
    lines.append("")
    lines.append(f"{len(result.streams)} stream(s): {counts['same']} same, {counts['explained']} differ as explained, "
                 f"{counts[UNEXPLAINED]} differ unexplained")
    return "\n".join(lines)
