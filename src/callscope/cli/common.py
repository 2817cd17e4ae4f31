"""Helpers shared by the subcommands: warnings as one line, JSON output."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import click


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """Show library warnings (e.g. a truncated capture) as one line on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            seen = set()
            for w in caught:
                text = str(w.message)
                if text not in seen:
                    seen.add(text)
                    click.echo(f"callscope: warning: {text}", err=True)


def echo_json(obj: object) -> None:
    """Write ``obj`` to stdout as indented JSON (UTF-8, one trailing newline).

    orjson's C encoder: the standard library's ``json`` falls back to its
    pure-Python encoder whenever ``indent`` is set, which took 0.25 s of a
    1.9 s ``analyze`` on a 1M-packet capture. Values are plain already
    (:func:`callscope.report.jsonout.jsonable`: NaN is null); anything else
    is written as its ``str``.
    """
    import orjson

    data = orjson.dumps(obj, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    # as text: a stdout without a binary buffer (a notebook's, a redirected
    # StringIO) takes no bytes
    click.echo(data.decode("utf-8"))


#: ``--decoder builtin|wireshark`` for every command that reads a capture
decoder_option = click.option(
    "--decoder", type=click.Choice(["builtin", "wireshark"]), default="builtin", show_default=True,
    help="Which decoder builds the datagram table: the built-in reader, or Wireshark's dissectors "
         "through tshark (other link types and tunnels such as GTP-U, GRE, VXLAN; needs tshark).",
)
