"""callscope: offline analysis of voice calls in packet captures.

>>> import callscope
>>> report = callscope.analyze("fixtures/rtpproxy__lost.a.pcap")  # doctest: +SKIP
>>> report.verdict                                                # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Type checkers see the public API; at run time it is imported lazily below.
    from callscope.analysis import Report, analyze

    __version__: str

__all__ = ["Report", "__version__", "analyze"]


def _read_version() -> str:
    """The installed distribution's version (pyproject's ``version``, its one source).

    From a source tree on ``sys.path`` that was never installed, pyproject.toml
    beside ``src/`` is read instead.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("callscope")
    except PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        try:
            with pyproject.open("rb") as f:
                return str(tomllib.load(f)["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "0+unknown"


if not TYPE_CHECKING:
    # Hidden from checkers, which see the names declared above and so still
    # flag a misspelt attribute (a module __getattr__ would make every name Any).

    def __getattr__(name: str) -> Any:
        # Lazy, so that `import callscope` (and the CLI's start-up) stays cheap:
        # the pipeline imports numpy, the version lookup importlib.metadata.
        if name == "__version__":
            value = _read_version()
            globals()["__version__"] = value
            return value
        if name in ("analyze", "Report"):
            from callscope import analysis

            return getattr(analysis, name)
        raise AttributeError(f"module 'callscope' has no attribute {name!r}")
