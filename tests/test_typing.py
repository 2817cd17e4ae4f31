"""The public API is typed: mypy passes over the package and over a user's
script that relies on the types of ``callscope.analyze`` and its ``Report``
(tests/typecheck/user_script.py), and the package says so (PEP 561 ``py.typed``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import callscope
from conftest import FIXTURES, ROOT

USER_SCRIPT = ROOT / "tests" / "typecheck" / "user_script.py"
FIXTURE = FIXTURES / "rtpproxy__lost.a.pcap"


def _env_with_src() -> dict[str, str]:
    """The environment with this repository's ``src`` first on the import paths
    (of Python, and of mypy, which does not read PYTHONPATH)."""
    src = str(ROOT / "src")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env["MYPYPATH"] = src
    return env


@pytest.mark.slow
def test_mypy_finds_no_error_in_the_package():
    pytest.importorskip("mypy", reason="mypy comes with the [test] and [dev] extras")
    # run from the repository root, so that pyproject.toml's [tool.mypy] applies
    proc = subprocess.run([sys.executable, "-m", "mypy", "src"], cwd=ROOT, env=_env_with_src(),
                          capture_output=True, text=True, timeout=600)
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert proc.returncode == 0 and not errors, "\n".join(errors) or proc.stdout + proc.stderr
    assert proc.stdout.startswith("Success: no issues found in")


def test_a_users_script_type_checks_against_the_package_as_installed(tmp_path):
    pytest.importorskip("mypy", reason="mypy comes with the [test] and [dev] extras")
    # An environment where callscope is an installed package (a .pth to src/):
    # mypy then reads its types only because of py.typed (PEP 561), as a user's
    # checker would. Run outside the repository, with none of its configuration.
    venv_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv_dir)], check=True, timeout=120)
    python = venv_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    (Path(site) / "callscope-src.pth").write_text(str(ROOT / "src") + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-executable", str(python), "--warn-unused-ignores",
         "--cache-dir", str(tmp_path / "cache"), str(USER_SCRIPT)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert proc.returncode == 0 and not errors, "\n".join(errors) or proc.stdout + proc.stderr


def test_the_users_script_runs_and_prints_what_analyze_found():
    report = callscope.analyze(FIXTURE)
    proc = subprocess.run(
        [sys.executable, str(USER_SCRIPT), str(FIXTURE)],
        env=_env_with_src(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{FIXTURE}: {report.verdict} (callscope {callscope.__version__})"
    for stream in report.streams:
        loss = report.metrics[stream.id].loss_fraction
        assert any(line.startswith(f"  {stream.id} ") and f"loss {loss:.1%}" in line for line in lines)
    assert len([line for line in lines if line.startswith("  ")]) == len(report.streams) + len(
        report.diagnosis.findings
    )


def test_report_fields_carry_the_stage_classes_not_object():
    from callscope.capture.reader import CaptureInfo
    from callscope.diagnose import Diagnosis
    from callscope.media import MediaInventory
    from callscope.metrics import StreamMetrics

    report = callscope.analyze(FIXTURE)
    assert isinstance(report, callscope.Report)
    assert isinstance(report.info, CaptureInfo)
    assert isinstance(report.inventory, MediaInventory)
    assert isinstance(report.diagnosis, Diagnosis)
    assert report.metrics and all(isinstance(m, StreamMetrics) for m in report.metrics.values())
    # the annotations name those classes (strings: they are imported for checkers only)
    ann = callscope.Report.__annotations__
    assert ann["inventory"] == "MediaInventory"
    assert ann["metrics"] == "Mapping[str, StreamMetrics]"
    assert ann["diagnosis"] == "Diagnosis"


def test_importing_callscope_stays_cheap():
    # The pipeline (numpy) and the version lookup (importlib.metadata) load on first use.
    code = (
        "import sys, callscope; "
        "print(sorted(m for m in ('numpy', 'importlib.metadata', 'callscope.analysis') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=_env_with_src(), capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"


def test_the_package_ships_py_typed():
    assert (ROOT / "src" / "callscope" / "py.typed").is_file()
    with open(ROOT / "pyproject.toml", "rb") as f:
        pyproject = tomllib.load(f)
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["callscope"]
