"""Packaging facts a release relies on: one version (pyproject's), extras that
pull only what the code imports, a [dev] extra for the linters and checkers."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib

import pytest

import callscope
from conftest import ROOT, run_cli

SRC = ROOT / "src" / "callscope"


@pytest.fixture(scope="module")
def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _requirement_names(reqs: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in reqs}


def test_the_version_is_pyprojects_as_installed(pyproject):
    assert callscope.__version__ == pyproject["project"]["version"]
    assert callscope.__version__ == importlib.metadata.version("callscope")


def test_no_module_writes_the_version_down_again():
    hits = [str(p.relative_to(ROOT)) for p in SRC.rglob("*.py")
            if re.search(r"^\s*__version__\s*=\s*['\"]", p.read_text(), re.M)]
    assert hits == []


def test_a_source_tree_never_installed_reads_pyproject(monkeypatch, pyproject):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert callscope._read_version() == pyproject["project"]["version"]


def test_the_cli_prints_the_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0
    assert out.strip() == f"callscope, version {callscope.__version__}"


def test_extras_pull_only_libraries_the_code_imports(pyproject):
    extras = pyproject["project"]["optional-dependencies"]
    imported = "\n".join(p.read_text() for p in SRC.rglob("*.py"))
    # tshark is located with shutil.which: pyshark is not imported, so no extra pulls it
    assert not re.search(r"^\s*(import|from)\s+pyshark\b", imported, re.M)
    assert all("pyshark" not in _requirement_names(reqs) for reqs in extras.values())
    assert "pyshark" not in _requirement_names(pyproject["project"]["dependencies"])


def test_dev_extra_has_the_linters_and_test_extra_the_checker_its_test_runs(pyproject):
    extras = pyproject["project"]["optional-dependencies"]
    assert {"ruff", "mypy"} <= _requirement_names(extras["dev"])
    assert "mypy" in _requirement_names(extras["test"])  # tests/test_typing.py runs it in CI
