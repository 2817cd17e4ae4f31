"""Helpers shared by the subcommands: warnings as one line, JSON output."""

from __future__ import annotations

import json
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
    click.echo(json.dumps(obj, indent=2, allow_nan=False, default=str))
