"""The ``callscope`` command: a thin layer over the Python API.

Subcommands are loaded lazily (only the one invoked is imported), so that
``callscope info`` on a small capture does not pay for matplotlib or scipy.
Every :class:`~callscope.errors.CallscopeError` becomes one line on stderr and
exit code 2; exit 1 is reserved for a gate or check that failed.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from callscope.errors import CallscopeError

#: command name -> "module:attribute" of its click command
COMMANDS: dict[str, str] = {
    "analyze": "callscope.cli.analyze:analyze",
    "compare": "callscope.cli.compare:compare",
    "crosscheck": "callscope.cli.crosscheck:crosscheck",
    "audio": "callscope.cli.audio:audio",
    "batch": "callscope.cli.batch:batch",
    "evaluate": "callscope.cli.evaluate:evaluate",
    "info": "callscope.cli.info:info",
    "lab": "callscope.cli.lab:lab",
    "synth": "callscope.cli.synth:synth",
    "plot": "callscope.cli.plot:plot",
    "report": "callscope.cli.report:report",
}

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``--version``, resolved only when asked for (the lookup costs start-up time)."""
    if not value or ctx.resilient_parsing:
        return
    from callscope import __version__

    click.echo(f"callscope, version {__version__}")
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and exit.")
def cli() -> None:
    """Analyze voice calls in packet captures: streams, quality, and what degraded them.

    Exit codes: 0 ok, 1 a gate or check failed, 2 usage error or unreadable input.
    """


def fail(message: str) -> None:
    """Print one line to stderr and exit 2 (usage or unreadable input).

    The message is made terminal-safe: it may quote a file name or capture
    content (control characters, undecodable bytes).
    """
    from callscope.report.text import terminal_safe

    click.echo(f"callscope: error: {terminal_safe(message)}", err=True)
    sys.exit(EXIT_USAGE)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Last line of defence for warnings outside :func:`one_line_warnings`: callscope's as
    one line, library ones (numpy, scipy, matplotlib arithmetic) not at all."""
    import warnings

    from callscope.cli.common import is_callscope_warning
    from callscope.report.text import terminal_safe

    w = warnings.WarningMessage(message, category, filename, lineno, file, line)
    if is_callscope_warning(w):
        click.echo(f"callscope: warning: {terminal_safe(str(message))}", err=True)


def _os_error_line(e: OSError) -> str:
    where = f"{os.fsdecode(e.filename)}: " if getattr(e, "filename", None) else ""
    return f"{where}{e.strerror or e}"


def main() -> None:
    """Entry point of the console script."""
    # numpy asks the kernel for transparent huge pages for every large array
    # (madvise). Where the kernel then compacts memory on the first touch of
    # each huge page (THP defrag "madvise", the usual default), the hundreds
    # of MB of short-lived arrays of a big capture stall on it: 10^7 packets
    # took 10.5 s instead of 8.9 s. Set before numpy is imported; a value the
    # user set wins.
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    import warnings

    warnings.showwarning = _show_warning
    try:
        cli.main(standalone_mode=False)
    except CallscopeError as e:
        fail(str(e))
    except click.exceptions.Abort:
        click.echo("callscope: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        fail(e.format_message())
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    except KeyboardInterrupt:
        click.echo("callscope: interrupted", err=True)
        sys.exit(130)
    except OSError as e:  # writing output: disk full, a path that vanished, a device refusing
        fail(_os_error_line(e))
    except MemoryError:
        fail("out of memory (the capture needs more than this machine can give; "
             "try `callscope info` on it, or split it with editcap)")
    except Exception as e:  # noqa: BLE001 - the one-line contract holds even for a bug
        if os.environ.get("CALLSCOPE_DEBUG"):
            raise
        import traceback

        frame = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
        where = f" at {os.path.basename(frame.filename)}:{frame.lineno}" if frame else ""
        first = str(e).splitlines()[0] if str(e) else ""
        fail(f"internal error {type(e).__name__}{where}: {first} (a bug: please report it with the capture; "
             "CALLSCOPE_DEBUG=1 shows the traceback)")
