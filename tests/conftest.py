"""Shared fixtures: the real captures in ../shared, tshark, the bundled fixtures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SHARED_CAPTURES = Path(os.environ.get("CALLSCOPE_SHARED", ROOT.parent / "shared")) / "captures"


def shared_capture_files() -> list[Path]:
    """Every capture in ../shared/captures that has Wireshark's output beside it."""
    if not SHARED_CAPTURES.is_dir():
        return []
    return sorted(
        p
        for p in SHARED_CAPTURES.iterdir()
        if p.suffix in (".pcap", ".pcapng") and (p.parent / (p.name + ".tshark-rtp.txt")).exists()
    )


@pytest.fixture(scope="session")
def shared_captures() -> Path:
    if not SHARED_CAPTURES.is_dir():
        pytest.skip(f"{SHARED_CAPTURES} is absent: the real-capture tests need ../shared beside the repository")
    return SHARED_CAPTURES


@pytest.fixture(scope="session")
def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("tshark is not installed (.ci/run installs it: apt-get install tshark)")
    return path


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """Run ``callscope ARGS...`` in this process as the console script would; exit code, stdout, stderr."""
    import sys

    from callscope.cli import main

    argv = sys.argv
    sys.argv = ["callscope", *map(str, args)]
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code or 0
    finally:
        sys.argv = argv
    out = capsys.readouterr()
    return code, out.out, out.err
