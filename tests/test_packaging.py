"""The package as installed: dependencies (no vulnerable requests, one OpenCV), the LICENSE and --version."""
from __future__ import annotations

import re

import pytest

from helpers import ROOT
from nsbench.cli import main


# dependencies (issue 13, probe 13)

def test_dependencies_pin_no_vulnerable_requests_and_one_opencv():
    tomllib = pytest.importorskip("tomllib")

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = [re.split(r"[<>=~!\[ ]", d)[0].lower() for d in deps]
    assert "torchattacks" not in names
    assert sum(n in ("opencv-python", "opencv-python-headless") for n in names) == 1


# LICENSE and --version (issue 13, probe 14)

def test_license_file_and_version(capsys):
    tomllib = pytest.importorskip("tomllib")

    assert "Apache License" in (ROOT / "LICENSE").read_text() and "Version 2.0" in (ROOT / "LICENSE").read_text()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"nsbench {version}"
