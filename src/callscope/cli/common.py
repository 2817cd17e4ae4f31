"""Helpers shared by the subcommands: warnings as one line, option types, output paths, JSON output."""

from __future__ import annotations

import math
import os
import stat
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from callscope.errors import CallscopeError


class OutputPathError(CallscopeError):
    """An output path that cannot be written (checked before the work starts)."""


def is_callscope_warning(w: warnings.WarningMessage) -> bool:
    """Whether a caught warning is one callscope means the user to see.

    Its own warning classes (a truncated capture), and plain UserWarnings its
    own code raised. numpy / scipy / matplotlib warnings (a poorly
    conditioned fit, a division by zero on a degenerate stream) are about
    intermediate arithmetic whose result callscope already handles: they are
    not shown.
    """
    if w.category.__module__.split(".")[0] == "callscope":
        return True
    return w.category is UserWarning and f"{os.sep}callscope{os.sep}" in str(w.filename)


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """Show callscope's warnings (e.g. a truncated capture) as one line each on stderr.

    Library warnings are dropped (:func:`is_callscope_warning`).
    """
    from callscope.report.text import terminal_safe

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            seen = set()
            for w in caught:
                text = terminal_safe(str(w.message))
                if is_callscope_warning(w) and text not in seen:
                    seen.add(text)
                    click.echo(f"callscope: warning: {text}", err=True)


class FiniteFloat(click.FloatRange):
    """A float option that must be a finite number (click's FloatRange lets NaN and inf through)."""

    name = "finite float"

    def convert(self, value, param, ctx):
        rv = click.FLOAT.convert(value, param, ctx) if not isinstance(value, float) else value
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(rv, param, ctx)


#: ``--window``: seconds, > 0 and finite
WINDOW_SECONDS = FiniteFloat(min=0.0, min_open=True, max=86400.0)
#: ``--delay-ms``: a one-way delay the E-model's delay term can use (G.107 defines it up to seconds)
DELAY_MS = FiniteFloat(min=0.0, max=60_000.0)
#: ``--decode-as``: a UDP port (RFC 768: 16 bits)
UDP_PORT = click.IntRange(0, 65535)


def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _probe_directory(directory: Path, shown: str) -> None:
    """Create and remove a temporary file in ``directory``: the only test that believes the kernel."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".callscope-probe-", dir=directory)
    except OSError as e:
        raise OutputPathError(f"{shown}: cannot write in {directory} ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(tmp)


def check_output_file(path: str | os.PathLike, *, create_parents: bool = False) -> Path:
    """Refuse, before any work, an output file that cannot be written or replaced.

    The file is later written to a temporary file beside it and renamed over
    it (:func:`write_atomically`), so the path must be a regular file or
    nothing: a symbolic link, directory, FIFO, device or socket there is
    refused rather than replaced. Its directory must exist (or be created,
    with ``create_parents``) and accept a new file.

    Raises
    ------
    OutputPathError
    """
    from callscope.report.text import terminal_safe

    target = Path(path)
    shown = terminal_safe(os.fspath(path))
    _refuse_special(target, shown, want_dir=False)
    parent = target.parent
    if not parent.is_dir():
        existing = _nearest_existing(parent)
        if existing.exists() and not existing.is_dir():
            raise OutputPathError(f"{shown}: {terminal_safe(str(existing))} is a file, not a directory")
        if not create_parents:
            raise OutputPathError(f"{shown}: directory {terminal_safe(str(parent))} does not exist (create it first)")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputPathError(f"{shown}: cannot create directory {terminal_safe(str(parent))} "
                                  f"({e.strerror or e})") from None
    _probe_directory(parent, shown)
    return target


def check_output_dir(path: str | os.PathLike) -> Path:
    """Refuse, before any work, an output directory that cannot be created or written in."""
    from callscope.report.text import terminal_safe

    target = Path(path)
    shown = terminal_safe(os.fspath(path))
    if os.path.lexists(target) and not target.is_dir():
        raise OutputPathError(f"{shown}: exists and is not a directory")
    existing = _nearest_existing(target)
    if not existing.is_dir():
        raise OutputPathError(f"{shown}: {terminal_safe(str(existing))} is a file, not a directory")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputPathError(f"{shown}: cannot create the directory ({e.strerror or e})") from None
    _probe_directory(target, shown)
    return target


def _refuse_special(target: Path, shown: str, *, want_dir: bool) -> None:
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        from callscope.report.text import terminal_safe

        blocking = next((p for p in reversed(target.parents) if p.exists() and not p.is_dir()), target.parent)
        raise OutputPathError(f"{shown}: {terminal_safe(str(blocking))} is a file, not a directory") from None
    except OSError as e:
        raise OutputPathError(f"{shown}: cannot use this path ({e.strerror or e})") from None
    if stat.S_ISLNK(st.st_mode):
        raise OutputPathError(f"{shown}: is a symbolic link; give the path of a regular file "
                              "(it would be replaced, not written through)")
    if stat.S_ISDIR(st.st_mode):
        raise OutputPathError(f"{shown}: is a directory; give a file name")
    if not stat.S_ISREG(st.st_mode):
        raise OutputPathError(f"{shown}: is not a regular file (a FIFO, device or socket); give a file path")


def write_atomically(path: str | os.PathLike, text: str) -> Path:
    """Write a whole file or nothing: a reader never sees half a report.

    The text goes to a temporary file in the same directory, which is then
    renamed over ``path`` -- only ever onto a regular file or a new name. A
    failure (disk full) removes the temporary file and raises
    :class:`OutputPathError`. Text that cannot be encoded as UTF-8 (a file
    name that was not) is written with those bytes escaped.
    """
    from callscope.report.text import terminal_safe

    target = Path(path)
    shown = terminal_safe(os.fspath(path))
    _refuse_special(target, shown, want_dir=False)
    data = text.encode("utf-8", errors="backslashreplace")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise OutputPathError(f"{shown}: cannot write ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except OSError as e:
        with _ignored():
            os.unlink(tmp)
        raise OutputPathError(f"{shown}: cannot write ({e.strerror or e})") from None
    return target


@contextmanager
def _ignored() -> Iterator[None]:
    try:
        yield
    except OSError:
        pass


def echo_text(text: str, nl: bool = True) -> None:
    """Print report text to stdout with every line terminal-safe (capture content escaped)."""
    from callscope.report.text import terminal_safe

    click.echo("\n".join(terminal_safe(line) for line in text.split("\n")), nl=nl)


def echo_json(obj: object) -> None:
    """Write ``obj`` to stdout as indented JSON (UTF-8, one trailing newline).

    orjson's C encoder: the standard library's ``json`` falls back to its
    pure-Python encoder whenever ``indent`` is set, which took 0.25 s of a
    1.9 s ``analyze`` on a 1M-packet capture. Values are plain already
    (:func:`callscope.report.jsonout.jsonable`: NaN is null); anything else
    is written as its ``str``.
    """
    import orjson

    option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    try:
        data = orjson.dumps(obj, default=str, option=option)
    except TypeError:
        # A string JSON cannot carry: a file name that was not UTF-8. Written
        # with those bytes as \xNN (callscope.report.jsonout.text), once per
        # document that needs it rather than on every one.
        data = orjson.dumps(_valid_text(obj), default=str, option=option)
    # as text: a stdout without a binary buffer (a notebook's, a redirected
    # StringIO) takes no bytes
    click.echo(data.decode("utf-8"))


def _valid_text(obj: object) -> object:
    """``obj`` with every string (and key) made valid Unicode."""
    from callscope.report.jsonout import text

    if isinstance(obj, str):
        return text(obj)
    if isinstance(obj, dict):
        return {_valid_text(k): _valid_text(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_valid_text(v) for v in obj]
    return obj


#: ``--decoder builtin|wireshark`` for every command that reads a capture
decoder_option = click.option(
    "--decoder", type=click.Choice(["builtin", "wireshark"]), default="builtin", show_default=True,
    help="Which decoder builds the datagram table: the built-in reader, or Wireshark's dissectors "
         "through tshark (other link types and tunnels such as GTP-U, GRE, VXLAN; needs tshark).",
)
